//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/internal/sweeplock"
)

// shmmapCmd builds the command once per test binary and returns its path.
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
	if f := strings.Fields(line); len(f) != 7 || f[1] != "12345" || f[2] != "0600" || f[5] != strconv.Itoa(os.Getpid()) || f[6] != "yes" {
		t.Fatalf("ls line for %s: %q\n%s", key, line, out)
	}
	if !strings.HasPrefix(strings.TrimSpace(out), "KEY") {
		t.Fatalf("ls has no header:\n%s", out)
	}

	// ls --json
	out, _, code = runCmd(t, bin, "ls", "--json")
	var rows []struct {
		Key          string `json:"key"`
		Size         int64  `json:"size"`
		Mode         string `json:"mode"`
		Creator      int    `json:"creator_pid"`
		CreatorAlive *bool  `json:"creator_alive"`
	}
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil {
		t.Fatalf("ls --json: exit %d, %v\n%s", code, err, out)
	}
	found := false
	for _, r := range rows {
		if r.Key == key {
			found = r.Size == 12345 && r.Mode == "0600" && r.Creator == os.Getpid() && r.CreatorAlive != nil && *r.CreatorAlive
		}
	}
	if !found {
		t.Fatalf("ls --json lacks a right row for %s:\n%s", key, out)
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
	// rm of what is not there, or of a bad key: 1, with the reason.
	_, stderr, code := runCmd(t, bin, "rm", key, "../../etc/passwd")
	if code != 1 || !strings.Contains(stderr, "no such file") || !strings.Contains(stderr, "invalid key") {
		t.Fatalf("rm of a missing and a bad key: exit %d, stderr %q", code, stderr)
	}
}

func TestCommandUsage(t *testing.T) {
	bin := shmmapCmd(t)
	for _, args := range [][]string{{}, {"bogus"}, {"rm"}, {"ls", "extra"}, {"ls", "--nope"}, {"sweep", "x"}} {
		if _, stderr, code := runCmd(t, bin, args...); code != 2 || !strings.Contains(stderr, "usage") {
			t.Errorf("shmmap %q: exit %d, stderr %q; want 2 and the usage", args, code, stderr)
		}
	}
}
