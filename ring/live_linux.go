//go:build linux

package ring

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/shmmap-go/shmmap"
	"golang.org/x/sys/unix"
)

// Liveness on Linux (see the package documentation): the creator's process
// holds shmmap.Create's OFD read lock on the whole file until its Close or
// death; the opener's holds a shared flock(2) lock through the fd that
// mapOpened keeps. flock and OFD locks are separate kinds on Linux, so
// neither end's own lock shows in its question about the other's.

// shmDir is where Linux keeps POSIX shared memory names (glibc's and
// musl's shm_open open there; a /dev/shm that links to /run/shm is
// followed, as only the last component is not).
const shmDir = "/dev/shm"

// A watch is this end's fd on the segment's file: the opener's keeps its
// flock; both ask about the other end through it.
type watch struct{ fd int }

// watchCreated opens the creator's fd, for asking about the opener.
func watchCreated(key string) (watch, error) {
	fd, err := openShm(key, unix.O_RDONLY)
	if err != nil {
		return watch{}, &fs.PathError{Op: "open", Path: key, Err: err}
	}
	return watch{fd}, nil
}

// mapOpened opens segment key read-write, takes the opener's flock and maps
// the whole segment (at most the largest ring). The mapping is this
// package's, not shmmap's table's, so that an end opened in the creating
// process has a mapping of its own to unmap.
func mapOpened(key string) ([]byte, watch, error) {
	fd, err := openShm(key, unix.O_RDWR)
	if err != nil {
		return nil, watch{}, &fs.PathError{Op: "open", Path: key, Err: err}
	}
	w := watch{fd}
	fail := func(op string, err error) ([]byte, watch, error) {
		unix.Close(fd)
		return nil, watch{}, &fs.PathError{Op: op, Path: key, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fail("open", fmt.Errorf("%w: not a regular file", ErrCorrupt))
	}
	if st.Size < HeaderSize {
		return fail("open", fmt.Errorf("%w: segment of %d bytes, shorter than a ring's header", ErrCorrupt, st.Size))
	}
	size := min(st.Size, HeaderSize+maxCapacity)
	if err := retry(func() error { return unix.Flock(fd, unix.LOCK_SH) }); err != nil {
		return fail("flock", err)
	}
	seg, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	return seg, w, nil
}

// openShm opens segment key (a slash and a name) without following a
// symlink or blocking on a FIFO.
func openShm(key string, mode int) (int, error) {
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Open(shmDir+key, mode|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
		return err
	})
	return fd, err
}

// peerAlive tells whether the other end lives: asked by the creator, the
// opener; else the creator. An answer the kernel does not give counts as
// alive: a wrong "gone" would end a healthy stream.
func (w watch) peerAlive(seg []byte, creator bool) bool {
	if creator {
		switch err := retry(func() error { return unix.Flock(w.fd, unix.LOCK_EX|unix.LOCK_NB) }); err {
		case nil:
			unix.Flock(w.fd, unix.LOCK_UN)
			return false
		default:
			return true // EWOULDBLOCK: held
		}
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := retry(func() error { return unix.FcntlFlock(uintptr(w.fd), unix.F_OFD_GETLK, &lk) }); err != nil {
		return true
	}
	return lk.Type != unix.F_UNLCK
}

// close closes the fd, which drops the opener's flock, and unmaps seg: the
// creator's through shmmap.Release, which also removes the name and drops
// the creator's lock; the opener's itself.
func (w watch) close(key string, seg []byte, creator bool) error {
	unix.Close(w.fd)
	if creator {
		return shmmap.Release(key)
	}
	if err := unix.Munmap(seg); err != nil {
		return &fs.PathError{Op: "munmap", Path: key, Err: err}
	}
	return nil
}

// self returns this process' pid and, where liveness needs it, its start
// time (not on Linux).
func self() (pid uint32, start uint64) { return uint32(os.Getpid()), 0 }

func retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}
