//go:build linux

package shmmap

// Tests that attack the creator's lock and the table's fd bookkeeping from
// the inside: each pins one thing that the liveness design relies on and
// that the other tests let through (see the mutation table in the review of
// the change that moved liveness to the creator's lock).

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/shmmap-go/shmmap/internal/shm"
	"github.com/shmmap-go/shmmap/internal/sweeplock"
	"golang.org/x/sys/unix"
)

// forceNamed makes Create take the path of a /dev/shm without O_TMPFILE
// (name first, mode 0 until the lock) for the rest of t.
func forceNamed(t *testing.T) {
	t.Helper()
	was := shm.NoTmpfile.Load()
	shm.NoTmpfile.Store(true)
	t.Cleanup(func() { shm.NoTmpfile.Store(was) })
}

// createModes runs f for each way Create can make a segment here: unnamed
// (O_TMPFILE, then linkat) where the system has it, and named.
func createModes(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	t.Run("unnamed", func(t *testing.T) {
		if shm.NoTmpfile.Load() {
			t.Skip("no O_TMPFILE in /dev/shm here")
		}
		f(t)
	})
	t.Run("named", func(t *testing.T) {
		forceNamed(t)
		f(t)
	})
}

// hookFallocate runs hook(fd) inside Create, at its first fallocate: after
// the lock and fchmod, before mmap and linkat; then fails with fail if it
// is not nil, or reserves as usual.
func hookFallocate(t *testing.T, hook func(fd int), fail error) {
	t.Helper()
	was := shm.Fallocate
	shm.Fallocate = func(fd int, off, n int64) error {
		if off == 0 && hook != nil {
			hook(fd)
		}
		if fail != nil {
			return fail
		}
		return was(fd, off, n)
	}
	t.Cleanup(func() { shm.Fallocate = was })
}

// lockState opens path anew (a new open file description) and reports
// whether a process holds a lock on it that conflicts with typ.
func lockState(t *testing.T, path string, typ int16) (locked bool) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Errorf("open %s: %v", path, err)
		return false
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		t.Errorf("F_OFD_GETLK %s: %v", path, err)
		return false
	}
	return lk.Type != unix.F_UNLCK
}

// creatorFD returns the fd that the table keeps for key, or -1.
func creatorFD(key string) int {
	table.mu.Lock()
	defer table.mu.Unlock()
	s, ok := table.segs[canonical(key)]
	if !ok {
		return -1
	}
	s.first.mu.Lock()
	defer s.first.mu.Unlock()
	if !s.first.creator {
		return -1
	}
	return s.first.fd
}

// TestCreateLocksBeforeNaming: when Create sizes the segment, it already
// holds the creator's lock, and (with O_TMPFILE) the segment has no name
// yet, so no sweeper or lister ever sees it unlocked or half made.
func TestCreateLocksBeforeNaming(t *testing.T) {
	createModes(t, func(t *testing.T) {
		keys := checkLeaks(t)
		var links uint64
		var locked bool
		calls := 0
		hookFallocate(t, func(fd int) {
			calls++
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				t.Errorf("fstat: %v", err)
			}
			links = uint64(st.Nlink)
			locked = lockState(t, fmt.Sprintf("/proc/self/fd/%d", fd), unix.F_WRLCK)
		}, nil)
		key, _ := newSegment(t, keys, 4096)
		if calls != 1 {
			t.Fatalf("fallocate called %d times, want 1", calls)
		}
		if !locked {
			t.Errorf("the segment was not locked yet when Create sized it")
		}
		want := uint64(0) // no name yet
		if shm.NoTmpfile.Load() {
			want = 1
		}
		if links != want {
			t.Errorf("the segment had %d names while Create sized it, want %d", links, want)
		}
		if _, err := os.Lstat(shm.Dir + key); err != nil {
			t.Errorf("Create returned and %s has no name: %v", key, err)
		}
	})
}

// TestCreatorLockOutlivesOwnOpens: the creator's own Read, ReadWrite, List
// and Sweep open the segment again and close that fd; the creator's lock
// is on another open file description and survives them (a POSIX F_SETLK
// lock would not: any close by the process drops it).
func TestCreatorLockOutlivesOwnOpens(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	key, _ := newSegment(t, keys, 4096)
	if _, err := Read(key, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadWrite(key, 10); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if got := creatorOf(t, key); got != CreatorAlive {
			t.Errorf("List #%d in the creator: %v, want alive", i+1, got)
		}
	}
	if ok, err := shm.Reap(key); ok || err != nil {
		t.Errorf("reap in the creator: %v, %v; want the segment kept", ok, err)
	}
	if got := statesIn(t, nil, []string{key})[key]; got != "alive" {
		t.Errorf("List in another process: %q, want alive", got)
	}
	if slices.Contains(sweepIn(t, nil), key) {
		t.Errorf("another process swept %s of a live creator", key)
	}
	if _, err := os.Lstat(shm.Dir + key); err != nil {
		t.Errorf("a live creator's %s is gone: %v", key, err)
	}
}

// TestCreatorLockIsShared: the creator's lock is a shared (read) lock, as
// live_linux.go says: another holder may take a shared lock beside it at
// once, and only an exclusive one (Sweep's) conflicts.
func TestCreatorLockIsShared(t *testing.T) {
	keys := checkLeaks(t)
	key, _ := newSegment(t, keys, 4096)
	if !lockState(t, shm.Dir+key, unix.F_WRLCK) {
		t.Errorf("no lock conflicts with an exclusive one on a live creator's segment")
	}
	if lockState(t, shm.Dir+key, unix.F_RDLCK) {
		t.Errorf("the creator's lock conflicts with a shared one: it is exclusive")
	}
	f, err := os.Open(shm.Dir + key)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Errorf("a shared lock beside the creator's: %v", err)
	}
}

// fdsOn returns this process' fds on the file that fd is open on, fd
// included.
func fdsOn(t *testing.T, fd int) []int {
	t.Helper()
	var want unix.Stat_t
	if err := unix.Fstat(fd, &want); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(n, &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			fds = append(fds, n)
		}
	}
	return fds
}

// TestReleaseDropsCreatorLock: Unlink closes the fd that Create kept, and
// Release (after Unlink or not) closes it and unmaps, which drops the
// creator's lock. (The lock is on the open file description, which the
// Create mapping references too: after Unlink it lasts until Release.)
func TestReleaseDropsCreatorLock(t *testing.T) {
	for _, unlink := range []bool{false, true} {
		t.Run(fmt.Sprintf("unlink=%v", unlink), func(t *testing.T) {
			keys := checkLeaks(t)
			key, _, err := Create(4096)
			if err != nil {
				t.Fatal(err)
			}
			keys.add(key)
			t.Cleanup(func() { Release(key) })
			// An fd of our own keeps the file, and asks after the name is gone.
			f, err := os.Open(shm.Dir + key)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ours := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
			others := func() []int {
				return slices.DeleteFunc(fdsOn(t, int(f.Fd())), func(fd int) bool { return fd == int(f.Fd()) })
			}
			if !lockState(t, ours, unix.F_WRLCK) || len(others()) != 1 {
				t.Fatalf("Create holds no lock, or not one fd (%v)", others())
			}
			if unlink {
				if err := Unlink(key); err != nil {
					t.Fatal(err)
				}
				if fds := others(); len(fds) != 0 {
					t.Errorf("after Unlink this process still holds fds %v on the segment", fds)
				}
			}
			if err := Release(key); err != nil {
				t.Fatal(err)
			}
			if lockState(t, ours, unix.F_WRLCK) {
				t.Errorf("after Release the creator's lock is still held")
			}
			if fds := others(); len(fds) != 0 {
				t.Errorf("after Release this process still holds fds %v on the segment", fds)
			}
		})
	}
}

// TestCreatorFDClosedOnce: Unlink closes the creator's fd; its
// number is then free and may be another goroutine's file by the time of
// Release, which must not close it again.
func TestCreatorFDClosedOnce(t *testing.T) {
	keys := checkLeaks(t)
	key, _, err := Create(4096)
	if err != nil {
		t.Fatal(err)
	}
	keys.add(key)
	t.Cleanup(func() { Release(key) })
	fd := creatorFD(key)
	if fd < 0 {
		t.Fatalf("the table holds no fd for %s", key)
	}
	if err := Unlink(key); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("after Unlink the creator's fd %d is still open (F_GETFD: %v)", fd, err)
	}
	// Another goroutine's open gets the free number.
	other, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if other != fd {
		err := unix.Dup3(other, fd, unix.O_CLOEXEC)
		unix.Close(other)
		if err != nil {
			t.Fatal(err)
		}
	}
	defer unix.Close(fd)
	var want unix.Stat_t
	if err := unix.Fstat(fd, &want); err != nil {
		t.Fatal(err)
	}
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != want.Ino || st.Dev != want.Dev {
		t.Errorf("Release closed fd %d, which Unlink had closed and another file now has (fstat: %v)", fd, err)
	}
}

// TestCreateTakenName: a name already taken (by another program or user)
// when Create comes to it is retried under another key, with nothing left
// behind and the other file untouched, in either way of creating.
func TestCreateTakenName(t *testing.T) {
	createModes(t, func(t *testing.T) {
		keys := checkLeaks(t)
		seed := uint64(time.Now().UnixNano()) ^ uint64(os.Getpid())<<40
		cryptotest.SetGlobalRandom(t, seed)
		taken := newKey()
		path := shm.Dir + taken
		plantSegment(t, keys, taken[1:], 7)
		if err := os.WriteFile(path, []byte("planted"), 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		uid := os.Geteuid()
		if uid == 0 {
			uid = 65534 // another user's, which root could open
			if err := os.Chown(path, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
		cryptotest.SetGlobalRandom(t, seed) // Create's first key is taken
		key, data, err := Create(4096)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		keys.add(key)
		t.Cleanup(func() { Release(key) })
		if key == taken {
			t.Errorf("Create returned the taken key %s", key)
		}
		if len(data) != 4096 || slices.ContainsFunc(data, func(b byte) bool { return b != 0 }) {
			t.Errorf("Create's data: %d bytes, not all zero", len(data))
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			t.Fatalf("the planted file is gone: %v", err)
		}
		if st.Mode&0o7777 != 0o640 || int(st.Uid) != uid || st.Size != 7 {
			t.Errorf("the planted file: mode %o, uid %d, size %d; want 640, %d, 7", st.Mode&0o7777, st.Uid, st.Size, uid)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "planted" {
			t.Errorf("the planted file holds %q, %v", b, err)
		}
	})
}

// TestCreateFailureLeavesNothingEitherWay: a Create that fails after the
// segment exists (here at fallocate) leaves no name, fd or mapping, in
// either way of creating.
func TestCreateFailureLeavesNothingEitherWay(t *testing.T) {
	createModes(t, func(t *testing.T) {
		keys := checkLeaks(t)
		hookFallocate(t, nil, unix.EIO)
		key, _, err := Create(4096)
		if err == nil {
			keys.add(key)
			Release(key)
			t.Fatal("Create succeeded with a failing fallocate")
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || !errors.Is(err, unix.EIO) || !isCreateKey(pe.Path) {
			t.Fatalf("Create: %v, want an EIO *fs.PathError naming the key", err)
		}
		keys.add(pe.Path)
		if _, err := os.Lstat(shm.Dir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the failed Create left %s: %v", pe.Path, err)
		}
	})
}

// TestCreateLinksThroughProc: where linkat with AT_EMPTY_PATH is refused
// (Linux before 6.10 without CAP_DAC_READ_SEARCH), Create names the
// segment through /proc/self/fd; the name is the file it mapped and locked.
func TestCreateLinksThroughProc(t *testing.T) {
	if shm.NoTmpfile.Load() {
		t.Skip("no O_TMPFILE in /dev/shm here")
	}
	keys := checkLeaks(t)
	was := shm.NoEmptyPathLink.Load()
	shm.NoEmptyPathLink.Store(true)
	t.Cleanup(func() { shm.NoEmptyPathLink.Store(was) })
	key, data := newSegment(t, keys, 4096)
	data[0] = 42
	var named, held unix.Stat_t
	if err := unix.Lstat(shm.Dir+key, &named); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(creatorFD(key), &held); err != nil {
		t.Fatal(err)
	}
	if named.Ino != held.Ino || named.Dev != held.Dev || named.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("the name is not the file Create holds")
	}
	if got := creatorOf(t, key); got != CreatorAlive {
		t.Errorf("List: %v, want alive", got)
	}
	b, err := os.ReadFile(shm.Dir + key)
	if err != nil || len(b) != 4096 || b[0] != 42 {
		t.Errorf("the named file: %d bytes, first %v, %v", len(b), b[:min(len(b), 1)], err)
	}
}

// TestListModeZero: a segment of Create's form with mode 0 is one being
// made where there is no O_TMPFILE, which Sweep leaves alone; List must
// not call its creator gone (that would say Sweep removes it).
func TestListModeZero(t *testing.T) {
	keys := checkLeaks(t)
	key := newKey()
	plantSegment(t, keys, key[1:], 10)
	if err := os.Chmod(shm.Dir+key, 0); err != nil {
		t.Fatal(err)
	}
	switch got := creatorOf(t, key); {
	case got == CreatorGone:
		t.Errorf("List: a segment being made is %v", got)
	case os.Geteuid() == 0 && got != CreatorAlive:
		t.Errorf("List as root: a segment being made is %v, want alive", got)
	}
}

func init() {
	registerHelper("lease", helperLease)
}

// helperLease PATH: takes a read lease (fcntl F_SETLEASE) on the file at
// PATH, prints "leased", and holds it until stdin closes.
func helperLease(args ...string) error {
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		return fmt.Errorf("F_SETLEASE: %w", err)
	}
	fmt.Println("leased")
	waitStdinClosed()
	return nil
}

// TestSweepLeased: a user may lease a file of theirs (F_SETLEASE), and an
// open for writing of a leased file, O_NONBLOCK as every open here, is
// EAGAIN. Sweep must take a leased segment for one in use, not fail: else
// any user makes every root Sweep fail with a leased file of Create's form.
func TestSweepLeased(t *testing.T) {
	keys := checkLeaks(t)
	key := newKey()
	plantSegment(t, keys, key[1:], 4096) // unlocked: no creator
	cmd := helperCommand(t, "lease", shm.Dir+key)
	if os.Geteuid() == 0 {
		// Another user's file and lease: root opens it, and would break it.
		if err := os.Chown(shm.Dir+key, 23456, 23456); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, helperUIDEnv+"=23456")
	}
	stdin, r, wait := startCommand(t, cmd)
	if line := readLine(t, r); line != "leased" {
		t.Fatalf("lease helper: %q", line)
	}
	if ok, err := shm.Reap(key); ok || err != nil {
		t.Errorf("Sweep of a leased segment: removed %v, error %v; want it left alone", ok, err)
	}
	if _, err := os.Lstat(shm.Dir + key); err != nil {
		t.Errorf("the leased segment is gone: %v", err)
	}
	stdin.Close()
	if err := wait(); err != nil {
		t.Errorf("lease helper: %v", err)
	}
}

// exeFor returns a copy of the test binary that uid can run (the original
// is in go test's private build directory), removed with t.
func exeFor(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "shmmap-exe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "shmmap.test")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSweepUnmappedShared: in a user namespace that maps no one, the
// sweeper and every other user show as the overflow uid, and another
// user's dead segment that its owner opened to all (0666) opens read-write
// for the sweeper too. Sweep must leave it: root there could remove it (as
// the owner of /dev/shm), and an ordinary user would fail to and report an
// error. The sweeper's own 0600 leftovers still go (TestSweepOwners).
func TestSweepUnmappedShared(t *testing.T) {
	requireRoot(t, "to make another user's segment and run a sweeper as a third")
	sweeplock.Lock(t)
	shared := func(t *testing.T) string {
		keys := checkLeaks(t)
		key := newKey()
		plantSegment(t, keys, key[1:], 4096) // unlocked: its creator is gone
		if err := os.Chown(shm.Dir+key, 23456, 23456); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(shm.Dir+key, 0o666); err != nil {
			t.Fatal(err)
		}
		return key
	}
	t.Run("root", func(t *testing.T) {
		key := shared(t)
		if slices.Contains(sweepIn(t, []string{"--user"}), key) {
			t.Errorf("root in a user namespace removed another user's %s", key)
		}
		if _, err := os.Lstat(shm.Dir + key); err != nil {
			t.Errorf("another user's %s is gone: %v", key, err)
		}
	})
	t.Run("ordinary user", func(t *testing.T) {
		key := shared(t)
		cmd := inNamespaces(t, []string{"--user"}, "sweep")
		// A copy of the test binary that uid 12345 may run, in place of
		// the one after "--".
		cmd.Args[slices.Index(cmd.Args, "--")+1] = exeFor(t)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 12345, Gid: 12345}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "unshare:") {
				t.Skipf("an ordinary user cannot make a user namespace here: %s", out)
			}
			t.Fatalf("sweeper: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, key) {
				t.Errorf("an ordinary user's Sweep in a user namespace: %s", line)
			}
		}
		if _, err := os.Lstat(shm.Dir + key); err != nil {
			t.Errorf("another user's %s is gone: %v", key, err)
		}
	})
}
