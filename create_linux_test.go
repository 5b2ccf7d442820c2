//go:build linux

package shmmap

// How Create makes a segment on Linux: its mode and owner, its fds, the
// retries on a taken key and on EINTR, the ftruncate fallback, Populate.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/cryptotest"
	"time"
	"unsafe"

	"github.com/shmmap-go/shmmap/internal/shm"
	"github.com/shmmap-go/shmmap/internal/sweeplock"
	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("mode", helperMode)
	registerHelper("fds", helperFDs)
	registerHelper("as-nobody", helperAsNobody)
}

// TestCreateUnderSignals is a stress test: it creates a segment larger
// than reserveChunk, without and with Populate, while signals rain on the
// process and busy goroutines keep the runtime preempting its threads, and
// checks that Create succeeds and the segment's ends are writable. It was
// written as the test of Create's EINTR retries, but it cannot fail for
// want of one: on the machine it was checked on (Linux 6.18, 2 cores), a
// wrapped fallocate saw no EINTR in any run, so the retries are never
// reached. TestCreateRetriesFallocateEINTR injects the EINTR instead.
//
// The size is 3 GiB and a bit (four chunks) where an int holds it, else
// (32-bit systems) 1 GiB and a bit (two chunks).
func TestCreateUnderSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("reserves GiBs of shared memory")
	}
	keys := checkLeaks(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var signals atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() { // busy: the runtime preempts it with signals
			defer wg.Done()
			x := 0
			for {
				select {
				case <-stop:
					return
				default:
					for i := range 1 << 16 {
						x += i
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // process-directed signals land on any thread, the syscall's too
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Microsecond):
				unix.Kill(os.Getpid(), unix.SIGURG)
				signals.Add(1)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	size64 := int64(3<<30 + 12345)
	if int64(int(size64)) != size64 {
		size64 = 1<<30 + 12345
	}
	size := int(size64)
	for _, opts := range [][]Option{nil, {Populate()}} {
		key, data, err := Create(size, opts...)
		if err != nil {
			t.Fatal(err)
		}
		keys.add(key)
		t.Cleanup(func() { Release(key) })
		data[0], data[size-1] = 1, 1
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d signals sent", signals.Load())
}

// helperMode UMASK: creates a segment under that umask and prints its mode.
func helperMode(args ...string) error {
	mask, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		return err
	}
	unix.Umask(int(mask))
	key, _, err := Create(4096)
	if err != nil {
		return err
	}
	fi, err := os.Stat(shm.Dir + key)
	if err != nil {
		return err
	}
	fmt.Printf("%#o\n", fi.Mode().Perm())
	return Release(key)
}

// helperFDs prints every fd and mapping of shared memory (a /dev/shm file,
// a memfd) that this process has: an exec'd child must have none.
func helperFDs(args ...string) error {
	h, err := heldBy(0)
	for _, fd := range h.fds {
		fmt.Println("fd", fd)
	}
	for _, m := range h.maps {
		fmt.Println("map", m)
	}
	return err
}

// helperAsNobody KEY: drops root for uid and gid 65534, then tries to map
// KEY and prints the error.
func helperAsNobody(args ...string) error {
	if err := syscall.Setgid(65534); err != nil {
		return err
	}
	if err := syscall.Setuid(65534); err != nil {
		return err
	}
	_, err := ReadWrite(args[0], 0)
	fmt.Println(errors.Is(err, fs.ErrPermission), err)
	_, err = Read(args[0], 0)
	fmt.Println(errors.Is(err, fs.ErrPermission), err)
	return nil
}

func TestMode(t *testing.T) {
	checkLeaks(t)
	for _, mask := range []string{"0", "022", "077", "0277", "0777"} {
		if got := strings.TrimSpace(runHelper(t, "mode", mask)); got != "0600" {
			t.Errorf("mode under umask %s: %s, want 0600", mask, got)
		}
	}
}

func TestPermission(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	keys := checkLeaks(t)
	key, _ := newSegment(t, keys, 4096)
	out := runHelper(t, "as-nobody", key)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "true ") || !strings.Contains(line, key) {
			t.Errorf("another user mapping a 0600 segment: %q, want an fs.ErrPermission error naming the key", line)
		}
	}
}

// TestNoInheritance execs children while other goroutines create and attach
// segments, named and anonymous: no child may inherit an fd (O_CLOEXEC,
// MFD_CLOEXEC) or a mapping.
func TestNoInheritance(t *testing.T) {
	keys := checkLeaks(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				key, _, err := Create(1 << 16)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				keys.add(key)
				mu.Unlock()
				_, err = Read(key, 0)
				if rerr := Release(key); err == nil {
					err = rerr
				}
				if err == nil {
					err = anonymousRoundTrip()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 8 {
		if out := runHelper(t, "fds"); out != "" {
			t.Errorf("an exec'd child inherited:\n%s", out)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// anonymousRoundTrip creates an anonymous segment, maps its file a second
// time and closes both.
func anonymousRoundTrip() error {
	m, err := CreateAnonymous(1 << 16)
	if err != nil {
		return err
	}
	other, err := MapFileReadOnly(m.File(), 0)
	if err == nil {
		err = other.Close()
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

// rss returns how many bytes of the mapping that starts at data's first byte
// are in this process' page tables, from /proc/self/smaps.
func rss(t *testing.T, data []byte) int {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(unsafe.SliceData(data))))
	in := false
	for _, line := range strings.Split(string(smaps), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasPrefix(line, start)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no mapping at %s in /proc/self/smaps", start)
	return 0
}

// TestPopulate checks that Populate really fills the page tables, for
// Create and for both attaches, and that without it nothing is mapped in
// until touched. A nil Option changes nothing.
func TestPopulate(t *testing.T) {
	keys := checkLeaks(t)
	const size = 8 << 20
	check := func(what string, b []byte, err error, want int) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := rss(t, b); got != want {
			t.Errorf("%s: %d bytes resident, want %d", what, got, want)
		}
	}

	key, data, err := Create(size, nil)
	if err == nil {
		keys.add(key)
		t.Cleanup(func() { Release(key) })
	}
	check("Create", data, err, 0)
	data[size-1] = 9

	ro, err := Read(key, 0, Populate())
	check("Read with Populate", ro, err, size)
	rw, err := ReadWrite(key, size/2, nil, Populate())
	check("ReadWrite with Populate", rw, err, size/2)
	if ro[size-1] != 9 {
		t.Errorf("a populated mapping does not see the segment's bytes")
	}
	rw[0] = 7
	if data[0] != 7 {
		t.Errorf("a write through a populated mapping is not seen through another")
	}

	key2, data2, err := Create(size, Populate())
	if err == nil {
		keys.add(key2)
		t.Cleanup(func() { Release(key2) })
	}
	check("Create with Populate", data2, err, size)
	for i, b := range data2 {
		if b != 0 {
			t.Fatalf("byte %d of a new populated segment is %d", i, b)
		}
	}
}

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
				was := shm.NoTmpfile.Swap(true)
				t.Cleanup(func() { shm.NoTmpfile.Store(was) })
			}
			seed := randomSeed()
			cryptotest.SetGlobalRandom(t, seed)
			taken, next := newKey(), newKey()
			const content = "planted"
			plantFile(t, shm.Dir+taken, content)
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
			mustHold(t, shm.Dir+taken, content, "after Create")
			data[4095] = 1
			if err := Release(key); err != nil {
				t.Fatal(err)
			}
			mustHold(t, shm.Dir+taken, content, "after Release")
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
	orig := shm.Fallocate
	t.Cleanup(func() { shm.Fallocate = orig })
	calls := new([]fallocateCall)
	shm.Fallocate = func(fd int, off, n int64) error {
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
	if err := unix.Stat(shm.Dir+key, &st); err != nil {
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
		sizes = append(sizes, shm.ReserveChunk+1) // two chunks; fits a 32-bit int
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
		for off := int64(0); off < int64(size); off += shm.ReserveChunk {
			c := fallocateCall{off, min(int64(size)-off, shm.ReserveChunk)}
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
		if fi, err := os.Stat(shm.Dir + key); err != nil || fi.Size() != size {
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
		{shm.ReserveChunk + 1, 2, unix.EOPNOTSUPP},
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
		if _, err := os.Lstat(shm.Dir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("failed Create left %s: %v", pe.Path, err)
		}
	}
}
