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
	UID     int         // owner, as this process' user namespace sees it
	Changed time.Time   // status change time (ctime): for a segment that Create made, when it was made

	// Creator tells whether the process that made the segment with this
	// package's Create still holds it; CreatorNone for another program's.
	Creator Creator
}

// Creator is what List can tell of the process that made a segment. The
// kernel vouches for it: Create's process holds a lock on the segment for
// as long as it owns the name (until Release or Unlink, or until it exits
// or is killed), and List asks the kernel whether anyone holds it. That
// holds whatever pid, time or user namespace the creator and the asker run
// in, as long as they share the shm filesystem.
type Creator uint8

const (
	// CreatorNone: the segment was not made by this package's Create (its
	// key does not have Create's form), so nothing tells of its maker.
	CreatorNone Creator = iota
	// CreatorUnknown: made by Create, but this process may not open it to
	// ask (another user's segment); Sweep would leave it alone.
	CreatorUnknown
	// CreatorAlive: the creating process still holds the segment; Sweep
	// leaves it alone.
	CreatorAlive
	// CreatorGone: no process holds the segment: its creator exited or was
	// killed without releasing it. Sweep removes it if it is this user's.
	CreatorGone
)

// String returns "-", "?", "yes" or "no", for CreatorNone, CreatorUnknown,
// CreatorAlive and CreatorGone, as shmmap ls prints them under ALIVE.
func (c Creator) String() string {
	switch c {
	case CreatorUnknown:
		return "?"
	case CreatorAlive:
		return "yes"
	case CreatorGone:
		return "no"
	}
	return "-"
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
		if s.Creator != CreatorGone || s.UID != uid {
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
