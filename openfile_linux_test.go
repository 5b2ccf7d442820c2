package shmmap

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenFile: the file OpenFile returns is the segment's, read-only or
// read-write as asked, close-on-exec, in no table; MapFile maps it;
// bad keys, missing names and paths that leave /dev/shm are errors, and
// nothing stays open after one.
func TestOpenFile(t *testing.T) {
	keys := checkLeaks(t)
	key, data := newSegment(t, keys, 4096)
	copy(data, "made by Create")

	f, err := OpenFile(key, true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Name() != key {
		t.Errorf("Name() = %q, want %q", f.Name(), key)
	}
	if flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("F_GETFD = %#x, %v: not close-on-exec", flags, err)
	}
	m, err := MapFile(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(m.Bytes()[:14]); got != "made by Create" {
		t.Errorf("through OpenFile: %q", got)
	}
	copy(m.Bytes(), "and written by OpenFile's mapping")
	if got := string(data[:33]); got != "and written by OpenFile's mapping" {
		t.Errorf("Create's mapping sees %q", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Released, the segment's name goes; the open file stays usable.
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Stat(); err != nil {
		t.Errorf("Stat after Release: %v", err)
	}

	ro, err := OpenFile(strings.TrimPrefix(key, "/"), false) // Python's spelling
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenFile of a released key: %v, want fs.ErrNotExist", err)
	}
	if ro != nil {
		ro.Close()
	}

	key2, _ := newSegment(t, keys, 4096)
	ro, err = OpenFile(strings.TrimPrefix(key2, "/"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Write([]byte("x")); err == nil {
		t.Error("a read-only file took a write")
	}
	if _, err := MapFile(ro, 0); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("MapFile of a read-only file: %v, want fs.ErrPermission", err)
	}

	v := escapeVictims(t)
	before := takeSnapshot(t)
	for _, bad := range append([]string{"", "/", "a/b", "/..", "/.", strings.Repeat("x", 300), "nul\x00"}, v.keys...) {
		f, err := OpenFile(bad, true)
		if f != nil {
			f.Close()
			t.Errorf("OpenFile(%q) opened %q", bad, f.Name())
			continue
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != bad {
			t.Errorf("OpenFile(%q): %v, want an *fs.PathError naming the key", bad, err)
		}
	}
	if err := v.intact(); err != nil {
		t.Error(err)
	}
	if after := takeSnapshot(t); len(after.fds) != len(before.fds) {
		t.Errorf("failed opens left fds: %q, before %q", after.fds, before.fds)
	}
}

// TestCreatorOf: through an open file, the creator shows alive while its
// process holds the segment, gone once the process is killed, gone once it
// released, and never for another program's segment; a nil or closed file
// is unknown.
func TestCreatorOf(t *testing.T) {
	keys := checkLeaks(t)
	own, _ := newSegment(t, keys, 10)
	f, err := OpenFile(own, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := CreatorOf(f); got != CreatorAlive {
		t.Errorf("this process' own segment: %v, want alive", got)
	}
	if err := Release(own); err != nil {
		t.Fatal(err)
	}
	if got := CreatorOf(f); got != CreatorGone {
		t.Errorf("after Release: %v, want gone", got)
	}

	held, holder, _ := startHolder(t, keys, 1)
	g, err := OpenFile(held[0], false)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := CreatorOf(g); got != CreatorAlive {
		t.Errorf("another process' segment: %v, want alive", got)
	}
	kill(t, holder)
	if got := CreatorOf(g); got != CreatorGone { // the kernel drops the lock at exit
		t.Errorf("after SIGKILL: %v, want gone", got)
	}

	foreign := "shmmap_test_creatorof_" + strings.TrimPrefix(own, "/shmmap_")
	plantSegment(t, keys, foreign, 10)
	h, err := OpenFile(foreign, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := CreatorOf(h); got != CreatorGone {
		t.Errorf("a foreign segment: %v, want gone", got)
	}
	h.Close()
	if got := CreatorOf(h); got != CreatorUnknown {
		t.Errorf("a closed file: %v, want unknown", got)
	}
	if got := CreatorOf(nil); got != CreatorUnknown {
		t.Errorf("nil: %v, want unknown", got)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if got := CreatorOf(r); got != CreatorUnknown {
		t.Errorf("a pipe: %v, want unknown", got)
	}
}
