//go:build linux

package shmmap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("open-odd", helperOpenOdd)
	registerHelper("map-count", helperMapCount)
}

// helperOpenOdd KEY...: maps each key with Read and ReadWrite, whole and
// in part, while the garbage collector runs, and prints each error as
// "KEY OP ERR". A raw open that blocked (a FIFO opened without O_NONBLOCK)
// would keep its P, the next collection would wait for it, and nothing
// would run again, the timer below included: the parent's deadline then
// kills the helper, and the test fails instead of hanging.
func helperOpenOdd(keys ...string) error {
	done := make(chan []string)
	go func() {
		var lines []string
		for _, key := range keys {
			for _, c := range []struct {
				op   string
				open func() ([]byte, error)
			}{
				{"Read", func() ([]byte, error) { return Read(key, 0) }},
				{"ReadWrite", func() ([]byte, error) { return ReadWrite(key, 0) }},
				{"Read10", func() ([]byte, error) { return Read(key, 10) }},
				{"ReadWrite10", func() ([]byte, error) { return ReadWrite(key, 10) }},
			} {
				_, err := c.open()
				lines = append(lines, fmt.Sprintf("%s %s %v %v", key, c.op, errors.Is(err, ErrNotSegment), err))
			}
		}
		done <- lines
	}()
	for range 3 {
		runtime.GC()
	}
	select {
	case lines := <-done:
		for _, l := range lines {
			fmt.Println(l)
		}
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("opening the keys did not return in 10 s")
	}
}

// TestNotSegment: a FIFO, a directory, a socket or a symlink that anyone put
// in /dev/shm under a key is an ErrNotSegment error naming the key and
// what is there, at once, and the program goes on.
func TestNotSegment(t *testing.T) {
	checkLeaks(t)
	victim := t.TempDir() + "/victim"
	if err := os.WriteFile(victim, []byte("a segment's worth"), 0o666); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]func(path string) error{
		"a FIFO":          func(p string) error { return unix.Mkfifo(p, 0o666) },
		"a directory":     func(p string) error { return os.Mkdir(p, 0o777) },
		"a symbolic link": func(p string) error { return os.Symlink(victim, p) },
		"a socket": func(p string) error {
			l, err := net.Listen("unix", p)
			if err == nil {
				t.Cleanup(func() { l.Close() })
			}
			return err
		},
	}
	byKey := map[string]string{}
	var keys []string
	for kind, plant := range kinds {
		key := fmt.Sprintf("shmmap_test_odd_%d_%s", os.Getpid(), strings.ReplaceAll(kind, " ", "_"))
		path := shmDir + "/" + key
		if err := plant(path); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		t.Cleanup(func() { os.Remove(path) })
		byKey[key] = kind
		keys = append(keys, key)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := helperCommand(t, "open-odd", keys...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v after %v (a hang is killed after 30 s)\n%s", err, time.Since(start).Round(time.Millisecond), out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4*len(keys) {
		t.Fatalf("helper printed %d lines, want %d:\n%s", len(lines), 4*len(keys), out)
	}
	for _, line := range lines {
		key, rest, _ := strings.Cut(line, " ")
		op, rest, _ := strings.Cut(rest, " ")
		want := fmt.Sprintf("true shm_open %s: shmmap: not a shared memory segment: it is %s", key, byKey[key])
		if !strings.HasPrefix(rest, want) {
			t.Errorf("%s(%s) of %s: %s\nwant %s...", op, key, byKey[key], rest, want)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "a segment's worth" {
		t.Errorf("the symlink's target: %q, %v", b, err)
	}
}

// helperMapCount: takes every mapping vm.max_map_count allows, then
// Creates and prints the error. At the limit the Go runtime itself cannot
// map memory for a new span (a fatal error, whatever the library does), so
// the heap is grown and freed first and the collector stopped: Create's
// few small allocations then come from spans the runtime already has.
func helperMapCount(args ...string) error {
	junk := make([][]byte, 0, 1<<16)
	for i := range 1 << 16 {
		junk = append(junk, make([]byte, 8+i%1024))
	}
	junk = nil
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	maps := make([]unsafe.Pointer, 0, 1<<17)
	for i := 0; ; i++ {
		// Alternate the protection so that neighbours do not merge.
		prot := unix.PROT_READ
		if i%2 == 1 {
			prot = unix.PROT_NONE
		}
		p, err := unix.MmapPtr(-1, 0, nil, 4096, prot, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err == unix.ENOMEM {
			break
		}
		if err != nil {
			return err
		}
		maps = append(maps, p)
	}
	_, _, err := Create(4096)
	for _, p := range maps {
		unix.MunmapPtr(p, 4096)
	}
	var pe *fs.PathError
	if !errors.Is(err, syscall.ENOMEM) || !errors.As(err, &pe) || pe.Op != "mmap" {
		return fmt.Errorf("Create at the map count: %v, want an ENOMEM from mmap", err)
	}
	if _, err := os.Lstat(shmDir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed Create left %s: %v", pe.Path, err)
	}
	fmt.Println(err)
	return ownLeftovers()
}

// TestMapCount: at vm.max_map_count, Create's ENOMEM says so.
func TestMapCount(t *testing.T) {
	checkLeaks(t)
	out := runHelper(t, "map-count")
	if !strings.Contains(out, "cannot allocate memory: this process has") ||
		!strings.Contains(out, "at the limit vm.max_map_count =") || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("helper printed %q, want ENOMEM naming vm.max_map_count", out)
	}
}

// TestMessages reads the messages of errors whose wording once misled.
func TestMessages(t *testing.T) {
	checkLeaks(t)
	for _, c := range []struct {
		err  error
		want string
	}{
		{second(Read(strings.Repeat("k", 256), 0)),
			`shm_open ` + strings.Repeat("k", 256) + `: shmmap: invalid key: "` + strings.Repeat("k", 256) + `" is 257 bytes with its leading slash, more than 256`},
		{second(Read("/"+strings.Repeat("k", 256), 0)),
			`is 257 bytes with its leading slash, more than 256`},
		{second(Read("/x", -1)), "mmap /x: shmmap: invalid size -1: want 0 <= size <= "},
		{func() error { _, _, err := Create(0); return err }(), "create : shmmap: invalid size 0: want 0 < size <= "},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("error %q, want it to contain %q", c.err, c.want)
		}
	}
}
