package shmmap

import (
	"os"

	"github.com/shmmap-go/shmmap/internal/shm"
)

// CreateAnonymous makes a new anonymous segment of exactly size bytes,
// zero-filled and mapped read-write. It has no key and no name that
// anything could be left under: other processes map it by file
// descriptor, given m.File() through os/exec's ExtraFiles or SendSegment, and
// its memory is freed once the last descriptor and mapping of it, in any
// process, are gone, however the processes end.
//
// On Linux it is a memfd (memfd_create(2), close-on-exec): it takes memory
// that no mount's size limits, so a container's small /dev/shm does not
// cap it. The memory is reserved with fallocate as Create reserves it, so
// that a memory limit is an error from CreateAnonymous (syscall.ENOSPC, or
// syscall.ENOMEM for more than the machine's memory and swap) rather than a
// SIGBUS at first write. It is then sealed (F_SEAL_SHRINK, F_SEAL_GROW,
// F_SEAL_SEAL): no process it is handed to can change its size, so no
// mapping of it can ever fault for a truncation, and Sealed reports true.
// Its file is named "memfd:shmmap" (/proc/PID/maps shows
// "/memfd:shmmap (deleted)"). Where
// memfd_create does not exist (ENOSYS: an old kernel, gVisor, a seccomp
// filter), the segment is an unnamed file in /dev/shm (O_TMPFILE) instead,
// which counts against /dev/shm's size and cannot be sealed; its file is
// named "/dev/shm (O_TMPFILE)". With RequireSealed, that is an error
// wrapping ErrNotSealed instead.
//
// On macOS it is a segment made as Create makes it, under a random key
// that is removed at once, before CreateAnonymous returns; its file is
// named with that key. macOS has no seals, so Sealed is false, but its
// segments cannot shrink either: xnu sets a segment's size only once.
//
// m.Bytes() is valid until m.Close(), which unmaps it and closes the file.
// If size <= 0 or past what a process can map, the error wraps
// ErrInvalidSize. On failure nothing is left behind: no name, fd or
// mapping. If there is an error, it will be of type *fs.PathError, naming
// the operation that failed and the file's name (a size error names
// "(new segment)").
func CreateAnonymous(size int, opts ...Option) (*Mapping, error) {
	if size <= 0 || size > shm.MaxSize {
		return nil, createSizeError(size)
	}
	for try := 1; ; try++ {
		key := ""
		if shm.AnonNeedsKey {
			key = newKey()
		}
		data, fd, name, sealed, err := shm.CreateAnon(key, size, parseOptions(opts))
		if err == nil {
			return &Mapping{data: data, fd: fd, file: os.NewFile(uintptr(fd), name), name: name, sealed: sealed, segSize: int64(size)}, nil
		}
		if !keyTaken(err, try) {
			return nil, err
		}
	}
}
