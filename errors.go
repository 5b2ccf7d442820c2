package shmmap

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Errors that the functions of this package wrap; test with errors.Is.
// A missing segment is fs.ErrNotExist, a segment that the caller may not
// open is fs.ErrPermission, a full shm filesystem is syscall.ENOSPC, a nil
// *os.File is fs.ErrInvalid and a closed one fs.ErrClosed.
var (
	// ErrInvalidKey: the key is not a valid POSIX shared memory name.
	ErrInvalidKey = errors.New("shmmap: invalid key")
	// ErrInvalidSize: a size out of range, or larger than the segment.
	ErrInvalidSize = errors.New("shmmap: invalid size")
	// ErrNotMapped: Release of a key that this process does not hold.
	ErrNotMapped = errors.New("shmmap: key not mapped by this process")
	// ErrNotSegment: the key names a file that is not a shared memory
	// segment (a FIFO, directory, socket or device that someone put in
	// the shm directory under that name), or a file given to MapFileReadOnly,
	// MapFile, SendSegment or received by ReceiveSegment is not one (a
	// pipe, socket, directory, device, or a regular file outside memory,
	// such as one on disk).
	ErrNotSegment = errors.New("shmmap: not a shared memory segment")
	// ErrAlignment: View of bytes whose address is not a multiple of the
	// type's size.
	ErrAlignment = errors.New("shmmap: misaligned")
	// ErrBadMessage: ReceiveSegment got a message that does not carry exactly
	// one file descriptor: none (an empty message included), several, or
	// more than it has room for (cut short by the kernel). Every
	// descriptor that came with it has been closed.
	ErrBadMessage = errors.New("shmmap: message does not carry exactly one file")
	// ErrNotSealed: RequireSealed was given, and another process could
	// change the segment's size under the mapping: on Linux, it lacks
	// F_SEAL_SHRINK, or for a writable mapping F_SEAL_GROW (a segment
	// with a key never has them); or, on hugetlbfs, take its pages back
	// by punching a hole, which it lacks F_SEAL_WRITE and
	// F_SEAL_FUTURE_WRITE to stop. Nothing was mapped or made.
	ErrNotSealed = errors.New("shmmap: segment not sealed against size changes")
)

// errCannotLink: an unnamed file (O_TMPFILE) cannot be given a name in this
// process, which must then make segments named from the start. It never
// reaches the caller.
var errCannotLink = errors.New("shmmap: cannot link an unnamed file here")

// sizeError wraps ErrInvalidSize with the size asked for and why it is
// wrong.
func sizeError(size int, why string) error {
	return fmt.Errorf("%w %d: %s", ErrInvalidSize, size, why)
}

// ignoringEINTR calls fn until it returns an error other than EINTR. Go's
// runtime sends signals to its threads (preemption, profiling), so every
// call that the kernel may interrupt goes through it: the opens, fcntl
// locks, fallocate and ftruncate, and unlink, cleanup paths included. (close
// is never retried: Linux and macOS release the fd even when close is
// interrupted, and a retry could close an fd that another goroutine has
// just been given.)
func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}
