package ring

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
)

// Tests that need another process re-execute the test binary with
// helperEnv set; TestMain then runs the named helper instead of the tests
// (the pattern of os/exec's tests, as in packages shmmap and wake).
const helperEnv = "SHMMAP_RING_TEST_HELPER"

// testShmDir is where Linux shows shm names.
const testShmDir = "/dev/shm"

// helpers are the child processes' commands, by name. Each prints what its
// parent checks and exits; a failure exits 1 with the reason on stderr.
var helpers = map[string]func(args ...string) error{}

func registerHelper(name string, fn func(args ...string) error) {
	if _, dup := helpers[name]; dup {
		panic("helper " + name + " registered twice")
	}
	helpers[name] = fn
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(helperEnv) != "" {
		args := flag.Args()
		if len(args) == 0 || helpers[args[0]] == nil {
			fmt.Fprintf(os.Stderr, "unknown helper %q\n", args)
			os.Exit(2)
		}
		err := helpers[args[0]](args[1:]...)
		if rerr := shmmap.ReleaseAll(); err == nil {
			err = rerr
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", args[0], err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A child is a running helper: its stdin (closing it tells some helpers to
// finish) and its stdout, line by line. Cleanup kills it if the test ends
// first.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	waited bool
}

func startHelper(t testing.TB, name string, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: exec.Command(exe, append([]string{name}, args...)...)}
	c.cmd.Env = append(os.Environ(), helperEnv+"=1")
	c.cmd.Stderr = os.Stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdout = bufio.NewReader(out)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !c.waited {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// line reads one line from the child, failing t if none comes in a minute.
func (c *child) line(t testing.TB) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := c.stdout.ReadString('\n')
		ch <- s
	}()
	select {
	case s := <-ch:
		if !strings.HasSuffix(s, "\n") {
			t.Fatalf("helper %v ended its output with %q", c.cmd.Args[1:], s)
		}
		return strings.TrimSuffix(s, "\n")
	case <-time.After(time.Minute):
		t.Fatal("helper printed nothing for a minute")
		return ""
	}
}

// wait closes the child's stdin and waits for it to exit successfully.
func (c *child) wait(t testing.TB) {
	t.Helper()
	c.stdin.Close()
	c.waited = true
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("helper %v: %v", c.cmd.Args[1:], err)
	}
}

// kill kills the child with SIGKILL and reaps it.
func (c *child) kill(t testing.TB) {
	t.Helper()
	c.cmd.Process.Kill()
	c.cmd.Wait()
	c.waited = true
}

// checkLeaks registers a check, run after every other cleanup of t, that t
// left no fd or mapping of /dev/shm open in this process and none of the
// ring names it recorded in /dev/shm. Call it first in a test.
func checkLeaks(t *testing.T) *[]string {
	t.Helper()
	keys := new([]string)
	if runtime.GOOS != "linux" {
		return keys
	}
	before := shmHeld(t)
	t.Cleanup(func() {
		if after := shmHeld(t); after != before {
			t.Errorf("held on /dev/shm before the test: %s\nafter: %s", before, after)
		}
		for _, k := range *keys {
			if _, err := os.Lstat(testShmDir + k); !os.IsNotExist(err) {
				t.Errorf("segment %s left in /dev/shm (lstat: %v)", k, err)
				os.Remove(testShmDir + k)
			}
		}
	})
	return keys
}

// shmHeld describes the fds and mappings of /dev/shm that this process holds.
func shmHeld(t *testing.T) string {
	t.Helper()
	var held []string
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, testShmDir) {
			held = append(held, "fd "+target)
		}
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(maps), "\n") {
		if i := strings.Index(l, testShmDir); i >= 0 {
			held = append(held, "map "+l[i:])
		}
	}
	sort.Strings(held)
	return fmt.Sprint(len(held), held)
}
