//go:build linux

package shmmap

// Other processes at work on the same segments: a peer killed mid-write, a
// segment shrunk underneath, many processes at once.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/internal/shm"
)

func init() {
	registerHelper("scribble", helperScribble)
	registerHelper("stress", helperStress)
}

// helperScribble KEY: maps KEY and writes its own pid into it forever.
func helperScribble(args ...string) error {
	data, err := ReadWrite(args[0], 0)
	if err != nil {
		return err
	}
	fmt.Println("writing")
	for i := 0; ; i++ {
		data[i%len(data)] = byte(i)
	}
}

func TestPeerKilledMidWrite(t *testing.T) {
	keys := checkLeaks(t)
	key, data := newSegment(t, keys, 1<<20)
	cmd := helperCommand(t, "scribble", key)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line := readLine(t, bufio.NewReader(out)); line != "writing" {
		t.Fatalf("helper printed %q", line)
	}
	time.Sleep(20 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	// The survivor's mapping is intact and writable, and the data is there.
	nonzero := 0
	for _, v := range data {
		if v != 0 {
			nonzero++
		}
	}
	if nonzero == 0 {
		t.Fatal("the killed peer's writes are not visible")
	}
	for i := range data {
		data[i] = 7
	}
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
}

// TestTruncatedByAnother: another process shrinks a segment. Mappings made
// before cover pages that no longer exist (touching them faults: see the
// package doc); Read and ReadWrite then refuse sizes past the new end.
func TestTruncatedByAnother(t *testing.T) {
	keys := checkLeaks(t)
	key, _ := newSegment(t, keys, 1<<20)
	if err := os.Truncate(shm.Dir+key, 4096); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadWrite(key, 1<<20); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("ReadWrite(old size) of a truncated segment: %v, want ErrInvalidSize", err)
	}
	b, err := ReadWrite(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4096 {
		t.Fatalf("ReadWrite(key, 0) after truncation maps %d bytes, want 4096", len(b))
	}
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
}

// helperStress ROUNDS: 8 goroutines create, attach, write, verify and
// release ROUNDS times each, printing each key as it is made (so that the
// parent can remove what a helper that dies leaves), then print "done" and
// wait for stdin to close, so that the parent can inspect this process
// from outside.
func helperStress(args ...string) error {
	rounds, _ := strconv.Atoi(args[0])
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := roundTrip(4096*(1+(g+r)%8)+r, func(key string) {
					mu.Lock()
					fmt.Println(key)
					mu.Unlock()
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Println("done")
	waitStdinClosed()
	return nil
}

func TestStress(t *testing.T) {
	checkLeaks(t)
	const procs, rounds = 4, 200
	type proc struct {
		cmd   *exec.Cmd
		close func()
		lines *bufio.Reader
	}
	var ps []proc
	// Every key a helper printed, read by the test or, from a helper that
	// the test gave up on, by its cleanup; this cleanup runs after the
	// helpers' and removes what a helper that died left.
	var made []string
	t.Cleanup(func() {
		for _, key := range made {
			os.Remove(shm.Dir + key)
		}
	})
	for range procs {
		cmd := helperCommand(t, "stress", strconv.Itoa(rounds))
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewReader(out)
		t.Cleanup(func() {
			// Let it finish its rounds, which release every segment; a
			// helper killed mid-round would leave one whose key it may
			// not have printed yet. Kill it only if it hangs.
			stdin.Close()
			hung := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
			defer hung.Stop()
			for { // the keys it printed that the test did not read
				line, err := lines.ReadString('\n')
				if key := strings.TrimSpace(line); isCreateKey(key) {
					made = append(made, key)
				}
				if err != nil {
					break
				}
			}
			cmd.Wait()
		})
		ps = append(ps, proc{cmd, func() { stdin.Close() }, lines})
	}
	for _, p := range ps {
		for {
			line := readLine(t, p.lines)
			if line == "done" {
				break
			}
			if !isCreateKey(line) {
				t.Fatalf("stress helper printed %q", line)
			}
			made = append(made, line)
		}
		// From outside: no fd and no mapping of /dev/shm in the helper.
		pid := p.cmd.Process.Pid
		h, err := heldBy(pid)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.nothing(); err != nil {
			t.Errorf("helper %d: %v", pid, err)
		}
		p.close()
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v", pid, err)
		}
	}
	// And no name of theirs is left.
	if len(made) != procs*rounds*8 {
		t.Errorf("the helpers made %d segments, want %d", len(made), procs*rounds*8)
	}
	for _, key := range made {
		if _, err := os.Lstat(shm.Dir + key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a stress helper left %s: %v", key, err)
		}
	}
}
