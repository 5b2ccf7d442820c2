//go:build linux

package shmmap

// Read and ReadWrite of what other programs and other users put in /dev/shm.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("open-odd", helperOpenOdd)
}

// openClose opens the file of key, as Map keeps it, and closes it.
func openClose(key string, writable bool) error {
	f, err := openFile(key, writable)
	if f != nil {
		f.Close()
	}
	return err
}

// helperOpenOdd KEY...: maps each key with Read and ReadWrite, whole and in
// part, and opens its file, while the garbage collector runs, and prints
// each error as "KEY OP ERR". A raw open that blocked (a FIFO opened without
// O_NONBLOCK) would keep its P, the next collection would wait for it, and
// nothing would run again, the timer below included: the parent's deadline
// then kills the helper, and the test fails instead of hanging.
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
				{"open", func() ([]byte, error) { return nil, openClose(key, false) }},
				{"open-rw", func() ([]byte, error) { return nil, openClose(key, true) }},
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
		path := shm.Dir + "/" + key
		if err := plant(path); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		t.Cleanup(func() { os.Remove(path) })
		byKey[key] = kind
		keys = append(keys, key)
	}

	cmd := helperWithin(t, 30*time.Second, "open-odd", keys...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v after %v (a hang is killed after 30 s)\n%s", err, time.Since(start).Round(time.Millisecond), out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 6*len(keys) {
		t.Fatalf("helper printed %d lines, want %d:\n%s", len(lines), 6*len(keys), out)
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

// TestForeignSegments attaches to names made as other programs make them:
// Python's (no slash in the name given), the longest Linux allows, empty.
func TestForeignSegments(t *testing.T) {
	keys := checkLeaks(t)
	pyName := "psm_" + strconv.Itoa(os.Getpid()) + "_t"
	plantSegment(t, keys, pyName, 10000)
	for _, key := range []string{pyName, "/" + pyName} {
		b, err := ReadWrite(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 10000 {
			t.Fatalf("ReadWrite(%q, 0) maps %d bytes, want 10000", key, len(b))
		}
	}
	if err := Release(pyName); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(shm.Dir, pyName)); err != nil {
		t.Fatalf("Release of an attached segment removed its name: %v", err)
	}

	long := strings.Repeat("L", 255-len(pyName)) + pyName
	plantSegment(t, keys, long, 4096)
	if _, err := Read(long, 0); err != nil {
		t.Fatalf("Read of a 255-byte name: %v", err)
	}
	if err := Release(long); err != nil {
		t.Fatal(err)
	}
	if _, err := Read("x"+long, 0); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Read of a 256-byte name: %v, want ErrInvalidKey", err)
	}

	empty := "shmmap_test_empty_" + strconv.Itoa(os.Getpid())
	plantSegment(t, keys, empty, 0)
	if _, err := Read(empty, 0); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("Read(empty segment, 0): %v, want ErrInvalidSize", err)
	}

	// A symlink in /dev/shm is not followed.
	link := "shmmap_test_link_" + strconv.Itoa(os.Getpid())
	if err := os.Symlink(filepath.Join(shm.Dir, pyName), filepath.Join(shm.Dir, link)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(shm.Dir, link)) })
	keys.add("/" + link)
	if _, err := Read(link, 0); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("Read of a symlink: %v, want ELOOP", err)
	}
}

// plantSegment makes a segment named name (no leading slash) of size bytes
// directly in /dev/shm, as another program would, and removes it in cleanup.
func plantSegment(t *testing.T, keys *keySet, name string, size int) {
	t.Helper()
	path := filepath.Join(shm.Dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	keys.add("/" + name)
	t.Cleanup(func() { os.Remove(path) })
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
}
