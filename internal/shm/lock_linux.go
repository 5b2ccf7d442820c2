//go:build linux

package shm

import (
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The creator's lock. Create takes a shared open file description lock
// (fcntl(2) F_OFD_SETLK, F_RDLCK, the whole file) on the segment before it
// has a name, and keeps that fd (close-on-exec) until Release or Unlink. The
// lock belongs to the open file description, which the fd and Create's
// mapping both refer to, and the kernel drops it when the last reference
// goes (__fput): at Release, which unmaps and closes, and at exit or death
// of the process, however it dies. (The mapping alone would keep it; the fd
// is kept so that the lock lasts by the documented rule, "until the last
// close", not by that detail.) So "someone holds the lock" is the kernel's
// word that the creator is alive, and it means the
// same in every pid, time and user namespace that shares /dev/shm, where a
// pid and start time mean something only in the creator's own.
//
// List asks with F_OFD_GETLK, which takes nothing. Sweep takes the lock
// exclusively without waiting (F_OFD_SETLK, F_WRLCK); only if that succeeds
// does it remove the name, while it holds the lock. OFD locks (Linux 3.15)
// rather than flock(2): F_OFD_GETLK answers without taking a lock, and a
// test lock in List would make a concurrent Sweep pass a dead segment over.

// lockCreator takes the creator's lock on fd. A sweeper can hold the file
// for a moment only where openNew had to name it first (no O_TMPFILE): then
// the lock is waited for.
func lockCreator(fd int) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	err := ignoringEINTR(func() error { return fcntlLock(fd, unix.F_OFD_SETLK, &lk, false) })
	if err == unix.EAGAIN || err == unix.EACCES {
		err = ignoringEINTR(func() error { return fcntlLock(fd, unix.F_OFD_SETLKW, &lk, true) })
	}
	return err
}

// CreatorHolds tells whether a process holds the creator's lock on segment
// name; ok is false where this process may not open it to ask (another
// user's).
func CreatorHolds(name string) (held, ok bool) {
	fd, err := OpenName(name, unix.O_RDONLY, 0)
	if err != nil {
		return false, false
	}
	defer CloseFD(fd)
	return HoldsFD(fd)
}

// HoldsFD tells whether a process holds the creator's lock on fd; ok is
// false where the kernel does not say, and for a file that is not a
// segment. A segment with mode 0 is being made (see openNew): held.
func HoldsFD(fd int) (held, ok bool) {
	var st unix.Stat_t
	if err := Fstat(fd, &st); err != nil || !isSegment(&st) {
		return false, false
	}
	if st.Mode&0o777 == 0 {
		return true, true
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := ignoringEINTR(func() error { return fcntlLock(fd, unix.F_OFD_GETLK, &lk, false) }); err != nil {
		return false, false
	}
	return lk.Type != unix.F_UNLCK, true
}

// reap removes segment name, a key of Create's form, if it is this user's
// and no process holds the creator's lock, and reports whether it did.
//
// Whose a segment is, stat alone cannot tell in a user namespace that does
// not map its owner: every unmapped owner shows as the overflow uid (65534),
// and so does a sweeper that is itself unmapped. The kernel can: no
// capability reaches a file whose owner the namespace does not map, so a
// 0600 segment opens read-write there only for its real owner. So reap
// removes only what it can open read-write *and* whose owner is the
// sweeper's euid as this namespace shows them; outside user namespaces the
// second test keeps root from sweeping other users' segments.
func Reap(name string) (bool, error) {
	fd, err := OpenName(name, unix.O_RDWR, 0)
	switch err {
	case nil:
	case unix.ENOENT, unix.EACCES, unix.ELOOP, unix.ENXIO, unix.EISDIR, unix.EAGAIN:
		// Gone, another user's, a symlink, a socket or a directory; or
		// leased (fcntl(2) F_SETLEASE): an open for writing would break
		// the lease, and O_NONBLOCK makes it EAGAIN instead of waiting.
		// Only the file's owner (or CAP_LEASE) takes a lease, so a user
		// can lease any file of theirs that root sweeps: that is not a
		// failure of Sweep, and a leased file is in use anyway. (EPERM
		// is not another user's: that is EACCES. It is an immutable file
		// or a security module's refusal, which the caller should hear of.)
		return false, nil
	default:
		return false, &fs.PathError{Op: "shm_open", Path: name, Err: err}
	}
	// Once the name is removed below, this close is the last reference
	// (the creator is gone): it frees the pages, which may be many.
	defer CloseFile(fd, -1)
	var st unix.Stat_t
	if err := Fstat(fd, &st); err != nil {
		return false, &fs.PathError{Op: "fstat", Path: name, Err: err}
	}
	if !isSegment(&st) || int(st.Uid) != os.Geteuid() || st.Mode&0o777 == 0 {
		return false, nil // not a segment, another user's, or being made
	}
	if st.Mode&0o066 != 0 && st.Uid == overflowUID() {
		// Here the namespace maps neither the sweeper nor the owner, and
		// the open proves ownership only if the mode lets no one else
		// open the file read-write: a segment whose owner opened it to
		// others (chmod 0666 to share it, or an ACL, whose mask shows in
		// the group bits) may be another user's. Root could remove it
		// there, as the owner of /dev/shm; anyone else would fail to.
		return false, nil
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	switch err := ignoringEINTR(func() error { return fcntlLock(fd, unix.F_OFD_SETLK, &lk, false) }); err {
	case nil:
	case unix.EAGAIN, unix.EACCES:
		return false, nil // the creator holds it (or another sweeper, deciding)
	default:
		return false, &fs.PathError{Op: "fcntl", Path: name, Err: err}
	}
	// While we hold the lock no creator can take it, but the name could
	// have been removed and made anew since we opened it: remove it only if
	// it still names the file we locked.
	var now unix.Stat_t
	if err := unix.Lstat(Dir+name, &now); err != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		return false, nil
	}
	switch err := UnlinkName(name); err {
	case nil:
		return true, nil
	case unix.ENOENT:
		return false, nil // removed by another process meanwhile
	default:
		return false, &fs.PathError{Op: "shm_unlink", Path: name, Err: err}
	}
}

// overflowUID is the uid that this process' user namespace shows for every
// uid it does not map (kernel.overflowuid, 65534 by default).
var overflowUID = sync.OnceValue(func() uint32 {
	b, err := os.ReadFile("/proc/sys/kernel/overflowuid")
	if err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			return uint32(n)
		}
	}
	return 65534
})
