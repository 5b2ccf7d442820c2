//go:build linux

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/internal/sweeplock"
)

// shmmapCmd builds the command into t's temporary directory and returns its
// path.
func shmmapCmd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shmmap")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runCmd runs the built command and returns stdout, stderr and exit code.
func runCmd(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatal(err)
	return "", "", -1
}

// jsonRow is a row of ls --json, as a consumer reads it.
type jsonRow struct {
	Key       string `json:"key"`
	KeyBase64 []byte `json:"key_base64"`
	Size      int64  `json:"size"`
	Mode      string `json:"mode"`
	Creator   string `json:"creator"`
}

// lsJSON runs ls --json and returns its rows by the exact bytes of their
// names.
func lsJSON(t *testing.T, bin string) map[string]jsonRow {
	t.Helper()
	out, stderr, code := runCmd(t, bin, "ls", "--json")
	var rows []jsonRow
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil {
		t.Fatalf("ls --json: exit %d, %v, stderr %q\n%s", code, err, stderr, out)
	}
	m := make(map[string]jsonRow, len(rows))
	for _, r := range rows {
		m[string(r.KeyBase64)] = r
	}
	return m
}

// testPrefix returns a random name prefix, so that a test judges only the
// names in /dev/shm that it made itself.
func testPrefix(t *testing.T) string {
	var b [8]byte
	rand.Read(b[:])
	return "shmmapcmdtest" + hex.EncodeToString(b[:])
}

// plant creates the file /dev/shm/name, as any local user could, and
// removes it when t is done.
func plant(t *testing.T, name string) string {
	t.Helper()
	path := "/dev/shm/" + name
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Error(err)
		}
	})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkPrintable fails t if out has a byte or character that a terminal
// would act on: a control other than newline, or invalid UTF-8.
func checkPrintable(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s has invalid UTF-8:\n%q", what, out)
	}
	for _, r := range out {
		if r != '\n' && !unicode.IsPrint(r) {
			t.Errorf("%s has %U:\n%q", what, r, out)
			return
		}
	}
}

func TestCommand(t *testing.T) {
	bin := shmmapCmd(t)
	key, _, err := shmmap.Create(12345)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shmmap.Release(key) })

	// ls: the table names the key, its size, mode and a live creator.
	out, _, code := runCmd(t, bin, "ls")
	if code != 0 {
		t.Fatalf("ls exited %d", code)
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), key+" ") {
			line = l
		}
	}
	if f := strings.Fields(line); len(f) != 6 || f[1] != "12345" || f[2] != "0600" || f[5] != "yes" {
		t.Fatalf("ls line for %s: %q\n%s", key, line, out)
	}
	if f := strings.Fields(out); len(f) < 6 || strings.Join(f[:6], " ") != "KEY SIZE MODE OWNER AGE ALIVE" {
		t.Fatalf("ls has no header:\n%s", out)
	}

	// ls --json
	if r, ok := lsJSON(t, bin)[key]; !ok || r.Key != key || r.Size != 12345 || r.Mode != "0600" || r.Creator != "alive" {
		t.Fatalf("ls --json: row for %s is %+v", key, r)
	}

	// sweep leaves a live creator's segment; --json prints an array.
	sweeplock.Lock(t)
	out, _, code = runCmd(t, bin, "sweep", "--json")
	var removed []string
	if err := json.Unmarshal([]byte(out), &removed); code != 0 || err != nil {
		t.Fatalf("sweep --json: exit %d, %v\n%s", code, err, out)
	}
	if _, err := os.Stat("/dev/shm" + key); err != nil {
		t.Fatalf("sweep removed a live segment: %v", err)
	}

	// rm removes the name; the mapping here stays valid.
	if _, stderr, code := runCmd(t, bin, "rm", key); code != 0 {
		t.Fatalf("rm: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat("/dev/shm" + key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after rm: %v", err)
	}
	// rm of what is not there: 1, with the reason.
	_, stderr, code := runCmd(t, bin, "rm", key)
	if code != 1 || !strings.Contains(stderr, key) || !strings.Contains(stderr, "no such file") {
		t.Fatalf("rm of a missing key: exit %d, stderr %q", code, stderr)
	}
}

// TestHostileNames plants names that would act on a terminal or forge the
// table, and checks that ls shows each escaped on a line of its own, and
// that rm removes exactly the segment that ls --json names.
func TestHostileNames(t *testing.T) {
	bin := shmmapCmd(t)
	p := testPrefix(t)
	names := []struct{ raw, escaped string }{
		{p + "-osc\x1b]0;pwned\x07", p + `-osc\x1b]0;pwned\a`},
		{p + "-cls\x1b[2J", p + `-cls\x1b[2J`},
		{p + "-nl\n" + p + "-forged 4096 0600 root 1s yes", p + `-nl\n` + p + "-forged 4096 0600 root 1s yes"},
		{p + "-tab\tx", p + `-tab\tx`},
		{p + "-cr\rx", p + `-cr\rx`},
		{p + "-ff\xff", p + `-ff\xff`},
		{p + "-del\x7f", p + `-del\x7f`},
		{p + `-bs\x41`, p + `-bs\\x41`}, // a backslash, then "x41"
		{p + "-bsA", p + "-bsA"},        // what rm would take the above for, unescaped once
		{p + "-bidi\u202etxt.exe", p + `-bidi\u202etxt.exe`},
		{p + "-nel\u0085", p + `-nel\u0085`},
		{p + `-quotes"'`, p + `-quotes"'`},
		{p + "-utf8-h\u00e9llo-\ufffd", p + "-utf8-h\u00e9llo-\ufffd"}, // printable: as is
	}
	for _, n := range names {
		plant(t, n.raw)
	}

	out, stderr, code := runCmd(t, bin, "ls")
	if code != 0 {
		t.Fatalf("ls: exit %d, stderr %q", code, stderr)
	}
	checkPrintable(t, "ls", out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	ours := 0
	for _, l := range lines {
		if strings.Contains(l, p) {
			ours++
		}
		if utf8.RuneCountInString(l) != utf8.RuneCountInString(lines[0]) {
			t.Errorf("ls line %q is not as wide as the header %q", l, lines[0])
		}
	}
	if ours != len(names) {
		t.Errorf("ls has %d lines with the test's names, want %d:\n%s", ours, len(names), out)
	}
	for _, n := range names {
		if !strings.Contains(out, " /"+n.escaped+"  ") {
			t.Errorf("ls lacks %q:\n%s", "/"+n.escaped, out)
		}
	}

	// Each key of ls --json, given to rm, removes its segment and no other.
	rows := lsJSON(t, bin)
	for i, n := range names {
		r, ok := rows["/"+n.raw]
		if !ok {
			t.Fatalf("ls --json has no key_base64 for %q", n.raw)
		}
		if r.Key != "/"+n.escaped {
			t.Errorf("ls --json: key %q, want %q", r.Key, "/"+n.escaped)
		}
		if _, stderr, code := runCmd(t, bin, "rm", r.Key); code != 0 {
			t.Fatalf("rm %q: exit %d, stderr %q", r.Key, code, stderr)
		}
		for j, m := range names {
			_, err := os.Lstat("/dev/shm/" + m.raw)
			switch gone := errors.Is(err, fs.ErrNotExist); {
			case j <= i && !gone:
				t.Fatalf("rm %q left %q: %v", r.Key, m.raw, err)
			case j > i && err != nil:
				t.Fatalf("rm %q removed %q too: %v", r.Key, m.raw, err)
			}
		}
	}

	// rm's errors show the names escaped too, one line each.
	args := []string{"rm"}
	for _, n := range names {
		args = append(args, "/"+n.escaped)
	}
	_, stderr, code = runCmd(t, bin, args...)
	if code != 1 {
		t.Errorf("rm of removed names: exit %d", code)
	}
	checkPrintable(t, "rm's errors", stderr)
	if got := strings.Count(stderr, "\n"); got != len(names) {
		t.Errorf("rm's errors are %d lines, want %d:\n%s", got, len(names), stderr)
	}
	for _, n := range names {
		if !strings.Contains(stderr, " /"+n.escaped+": ") {
			t.Errorf("rm's errors lack %q:\n%s", "/"+n.escaped, stderr)
		}
	}
}

// TestRmPathEscape aims rm at a file outside /dev/shm, in the test's
// temporary directory (never a system file), by a relative path, plain and
// escaped: key validation must see through the escapes.
func TestRmPathEscape(t *testing.T) {
	bin := shmmapCmd(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	shm, err := filepath.EvalSymlinks("/dev/shm")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(shm, victim)
	if err != nil || !strings.HasPrefix(rel, "../") {
		t.Fatalf("filepath.Rel(%q, %q) = %q, %v", shm, victim, rel, err)
	}
	for _, key := range []string{
		rel,
		"/" + rel,
		strings.ReplaceAll(rel, "/", `\x2f`),
		strings.ReplaceAll(rel, "/", `\057`),
		strings.ReplaceAll(rel, "/", `\u002f`),
		`\x2e\x2e\x2f` + strings.TrimPrefix(rel, "../"),
	} {
		_, stderr, code := runCmd(t, bin, "rm", key)
		if code != 1 || !strings.Contains(stderr, "invalid key") {
			t.Errorf("rm %q: exit %d, stderr %q; want 1 and invalid key", key, code, stderr)
		}
		if _, err := os.Lstat(victim); err != nil {
			t.Fatalf("rm %q: %v", key, err)
		}
	}
}

// TestRmMalformedEscape checks that a malformed escape is bad usage and
// that rm then removes nothing, not even the well-formed keys before it.
func TestRmMalformedEscape(t *testing.T) {
	bin := shmmapCmd(t)
	name := testPrefix(t)
	path := plant(t, name)
	for _, bad := range []string{`\`, `x\q`, `\x4`, `\xzz`, `\u12`, `\ud800`, `\U00110000`, `\400`, `\"`, `\'`, "\\\x1b"} {
		_, stderr, code := runCmd(t, bin, "rm", "/"+name, bad)
		if code != 2 || !strings.Contains(stderr, "malformed escape") || !strings.Contains(stderr, "usage") {
			t.Errorf("rm %q: exit %d, stderr %q; want 2, malformed escape and the usage", bad, code, stderr)
		}
		checkPrintable(t, "rm's error", stderr)
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("rm with %q: %v", bad, err)
		}
	}
}

func TestCommandHelp(t *testing.T) {
	bin := shmmapCmd(t)
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}, {"ls", "-h"}, {"ls", "--help"}, {"rm", "-h"}, {"sweep", "-h"}} {
		stdout, stderr, code := runCmd(t, bin, args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage: shmmap") || !strings.Contains(stdout, "ALIVE") || !strings.Contains(stdout, "key_base64") {
			t.Errorf("shmmap %q: exit %d, stderr %q, stdout %q; want 0 and the help on stdout", args, code, stderr, stdout)
		}
	}
}

func TestCommandUsage(t *testing.T) {
	bin := shmmapCmd(t)
	for _, args := range [][]string{{}, {"bogus"}, {"rm"}, {"rm", "--json", "/x"}, {"ls", "extra"}, {"ls", "--nope"}, {"sweep", "x"}} {
		stdout, stderr, code := runCmd(t, bin, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "usage") {
			t.Errorf("shmmap %q: exit %d, stderr %q; want 2 and the usage", args, code, stderr)
		}
	}
}

// TestSweepErrors checks that sweep prints what Sweep removed and every
// error it joined, escaped, and exits 1.
func TestSweepErrors(t *testing.T) {
	removed := []string{"/shmmap_a", "/shmmap_b\x1b[2J"}
	errs := errors.Join(
		&fs.PathError{Op: "shm_unlink", Path: "/shmmap_c\n", Err: syscall.EACCES},
		&fs.PathError{Op: "shm_unlink", Path: `/shmmap_d\`, Err: syscall.EPERM},
		errors.New("other \x1b[2J\u202e"),
	)
	old := sweep
	sweep = func() ([]string, error) { return removed, errs }
	t.Cleanup(func() { sweep = old })

	wantErr := "shmmap: shm_unlink /shmmap_c\\n: permission denied\n" +
		"shmmap: shm_unlink /shmmap_d\\\\: operation not permitted\n" +
		"shmmap: other \\x1b[2J\\u202e\n"
	var stdout, stderr bytes.Buffer
	if code := run([]string{"sweep"}, &stdout, &stderr); code != 1 {
		t.Errorf("sweep: exit %d, want 1", code)
	}
	if want := "removed /shmmap_a\nremoved /shmmap_b\\x1b[2J\n"; stdout.String() != want || stderr.String() != wantErr {
		t.Errorf("sweep printed\n%q\n%q\nwant\n%q\n%q", stdout.String(), stderr.String(), want, wantErr)
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"sweep", "--json"}, &stdout, &stderr); code != 1 {
		t.Errorf("sweep --json: exit %d, want 1", code)
	}
	var keys []string
	if err := json.Unmarshal(stdout.Bytes(), &keys); err != nil || len(keys) != 2 || keys[0] != "/shmmap_a" || keys[1] != `/shmmap_b\x1b[2J` || stderr.String() != wantErr {
		t.Errorf("sweep --json printed\n%s\n%q (%v)", stdout.Bytes(), stderr.String(), err)
	}
}

// FuzzEscape checks that escape's output is printable and that unescape
// gives back the bytes exactly.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "/shmmap_abc", "\x1b]0;pwned\x07", "a\nb\tc", "\xff\xfe", `\x41`, "\u202e", "\ufffd", "h\u00e9", "\x00", "\U0001f600\U000e0001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("escape(%q) = %q: invalid UTF-8", s, e)
		}
		for _, r := range e {
			if !unicode.IsPrint(r) {
				t.Fatalf("escape(%q) = %q has %U", s, e, r)
			}
		}
		if got, err := unescape(e); got != s || err != nil {
			t.Fatalf("unescape(escape(%q)) = %q, %v", s, got, err)
		}
	})
}
