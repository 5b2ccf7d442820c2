// Package testproc runs a test binary's helper commands in child processes,
// as os/exec's own tests do: the binary re-executes itself with an
// environment variable set, and TestMain runs the named helper instead of
// the tests. The module's packages share it, so that each has one way to
// start a copy of itself.
package testproc

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Helpers is a test binary's set of helper commands, run when env is set.
type Helpers struct {
	env string
	fns map[string]func(args ...string) error
}

// New returns an empty set of helpers, selected by environment variable env.
func New(env string) *Helpers {
	return &Helpers{env: env, fns: map[string]func(args ...string) error{}}
}

// Register adds helper name. A name used twice is a bug in the tests, and
// panics when the test binary starts.
func (h *Helpers) Register(name string, fn func(args ...string) error) {
	if _, dup := h.fns[name]; dup {
		panic("helper " + name + " registered twice")
	}
	h.fns[name] = fn
}

// Run, called in TestMain after flag.Parse, returns at once in the test
// process. In a helper process it runs the helper that the command line
// names, between before (say, dropping privileges) and after (say,
// releasing what the helper held), and exits: 0, or 1 with the first error
// on stderr, or 2 for a helper that does not exist.
func (h *Helpers) Run(before, after func() error) {
	if os.Getenv(h.env) == "" {
		return
	}
	args := flag.Args()
	if len(args) == 0 || h.fns[args[0]] == nil {
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", args)
		os.Exit(2)
	}
	var err error
	if before != nil {
		err = before()
	}
	if err == nil {
		err = h.fns[args[0]](args[1:]...)
	}
	if after != nil {
		if aerr := after(); err == nil {
			err = aerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", args[0], err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Command returns a command that runs helper name in a child process: the
// test binary, re-executed. The child is killed if it runs for d, or is
// still running when t ends, so that a helper that hangs fails its test
// rather than the whole suite.
func (h *Helpers) Command(t testing.TB, d time.Duration, name string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, exe, append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), h.env+"=1")
	return cmd
}

// A Child is a running helper: its stdin (closing it tells the helpers
// that wait for it to finish) and its stdout, line by line.
type Child struct {
	Cmd    *exec.Cmd
	Stdin  io.WriteCloser // closed by Wait
	stdout *bufio.Reader
	waited bool
}

// Timeout is the deadline of the helpers that Start starts.
const Timeout = 3 * time.Minute

// Start starts helper name, killed after Timeout, with its stderr the
// test's. Cleanup kills it if the test ends first.
func (h *Helpers) Start(t testing.TB, name string, args ...string) *Child {
	t.Helper()
	c := &Child{Cmd: h.Command(t, Timeout, name, args...)}
	c.Cmd.Stderr = os.Stderr
	var err error
	if c.Stdin, err = c.Cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := c.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdout = bufio.NewReader(out)
	if err := c.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !c.waited {
			c.Cmd.Process.Kill()
			c.Cmd.Wait()
		}
	})
	return c
}

// Line reads one line from the child, without its newline, failing t if
// the child ends its output without one, or prints nothing for a minute.
func (c *Child) Line(t testing.TB) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := c.stdout.ReadString('\n')
		ch <- s
	}()
	select {
	case s := <-ch:
		if !strings.HasSuffix(s, "\n") {
			t.Fatalf("helper %v ended its output with %q", c.Cmd.Args[1:], s)
		}
		return strings.TrimSuffix(s, "\n")
	case <-time.After(time.Minute):
		t.Fatalf("helper %v printed nothing for a minute", c.Cmd.Args[1:])
		return ""
	}
}

// Wait closes the child's stdin and waits for it to exit, failing t unless
// it exits successfully.
func (c *Child) Wait(t testing.TB) {
	t.Helper()
	c.Stdin.Close()
	c.waited = true
	if err := c.Cmd.Wait(); err != nil {
		t.Fatalf("helper %v: %v", c.Cmd.Args[1:], err)
	}
}

// Kill kills the child with SIGKILL and reaps it.
func (c *Child) Kill(t testing.TB) {
	t.Helper()
	c.Cmd.Process.Kill()
	c.Cmd.Wait()
	c.waited = true
}

// KillNoWait kills the child with SIGKILL and does not reap it: once dead,
// it stays a zombie (dead, its pid kept until its parent waits) until Kill
// or the test's cleanup reaps it. Go reaps no child on its own.
func (c *Child) KillNoWait(t testing.TB) {
	t.Helper()
	if err := c.Cmd.Process.Kill(); err != nil {
		t.Fatalf("kill helper %v: %v", c.Cmd.Args[1:], err)
	}
}

// Zombie reports whether the child has exited, every thread of it, and is
// not yet reaped, as the kernel tells: /proc on Linux, sysctl on macOS. A
// child already reaped is an error, as the kernel no longer knows its pid.
func (c *Child) Zombie() (bool, error) { return zombie(c.Cmd.Process.Pid) }
