//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/internal/sweeplock"
)

// holdEnv makes the test binary a holder instead: it creates two segments,
// prints their keys and "ready", and holds them until stdin closes or it is
// killed.
const holdEnv = "SHMMAP_CMD_TEST_HOLD"

func TestMain(m *testing.M) {
	if os.Getenv(holdEnv) != "" {
		for range 2 {
			key, _, err := shmmap.Create(4096)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println(key)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		shmmap.ReleaseAll()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// unshared returns argv run under unshare(1) in a new pid namespace with
// its own /proc (nil: as it is), killed if unshare dies.
func unshared(ns bool, argv ...string) *exec.Cmd {
	if ns {
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--"}, argv...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

// TestSweepAcrossPidNamespaces runs shmmap sweep and ls in one pid
// namespace and the creator in another, both ways round: the live
// creator's segments stay and show alive; once it is killed they show dead
// and sweep removes them.
func TestSweepAcrossPidNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make pid namespaces")
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare cannot make a pid namespace here: %v: %s", err, out)
	}
	bin := shmmapCmd(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name             string
		creator, sweeper bool // in a new pid namespace
	}{
		{"creator in a pid namespace", true, false},
		{"sweeper in a pid namespace", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			sweeplock.Lock(t)
			holder := unshared(c.creator, exe)
			holder.Env = append(os.Environ(), holdEnv+"=1")
			holder.Stderr = os.Stderr
			stdin, _ := holder.StdinPipe()
			stdout, _ := holder.StdoutPipe()
			if err := holder.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { stdin.Close(); holder.Process.Kill(); holder.Wait() })
			var keys []string
			r := bufio.NewReader(stdout)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("holder: %v", err)
				}
				if line = strings.TrimSpace(line); line == "ready" {
					break
				}
				keys = append(keys, line)
				t.Cleanup(func() { os.Remove("/dev/shm" + line) })
			}

			run := func(args ...string) string {
				t.Helper()
				cmd := unshared(c.sweeper, append([]string{bin}, args...)...)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("shmmap %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			alive := func(key string) string {
				for _, line := range strings.Split(run("ls"), "\n") {
					if f := strings.Fields(line); len(f) > 0 && f[0] == key {
						return f[len(f)-1]
					}
				}
				return "missing"
			}

			out := run("sweep")
			for _, k := range keys {
				if strings.Contains(out, k) {
					t.Errorf("sweep removed %s of a live creator:\n%s", k, out)
				}
				if a := alive(k); a != "yes" {
					t.Errorf("ls: %s ALIVE %s, want yes", k, a)
				}
			}

			holder.Process.Kill()
			holder.Wait()
			deadline := time.Now().Add(10 * time.Second)
			for _, k := range keys {
				for alive(k) != "no" {
					if time.Now().After(deadline) {
						t.Fatalf("ls: %s ALIVE %s 10 s after its creator was killed, want no", k, alive(k))
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			var removed []string
			for _, line := range strings.Split(run("sweep"), "\n") {
				removed = append(removed, strings.TrimPrefix(line, "removed "))
			}
			for _, k := range keys {
				if !slices.Contains(removed, k) {
					t.Errorf("sweep did not remove %s of a dead creator (removed %q)", k, removed)
				}
			}
		})
	}
}
