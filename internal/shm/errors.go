package shm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// The sentinels that the mechanism wraps; package shmmap exports them
// under the same names, as the same values, so errors.Is works on either.
var (
	ErrInvalidSize = errors.New("shmmap: invalid size")
	ErrNotSegment  = errors.New("shmmap: not a shared memory segment")
	ErrNotSealed   = errors.New("shmmap: segment not sealed against size changes")
)

// errCannotLink: an unnamed file (O_TMPFILE) cannot be given a name in this
// process, which must then make segments named from the start. It never
// reaches the caller.
var errCannotLink = errors.New("shmmap: cannot link an unnamed file here")

// SizeError wraps ErrInvalidSize with the size asked for and why it is
// wrong.
func SizeError(size int, why string) error {
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
