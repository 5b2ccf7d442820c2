//go:build linux

package ring

import (
	"io/fs"
	"os"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

// Liveness on Linux (see the package documentation): the creator's process
// holds the creator's lock of shmmap.CreateNamed until its Close or death,
// which shm.HoldsFD asks about; the opener's holds a shared flock(2)
// lock through the file of its handle. flock and the creator's OFD lock
// are separate kinds on Linux, so neither end's own lock shows in its
// question about the other's.

// A watch is this end's file of the segment, its handle's: the creator's
// holds the creator's lock, the opener's its flock; each asks about the
// other end through it.
type watch struct {
	f *os.File
}

// watchOf makes the watch of an end whose handle is m; the opener's takes
// its flock.
func watchOf(m *shmmap.Mapping, creator bool) (watch, error) {
	w := watch{f: m.File()}
	if !creator {
		if err := flock(w.f, unix.LOCK_SH); err != nil {
			return watch{}, &fs.PathError{Op: "flock", Path: m.Key(), Err: err}
		}
	}
	return w, nil
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
	held, known := true, false
	shm.WithFD(w.f, func(fd int) { held, known = shm.HoldsFD(fd) })
	return held || !known
}

// flock applies how (a flock(2) operation) to f, again if a signal
// interrupts it. Go installs its handlers with SA_RESTART, under which the
// kernel restarts flock itself; a handler that C code installs may lack it.
func flock(f *os.File, how int) error {
	var err error
	if ferr := shm.WithFD(f, func(fd int) {
		for {
			if err = flockFD(fd, how); err != unix.EINTR {
				return
			}
		}
	}); ferr != nil {
		return ferr
	}
	return err
}

// flockFD is flock(2): a variable so that tests can interrupt it.
var flockFD = unix.Flock

// self returns this process' pid and, where liveness needs it, its start
// time (not on Linux).
func self() (pid uint32, start uint64) { return uint32(os.Getpid()), 0 }
