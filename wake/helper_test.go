package wake

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
)

// Tests that need another process re-execute the test binary with helperEnv
// set; TestMain then runs the named helper instead of the tests (the
// pattern of os/exec's tests, as in package shmmap).
const helperEnv = "SHMMAP_WAKE_TEST_HELPER"

// helpers are the child processes' commands, by name. Each prints what its
// parent checks and exits; a failure exits 1 with the reason on stderr.
var helpers = map[string]func(args ...string) error{}

// registerHelper adds a helper command; a name used twice is a bug in the
// tests, caught when the test binary starts.
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

// helperCommand returns a command that runs helper name in a child process.
func helperCommand(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	return cmd
}

// A child is a running helper: its stdin (closing it tells the helper to
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
	c := &child{cmd: helperCommand(t, name, args...)}
	var err error
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

// line reads one line from the child, without its newline, failing the test
// if none comes within a minute.
func (c *child) line(t testing.TB) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := c.stdout.ReadString('\n')
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading from helper: %v (got %q)", r.err, r.s)
		}
		return strings.TrimSuffix(r.s, "\n")
	case <-time.After(time.Minute):
		t.Fatal("helper printed nothing for a minute")
		return ""
	}
}

// wait closes the child's stdin and waits for it to exit.
func (c *child) wait(t testing.TB) {
	t.Helper()
	c.stdin.Close()
	c.waited = true
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("helper %v: %v", c.cmd.Args[1:], err)
	}
}

// segment makes a segment of size bytes for t, released in cleanup, and
// returns its key and its 32-bit words.
func segment(t testing.TB, size int) (string, []uint32) {
	t.Helper()
	key, data, err := shmmap.Create(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shmmap.Release(key) })
	words, err := shmmap.View[uint32](data)
	if err != nil {
		t.Fatal(err)
	}
	return key, words
}

// attachWord maps segment key (read-only if mode is "ro") and returns its
// word at index i, for helpers.
func attachWord(key, index, mode string) (*uint32, error) {
	i, err := strconv.Atoi(index)
	if err != nil {
		return nil, err
	}
	attach := shmmap.ReadWrite
	if mode == "ro" {
		attach = shmmap.Read
	}
	data, err := attach(key, 0)
	if err != nil {
		return nil, err
	}
	words, err := shmmap.View[uint32](data)
	if err != nil {
		return nil, err
	}
	return &words[i], nil
}

// noLeaks registers a check, run after every other cleanup of t, that the
// goroutines t started are gone: a Wait leaves nothing behind. Goroutines
// take a moment to exit, so it polls.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var n int
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if n = runtime.NumGoroutine(); n <= before {
				return
			}
		}
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before the test, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	})
}

// wakeUntil calls Wake(w, n) until it has woken want waiters in all, and
// fails t if that takes more than 10 s: a waiter that a Wake cannot find
// (in another process, say) must fail the test, not hang it.
func wakeUntil(t testing.TB, w *uint32, n, want int) {
	t.Helper()
	total := 0
	for end := time.Now().Add(10 * time.Second); total < want; {
		k, err := Wake(w, n)
		if err != nil {
			t.Fatalf("Wake: %v", err)
		}
		total += k
		if time.Now().After(end) {
			t.Fatalf("Wake found %d waiters in 10 s, want %d", total, want)
		}
		if total < want {
			time.Sleep(time.Millisecond)
		}
	}
	if total != want {
		t.Fatalf("Wake woke %d waiters, want %d", total, want)
	}
}
