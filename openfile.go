package shmmap

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// OpenFile opens the file of the existing segment key, read-only or
// read-write, as Read and ReadWrite open it: without following a symbolic
// link, without blocking on a FIFO, and close-on-exec, so that no child
// process inherits it. It is for what a mapping cannot do: pass the
// segment to MapFileReadOnly or MapFile, hand it to another process
// (SendSegment), take a lock of one's own on it, or ask CreatorOf whether its
// creator is alive. The *os.File is the caller's to close; it maps nothing
// and is in no table, so Release and ReleaseAll do not touch it.
//
// The error is an *fs.PathError naming key, wrapping ErrInvalidKey for a
// key that could name no segment, fs.ErrNotExist, fs.ErrPermission, or
// ErrNotSegment when something other than a segment stands under the name
// (a FIFO, a directory, a socket, a symbolic link).
func OpenFile(key string, writable bool) (*os.File, error) {
	name, err := normalize(key)
	if err != nil {
		return nil, &fs.PathError{Op: "shm_open", Path: key, Err: err}
	}
	var st unix.Stat_t
	fd, err := openSegment(name, key, writable, &st)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), key), nil
}

// CreatorOf tells whether the process that made f's segment with Create
// still holds it, as List tells it for each segment (see Creator), but
// through a file already open, so that a question asked again and again
// opens nothing: a peer's liveness, for example (package ring asks it
// every 200 ms of a wait). It returns CreatorAlive or CreatorGone, or
// CreatorUnknown when the kernel does not say: on macOS always, and for a
// nil or closed f. A segment that Create did not make has no creator's
// lock to hold, and shows as CreatorGone.
func CreatorOf(f *os.File) Creator {
	state := CreatorUnknown
	withFD(f, func(fd int) { state = stateOf(holdsFD(fd)) })
	return state
}
