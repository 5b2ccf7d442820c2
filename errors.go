package shmmap

import (
	"errors"

	"github.com/shmmap-go/shmmap/internal/shm"
)

// Errors that the functions of this package wrap; test with errors.Is.
// A missing segment is fs.ErrNotExist, a segment that the caller may not
// open is fs.ErrPermission, a full shm filesystem is syscall.ENOSPC, a nil
// *os.File is fs.ErrInvalid and a closed one fs.ErrClosed.
var (
	// ErrInvalidKey: the key is not a valid POSIX shared memory name.
	ErrInvalidKey = errors.New("shmmap: invalid key")
	// ErrInvalidSize: a size out of range, or larger than the segment.
	ErrInvalidSize = shm.ErrInvalidSize
	// ErrNotMapped: Release of a key that this process does not hold.
	ErrNotMapped = errors.New("shmmap: key not mapped by this process")
	// ErrNotSegment: the key names a file that is not a shared memory
	// segment (a FIFO, directory, socket or device that someone put in
	// the shm directory under that name), or a file given to MapFileReadOnly,
	// MapFile, SendSegment or received by ReceiveSegment is not one (a
	// pipe, socket, directory, device, or a regular file outside memory,
	// such as one on disk).
	ErrNotSegment = shm.ErrNotSegment
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
	ErrNotSealed = shm.ErrNotSealed
)
