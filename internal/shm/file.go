package shm

import (
	"errors"
	"io/fs"
	"os"
)

// WithFD calls fn with f's descriptor, which f cannot close meanwhile. A
// nil f is an error wrapping fs.ErrInvalid, a closed one fs.ErrClosed.
func WithFD(f *os.File, fn func(fd int)) error {
	if f == nil {
		return fs.ErrInvalid
	}
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { fn(int(fd)) })
	}
	if err != nil && !errors.Is(err, fs.ErrInvalid) {
		// Control fails only for a closed file, with poll's "use of
		// closed file", which is not fs.ErrClosed.
		return fs.ErrClosed
	}
	return err
}
