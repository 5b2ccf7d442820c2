package shmmap

import (
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A Segment describes a shared memory segment, as List reports it.
type Segment struct {
	Key     string      // with its leading slash
	Size    int64       // in bytes
	Mode    fs.FileMode // permission bits
	UID     int         // owner
	Changed time.Time   // status change time (ctime): for a segment that Create made, when it was made

	// For keys made by this package's Create: the creating process, and
	// whether it is still running (the same pid and the same start time, so
	// that a reused pid does not count). Creator is 0 for other keys.
	Creator      int
	CreatorAlive bool
}

// List returns every POSIX shared memory segment that this process can see,
// by whichever program it was made, in no particular order. Names that
// vanish while List runs are left out.
//
// On Linux an error is the *fs.PathError of reading /dev/shm (wrapping
// fs.ErrNotExist if there is none, fs.ErrPermission if it may not be read).
// On macOS, which has no way to list shm names, List always returns an error
// for which errors.Is(err, errors.ErrUnsupported) holds.
func List() ([]Segment, error) {
	return list()
}

// Sweep removes the segments that this package's Create made, that belong
// to this process' user, and whose creating process no longer exists: the
// leftovers of processes that crashed or were killed before Release. It
// returns the keys it removed. It never removes a segment whose creator is
// alive, one made by another program (Python, node, C), or another user's.
// A segment mapped by a surviving process stays mapped there; only its name
// goes.
//
// Sweep's errors are List's, and an *fs.PathError with Op "shm_unlink" for
// a name it could not remove; it then stops and returns the keys removed so
// far. A name that another process removes first is not an error. On macOS
// Sweep always returns an error for which errors.Is(err,
// errors.ErrUnsupported) holds.
func Sweep() (removed []string, err error) {
	segs, err := list()
	if err != nil {
		return nil, err
	}
	uid := os.Geteuid()
	for _, s := range segs {
		if s.Creator == 0 || s.CreatorAlive || s.UID != uid {
			continue
		}
		switch err := shmUnlink(s.Key, -1); err {
		case nil:
			removed = append(removed, s.Key)
		case unix.ENOENT: // swept by another process meanwhile
		default:
			return removed, &fs.PathError{Op: "shm_unlink", Path: s.Key, Err: err}
		}
	}
	return removed, nil
}
