//go:build linux

package shmmap

// Tests written against mutations of the library that left the rest of the
// suite green: each fails if the behaviour it names is broken.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/shmmap-go/shmmap/internal/sweeplock"
	"golang.org/x/sys/unix"
)

// plantFile makes path with O_EXCL, mode 0600, holding content, as another
// program would, and removes it in cleanup.
func plantFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// holds returns the fds this process has open on the file seg describes,
// named or not: /proc/self/fd/N of an fd from O_TMPFILE reads as
// "/dev/shm/#INODE (deleted)" even once the file has its name, so the file
// is told by its inode.
func holds(t *testing.T, seg os.FileInfo) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		path := "/proc/self/fd/" + e.Name()
		if fi, err := os.Stat(path); err == nil && os.SameFile(fi, seg) {
			target, _ := os.Readlink(path)
			fds = append(fds, e.Name()+" -> "+target)
		}
	}
	return fds
}

// mustHold fails t unless path exists and holds content.
func mustHold(t *testing.T, path, content, when string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	if string(b) != content {
		t.Fatalf("%s: %s holds %q, want %q", when, path, b, content)
	}
}

// TestUnlinkEndsCreatorsClaim: after Unlink the creator no longer owns the
// name, so its Release must not remove a later segment of the same name
// made by someone else, and it no longer holds the fd of the creator's
// lock (which would keep a dead segment's memory and tell List "alive").
func TestUnlinkEndsCreatorsClaim(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t) // the planted name has Create's form and no lock: no Sweep may take it
	key, data := newSegment(t, keys, 4096)
	seg, err := os.Stat(shmDir + key)
	if err != nil {
		t.Fatal(err)
	}
	if fds := holds(t, seg); len(fds) != 1 {
		t.Fatalf("the creator holds %q on %s, want the fd of its lock", fds, key)
	}
	if err := Unlink(key); err != nil {
		t.Fatal(err)
	}
	if fds := holds(t, seg); len(fds) != 0 {
		t.Errorf("after Unlink the creator still holds %q", fds)
	}
	data[0] = 1 // still mapped

	// Another party makes a new segment under the name.
	const content = "another party's segment"
	plantFile(t, shmDir+key, content)
	if err := Release(key); err != nil {
		t.Fatalf("Release after Unlink: %v", err)
	}
	mustHold(t, shmDir+key, content, "after the first creator's Release")
	if got := creatorOf(t, key); got != CreatorGone {
		t.Errorf("List: the planted segment's creator is %v, want gone (no one holds it)", got)
	}
}

// TestCreateRetriesTakenKey: if the random key is taken, Create draws
// another and leaves the other party's file alone, whether the name comes
// last (O_TMPFILE and linkat: EEXIST from linkat) or first (O_EXCL: EEXIST
// from the open), and leaves nothing of the failed try behind.
func TestCreateRetriesTakenKey(t *testing.T) {
	checkLeaks(t)
	sweeplock.Lock(t) // the planted names have Create's form and no lock
	for _, mode := range []string{"O_TMPFILE", "named"} {
		t.Run(mode, func(t *testing.T) {
			keys := checkLeaks(t)
			if mode == "named" {
				was := noTmpfile.Swap(true)
				t.Cleanup(func() { noTmpfile.Store(was) })
			}
			seed := randomSeed()
			cryptotest.SetGlobalRandom(t, seed)
			taken, next := newKey(), newKey()
			const content = "planted"
			plantFile(t, shmDir+taken, content)
			keys.add(taken)

			cryptotest.SetGlobalRandom(t, seed) // Create draws taken first
			key, data, err := Create(4096)
			if err != nil {
				t.Fatalf("Create with its first key taken: %v", err)
			}
			keys.add(key)
			t.Cleanup(func() { Release(key) })
			if key != next {
				t.Errorf("Create made %s, want %s, the next key of the stream after the taken %s", key, next, taken)
			}
			mustHold(t, shmDir+taken, content, "after Create")
			data[4095] = 1
			if err := Release(key); err != nil {
				t.Fatal(err)
			}
			mustHold(t, shmDir+taken, content, "after Release")
		})
	}
}

// fallocateCall is one call of the fallocate seam.
type fallocateCall struct{ off, n int64 }

// wrapFallocate replaces the fallocate seam, for t, with fake, which is
// given the call's number (from 1), its arguments and the call it wraps,
// and returns the call's result. It returns the calls made. A second wrap
// in the same test wraps the first; cleanup undoes them in turn.
func wrapFallocate(t *testing.T, fake func(call int, c fallocateCall, real func() error) error) *[]fallocateCall {
	t.Helper()
	orig := fallocate
	t.Cleanup(func() { fallocate = orig })
	calls := new([]fallocateCall)
	fallocate = func(fd int, off, n int64) error {
		c := fallocateCall{off, n}
		*calls = append(*calls, c)
		return fake(len(*calls), c, func() error { return orig(fd, off, n) })
	}
	return calls
}

// reserved returns how many bytes of segment key's file have pages.
func reserved(t *testing.T, key string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(shmDir+key, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestCreateRetriesFallocateEINTR: fallocate interrupted by a signal
// (EINTR; tmpfs gives the call up and frees what it had) is retried for
// the same chunk, and Create succeeds with the whole size reserved. The
// kernel here never interrupts it, so the seam injects EINTR on every
// other call: in a segment larger than reserveChunk, on each chunk.
func TestCreateRetriesFallocateEINTR(t *testing.T) {
	keys := checkLeaks(t)
	calls := wrapFallocate(t, func(call int, _ fallocateCall, real func() error) error {
		if call%2 == 1 {
			return unix.EINTR
		}
		return real()
	})
	sizes := []int{3*4096 + 5}
	if !testing.Short() {
		sizes = append(sizes, reserveChunk+1) // two chunks; fits a 32-bit int
	}
	for _, size := range sizes {
		*calls = nil
		key, data, err := Create(size)
		if err != nil {
			t.Fatalf("Create(%d) with EINTR from every other fallocate: %v", size, err)
		}
		keys.add(key)
		t.Cleanup(func() { Release(key) })
		var want []fallocateCall
		for off := int64(0); off < int64(size); off += reserveChunk {
			c := fallocateCall{off, min(int64(size)-off, reserveChunk)}
			want = append(want, c, c) // interrupted, then again
		}
		if !slices.Equal(*calls, want) {
			t.Errorf("Create(%d): fallocate calls (off, n) %v, want %v", size, *calls, want)
		}
		if got := reserved(t, key); got < int64(size) {
			t.Errorf("Create(%d): %d bytes reserved", size, got)
		}
		if len(data) != size {
			t.Fatalf("Create(%d) gave %d bytes", size, len(data))
		}
		data[0], data[size-1] = 1, 2
		ro, err := Read(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ro) != size || ro[0] != 1 || ro[size-1] != 2 {
			t.Fatalf("Read(key, 0): %d bytes, first %d, last %d", len(ro), ro[0], ro[size-1])
		}
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCreateWithoutFallocate: where the filesystem has no fallocate
// (EOPNOTSUPP, ENODEV, ENOSYS from the first call, even after an EINTR),
// Create sets the size with ftruncate alone; pages then come at first
// touch. Any other error, and any error past the first chunk, is Create's.
func TestCreateWithoutFallocate(t *testing.T) {
	keys := checkLeaks(t)
	for _, errno := range []syscall.Errno{unix.EOPNOTSUPP, unix.ENODEV, unix.ENOSYS} {
		calls := wrapFallocate(t, func(call int, _ fallocateCall, _ func() error) error {
			if call == 1 {
				return unix.EINTR
			}
			return errno
		})
		const size = 5*4096 + 3
		key, data, err := Create(size)
		if err != nil {
			t.Fatalf("Create(%d) where fallocate is %v: %v", size, errno, err)
		}
		keys.add(key)
		t.Cleanup(func() { Release(key) })
		if len(*calls) != 2 {
			t.Errorf("fallocate %v: %d calls, want 2 (EINTR, then %v)", errno, len(*calls), errno)
		}
		if fi, err := os.Stat(shmDir + key); err != nil || fi.Size() != size {
			t.Fatalf("fallocate %v: the segment's size: %v, %v; want %d", errno, fi, err, size)
		}
		if got := reserved(t, key); got != 0 {
			t.Errorf("fallocate %v: %d bytes reserved, want none until first touch", errno, got)
		}
		data[size-1] = 1
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
	}

	// No fallback for another error (ENOSPC), nor past the first chunk:
	// the size is set by then, and a half-reserved segment is no use.
	for _, c := range []struct {
		size  int
		fails int // the call that fails
		errno syscall.Errno
	}{
		{4096, 1, unix.ENOSPC},
		{reserveChunk + 1, 2, unix.EOPNOTSUPP},
	} {
		wrapFallocate(t, func(call int, _ fallocateCall, _ func() error) error {
			if call == c.fails {
				return c.errno
			}
			return nil // as if reserved: the test takes no memory
		})
		key, _, err := Create(c.size)
		if err == nil {
			keys.add(key)
			Release(key)
		}
		var pe *fs.PathError
		if !errors.Is(err, c.errno) || !errors.As(err, &pe) || pe.Op != "fallocate" {
			t.Fatalf("Create(%d) where fallocate call %d says %v: %v, want that fallocate error", c.size, c.fails, c.errno, err)
		}
		if _, err := os.Lstat(shmDir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("failed Create left %s: %v", pe.Path, err)
		}
	}
}

// TestReapNameGoneMeanwhile: a name that another process removes between
// Sweep's check that it still names the file it locked and its unlink is
// not an error (ENOENT from the unlink), any more than one removed before
// Sweep opens it (ENOENT from the open). Concurrent Sweeps never meet the
// first case, since each holds the lock while it checks and unlinks; a
// process that removes names without the lock does. Here a goroutine links
// and unlinks a dead segment's name in a loop, through a second name that
// keeps the file, while reap (Sweep's work on one name) runs on it.
func TestReapNameGoneMeanwhile(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	key := newKey()
	keys.add(key)
	hidden := fmt.Sprintf("%s/shmmap_test_hidden_%d_%d", shmDir, os.Getpid(), time.Now().UnixNano())
	plantFile(t, hidden, "dead")
	t.Cleanup(func() { os.Remove(shmDir + key) })

	stop := make(chan struct{})
	var toggles atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			unix.Link(hidden, shmDir+key)
			unix.Unlink(shmDir + key)
			toggles.Add(1)
		}
	})
	// Until reap has removed the name often enough that the goroutine's
	// removal has surely fallen between reap's lstat and its unlink too
	// (with that ENOENT made an error, thousands of times in 2000 removals
	// on a 2-core VM, with -race or without), or the time is up.
	enough, budget := 2000, 5*time.Second
	if testing.Short() {
		enough, budget = 500, time.Second
	}
	rounds, removed, errs := 0, 0, 0
	for start := time.Now(); removed < enough && time.Since(start) < budget; rounds++ {
		ok, err := reap(key)
		if ok {
			removed++
		}
		if err != nil {
			errs++
			if errs <= 3 {
				t.Errorf("reap of a name that comes and goes: %v", err)
			}
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d rounds: %d removals, %d errors, %d toggles", rounds, removed, errs, toggles.Load())
}
