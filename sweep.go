package shmmap

import (
	"errors"
	"io/fs"
	"time"

	"github.com/shmmap-go/shmmap/internal/shm"
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

// String returns "none", "unknown", "alive" or "gone", for CreatorNone,
// CreatorUnknown, CreatorAlive and CreatorGone.
func (c Creator) String() string {
	switch c {
	case CreatorUnknown:
		return "unknown"
	case CreatorAlive:
		return "alive"
	case CreatorGone:
		return "gone"
	}
	return "none"
}

// List returns every POSIX shared memory segment that this process can see,
// by whichever program it was made, in no particular order. Names that
// vanish while List runs are left out, and so are names that are not
// segments (FIFOs, directories, symlinks). For a key of Create's form, List
// opens the segment to ask whether its creator still holds it (see
// Creator); it can ask only where it may open it.
//
// On Linux an error is the *fs.PathError of reading /dev/shm (wrapping
// fs.ErrNotExist if there is none, fs.ErrPermission if it may not be read).
// On macOS, which has no way to list shm names, List always returns an error
// for which errors.Is(err, errors.ErrUnsupported) holds.
func List() ([]Segment, error) {
	names, err := shm.ListNames()
	if err != nil {
		return nil, err
	}
	segs := make([]Segment, 0, len(names))
	for _, name := range names {
		if _, err := normalize(name); err != nil {
			continue // no key can name it
		}
		size, mode, uid, changed, ok := shm.StatName(name)
		if !ok {
			continue // gone meanwhile, or not a segment
		}
		s := Segment{Key: name, Size: size, Mode: fs.FileMode(mode & 0o777), UID: uid, Changed: changed}
		if isCreateKey(name) {
			s.Creator = creatorState(name)
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// creatorState asks the kernel whether the creator of segment name, a key
// of Create's form, still holds it.
func creatorState(name string) Creator { return stateOf(shm.CreatorHolds(name)) }

// stateOf is the Creator state that the kernel's answer (held, ok) tells.
func stateOf(held, ok bool) Creator {
	switch {
	case !ok:
		return CreatorUnknown
	case held:
		return CreatorAlive
	}
	return CreatorGone
}

// Sweep removes the segments that this package's Create made, that belong
// to this process' user, and that no process holds any more: the leftovers
// of processes that exited, crashed or were killed before Release. It
// returns the keys it removed. The kernel vouches for each decision (see
// Creator), so Sweep never removes a segment whose creator is alive, in
// whatever pid, time or user namespace either side runs, nor a segment
// being created at the same moment, nor one made by another program
// (Python, node, C), nor another user's, even where a user namespace shows
// every owner as the same overflow uid. A segment mapped by a surviving
// process stays mapped there; only its name goes.
//
// Sweep goes through every segment whatever fails on the way and returns,
// with the keys it removed, List's error or every failure joined
// (errors.Join), each an *fs.PathError naming the key. A name that another
// process removes first is not an error. On macOS Sweep always returns an
// error for which errors.Is(err, errors.ErrUnsupported) holds.
func Sweep() (removed []string, err error) {
	names, err := shm.ListNames()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, name := range names {
		if !isCreateKey(name) {
			continue
		}
		ok, err := shm.Reap(name)
		if ok {
			removed = append(removed, name)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}
