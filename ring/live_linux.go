//go:build linux

package ring

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/shmmap-go/shmmap"
	"golang.org/x/sys/unix"
)

// Liveness on Linux (see the package documentation): the creator's process
// holds shmmap.Create's lock until its Close or death, which
// shmmap.CreatorOf asks about; the opener's holds a shared flock(2) lock
// through the file that mapOpened keeps. flock and the creator's OFD lock
// are separate kinds on Linux, so neither end's own lock shows in its
// question about the other's.

// A watch is this end's file of the segment, opened by shmmap.OpenFile:
// the opener's keeps its flock; both ask about the other end through it.
// The opener's mapping is its own (shmmap.MapFile), not in shmmap's
// table, so that an end opened in the creating process has a mapping of its
// own to unmap.
type watch struct {
	f *os.File
	m *shmmap.Mapping // the opener's; nil for the creator
}

// watchCreated opens the creator's file, for asking about the opener.
func watchCreated(key string) (watch, error) {
	f, err := shmmap.OpenFile(key, false)
	if err != nil {
		return watch{}, err
	}
	return watch{f: f}, nil
}

// mapOpened opens segment key read-write, takes the opener's flock and maps
// the whole segment (at most the largest ring).
func mapOpened(key string) ([]byte, watch, error) {
	f, err := shmmap.OpenFile(key, true)
	if err != nil {
		return nil, watch{}, err
	}
	fail := func(op string, err error) ([]byte, watch, error) {
		f.Close()
		if _, ok := err.(*fs.PathError); ok {
			return nil, watch{}, err
		}
		return nil, watch{}, &fs.PathError{Op: op, Path: key, Err: err}
	}
	fi, err := f.Stat()
	if err != nil {
		return fail("fstat", err)
	}
	if fi.Size() < HeaderSize {
		return fail("open", fmt.Errorf("%w: segment of %d bytes, shorter than a ring's header", ErrCorrupt, fi.Size()))
	}
	if err := flock(f, unix.LOCK_SH); err != nil {
		return fail("flock", err)
	}
	m, err := shmmap.MapFile(f, int(min(fi.Size(), HeaderSize+maxCapacity)))
	if err != nil {
		return fail("mmap", err)
	}
	return m.Bytes(), watch{f: f, m: m}, nil
}

// peerAlive tells whether the other end lives: asked by the creator, the
// opener; else the creator. An answer the kernel does not give counts as
// alive: a wrong "gone" would end a healthy stream.
func (w watch) peerAlive(seg []byte, creator bool) bool {
	if creator {
		if flock(w.f, unix.LOCK_EX|unix.LOCK_NB) == nil {
			flock(w.f, unix.LOCK_UN)
			return false
		}
		return true // EWOULDBLOCK: held
	}
	return shmmap.CreatorOf(w.f) != shmmap.CreatorGone
}

// close unmaps seg and closes the file, which drops the opener's flock: the
// creator's mapping through shmmap.Release, which also removes the name and
// drops the creator's lock; the opener's through its Mapping.
func (w watch) close(key string, seg []byte, creator bool) error {
	var err error
	if creator {
		err = shmmap.Release(key)
	} else {
		err = w.m.Close()
	}
	return errors.Join(err, w.f.Close())
}

// flock applies how (a flock(2) operation) to f, again if a signal
// interrupts it. Go installs its handlers with SA_RESTART, under which the
// kernel restarts flock itself; a handler that C code installs may lack it.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	cerr := rc.Control(func(fd uintptr) {
		for {
			if err = flockFD(int(fd), how); err != unix.EINTR {
				return
			}
		}
	})
	return errors.Join(cerr, err)
}

// flockFD is flock(2): a variable so that tests can interrupt it.
var flockFD = unix.Flock

// self returns this process' pid and, where liveness needs it, its start
// time (not on Linux).
func self() (pid uint32, start uint64) { return uint32(os.Getpid()), 0 }
