package shmmap

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/internal/shm"
	"github.com/shmmap-go/shmmap/internal/testproc"
)

// helperUIDEnv, if set, is the uid (and gid) a helper runs as: the helper
// process starts as root and drops to it before it does anything else.
const helperUIDEnv = "SHMMAP_TEST_UID"

// becomeUser drops every privilege for uid and gid id; "" keeps them.
func becomeUser(id string) error {
	if id == "" {
		return nil
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return err
	}
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(n); err != nil {
		return err
	}
	return syscall.Setuid(n)
}

// helpers are the child processes' commands, by name (internal/testproc):
// tests that need another process re-execute the test binary, which then
// runs the named helper instead of the tests. Each prints what its parent
// checks and exits; a failure exits 1 with the reason on stderr.
var helpers = testproc.New("SHMMAP_TEST_HELPER")

// registerHelper adds a helper command; a name used twice panics.
func registerHelper(name string, fn func(args ...string) error) { helpers.Register(name, fn) }

func TestMain(m *testing.M) {
	flag.Parse()
	helpers.Run(func() error { return becomeUser(os.Getenv(helperUIDEnv)) }, ReleaseAll)
	// Start the runtime's network poller, which keeps an fd of its own, so
	// that a test's first child process does not change the fd count.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	os.Exit(m.Run())
}

// helperCommand returns a command that runs helper name in a child process:
// the test binary, re-executed. It is the one way the tests start a copy of
// themselves. The child is killed if it runs for testproc.Timeout, or is
// still running when t ends.
func helperCommand(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	return helpers.Command(t, testproc.Timeout, name, args...)
}

// runHelper runs helper name to completion and returns its stdout; it
// fails the test with the helper's output if the helper fails.
func runHelper(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := helperCommand(t, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s %q: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, out, stderr.Bytes())
	}
	return string(out)
}

// startHelper starts helper name with a pipe to its stdin and a reader on
// its stdout; closing stdin tells it to finish. Cleanup kills it if the test
// ends first.
func startHelper(t *testing.T, name string, args ...string) (cmd *exec.Cmd, stdin io.WriteCloser, stdout *bufio.Reader, wait func() error) {
	t.Helper()
	cmd = helperCommand(t, name, args...)
	stdin, stdout, wait = startCommand(t, cmd)
	return cmd, stdin, stdout, wait
}

// startCommand starts cmd as startHelper does; its stderr goes to the test's
// unless cmd.Stderr is set.
func startCommand(t *testing.T, cmd *exec.Cmd) (stdin io.WriteCloser, stdout *bufio.Reader, wait func() error) {
	t.Helper()
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return stdin, bufio.NewReader(out), func() error {
		done = true
		return cmd.Wait()
	}
}

// readLine reads one line from a helper, without its newline.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from helper: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

// waitStdinClosed blocks until the parent closes the helper's stdin.
func waitStdinClosed() { io.Copy(io.Discard, os.Stdin) }

// takeSnapshot returns what this process holds of /dev/shm now.
func takeSnapshot(t *testing.T) held {
	t.Helper()
	h, err := heldBy(0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkLeaks registers a check, run after every other cleanup of t, that t
// left no fd, no mapping and no /dev/shm name of its own behind. Call it
// first in a test; track the names the test makes with t's keys.
func checkLeaks(t *testing.T) *keySet {
	t.Helper()
	if runtime.GOOS != "linux" {
		return &keySet{}
	}
	before := takeSnapshot(t)
	keys := &keySet{}
	t.Cleanup(func() {
		after := takeSnapshot(t)
		if after.fdCount != before.fdCount {
			t.Errorf("fd count: %d before the test, %d after", before.fdCount, after.fdCount)
		}
		if fmt.Sprint(after.fds) != fmt.Sprint(before.fds) {
			t.Errorf("fds open on /dev/shm: %s before the test, %s after", brief(before.fds), brief(after.fds))
		}
		if fmt.Sprint(after.maps) != fmt.Sprint(before.maps) {
			t.Errorf("mappings of /dev/shm: %s before the test, %s after", brief(before.maps), brief(after.maps))
		}
		for _, k := range keys.list() {
			if _, err := os.Lstat(shm.Dir + canonical(k)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("segment %s left in /dev/shm (lstat: %v)", k, err)
				os.Remove(shm.Dir + canonical(k))
			}
		}
	})
	return keys
}

// brief describes a list by its length and first few entries.
func brief(list []string) string {
	if len(list) > 3 {
		return fmt.Sprintf("%d, first %q", len(list), list[:3])
	}
	return fmt.Sprintf("%d %q", len(list), list)
}

// keySet records the names a test made, for checkLeaks.
type keySet struct{ keys []string }

func (s *keySet) add(k string)   { s.keys = append(s.keys, k) }
func (s *keySet) list() []string { return s.keys }

// newSegment creates a segment of size bytes for t, released in cleanup
// even if the test fails (the test may release it first).
func newSegment(t *testing.T, keys *keySet, size int) (string, []byte) {
	t.Helper()
	key, data, err := Create(size)
	if err != nil {
		t.Fatalf("Create(%d): %v", size, err)
	}
	keys.add(key)
	t.Cleanup(func() { Release(key) })
	return key, data
}

// newHandle creates a named segment of size bytes for t through a handle,
// closed in cleanup even if the test fails (the test may close it first).
func newHandle(t *testing.T, keys *keySet, size int) *Mapping {
	t.Helper()
	m, err := CreateNamed(size)
	if err != nil {
		t.Fatalf("CreateNamed(%d): %v", size, err)
	}
	keys.add(m.Key())
	t.Cleanup(func() { m.Close() })
	return m
}

// mapHandle maps size bytes of segment key, read-write or read-only,
// through a handle closed in cleanup (the test may close it first).
func mapHandle(t *testing.T, key string, size int, writable bool) *Mapping {
	t.Helper()
	mapFn := MapReadOnly
	if writable {
		mapFn = Map
	}
	m, err := mapFn(key, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// bigInt returns x as an int, or skips t where an int cannot hold it (on
// 32-bit systems), so that tests of large sizes compile everywhere.
func bigInt(t testing.TB, x int64) int {
	t.Helper()
	if int64(int(x)) != x {
		t.Skipf("%d does not fit in a %d-bit int", x, strconv.IntSize)
	}
	return int(x)
}

// victims are files of a test's own that its path escapes aim at, so that
// a regression in key validation, with the suite running as root, harms
// nothing but them: one in t.TempDir() and, where there is a shm
// directory, one in it reached through "..".
type victims struct {
	keys  []string // escapes that reach the victims if taken as paths
	paths []string
	infos []os.FileInfo
}

// victimContent is what every victim holds.
const victimContent = "a file of the test's own, aimed at by path escapes: it must stay as it is\n"

// escapeVictims makes t's victims and the keys that reach them from the shm
// directory, computed after resolving the symlinks of both, as the kernel
// would: "../../tmp/TestBadKeys123/001/victim". Cleanup removes them.
func escapeVictims(t testing.TB) *victims {
	t.Helper()
	return escapeVictimsFrom(t, shm.Dir)
}

// escapeVictimsFrom is escapeVictims with the shm directory dir. macOS has
// none (dir ""): its shm names are not paths (shm_darwin.go), so a key with
// a slash names no file there, and the keys are the victim's path from the
// root, which a key must still be refused as.
func escapeVictimsFrom(t testing.TB, dir string) *victims {
	t.Helper()
	v := &victims{}
	plant := func(path string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
		_, err = f.WriteString(victimContent)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		v.paths = append(v.paths, path)
		v.infos = append(v.infos, fi)
	}
	resolve := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return p
	}
	shm := "/"
	if dir != "" {
		shm = resolve(dir)
	}

	victim := filepath.Join(t.TempDir(), "victim")
	plant(victim)
	to := resolve(victim)
	rel, err := filepath.Rel(shm, to)
	if err != nil {
		t.Fatal(err)
	}
	v.keys = append(v.keys,
		rel,
		"/"+rel,
		"/../../../../../../../.."+to, // more ".." than there are directories
	)
	if dir != "" {
		// Out of the shm directory and back in, to a name of the test's
		// own (not of Create's form, so that no Sweep takes it).
		name := fmt.Sprintf("shmmap_test_victim_%d_%d", os.Getpid(), time.Now().UnixNano())
		plant(filepath.Join(dir, name))
		v.keys = append(v.keys,
			"/../"+filepath.Base(shm)+"/"+name,
			"../../../../../../../.."+shm+"/"+name,
			"/"+name+"/",
		)
	}
	return v
}

// intact reports whether every victim is still there, as it was made.
func (v *victims) intact() error {
	for i, path := range v.paths {
		before := v.infos[i]
		now, err := os.Lstat(path)
		if err != nil {
			return fmt.Errorf("the path escapes' target %s: %w", path, err)
		}
		if !os.SameFile(before, now) || now.Mode() != before.Mode() || now.Size() != before.Size() || !now.ModTime().Equal(before.ModTime()) {
			return fmt.Errorf("the path escapes' target %s changed: %v %d bytes %v, was %v %d bytes %v",
				path, now.Mode(), now.Size(), now.ModTime(), before.Mode(), before.Size(), before.ModTime())
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != victimContent {
			return fmt.Errorf("the path escapes' target %s holds %q (%v), want %q", path, b, err, victimContent)
		}
	}
	return nil
}

// safe reports whether key may be given to Unlink and ReadWrite even if
// they took it for a path without checking it: what it would reach (see
// wouldReach) does not exist, or is a directory (which neither can remove
// or write to), or is a victim. Another program's file under /dev/shm/a
// makes "a\x00b" unsafe, say. (Another program could make the file just
// after the check; that is a risk only if key validation is broken.)
func (v *victims) safe(key string) bool {
	fi, err := os.Lstat(wouldReach(key))
	if err != nil || fi.IsDir() {
		return true // ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP: so would the call fail
	}
	for _, own := range v.infos {
		if os.SameFile(fi, own) {
			return true
		}
	}
	return false
}

// wouldReach returns the path that key names if a function took it as a
// path under the shm directory without checking it: the directory, a slash,
// and the key without its leading slash, up to any NUL (which ends the C
// string that the kernel reads).
func wouldReach(key string) string {
	name := strings.TrimPrefix(key, "/")
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return shm.Dir + "/" + name
}

// ints returns those of xs that an int can hold: a table of sizes for
// every system.
func ints(xs ...int64) []int {
	var out []int
	for _, x := range xs {
		if int64(int(x)) == x {
			out = append(out, int(x))
		}
	}
	return out
}
