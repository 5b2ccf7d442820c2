package shmmap

import (
	"errors"
	"io/fs"
	"os"
	"sync"
)

// A Mapping is a mapping of a segment that goes by file descriptor rather
// than by key: an anonymous segment from CreateAnonymous, or a segment
// handed over as a file (by os/exec's ExtraFiles, by ReceiveFile) and
// mapped with ReadFile or ReadWriteFile. It is a handle, as an *os.File
// is: the mapping lives until Close, whoever else maps the same segment.
//
// Mappings are not keys: they are not in the table that Release and
// ReleaseAll work on, and neither touches them. Each Mapping belongs to
// the code that made it, which must Close it; defer m.Close() is the
// usual shape. A Mapping dropped without Close keeps its memory mapped
// until the process exits (the garbage collector cannot unmap it: the
// slices from Bytes point outside the Go heap, where it cannot see them).
//
// The methods are safe for concurrent use, but Close must not race with
// any use of the slice from Bytes.
type Mapping struct {
	mu     sync.Mutex
	data   []byte // nil once closed
	file   *os.File
	owns   bool // Close closes file: CreateAnonymous's
	sealed bool
}

// CreateAnonymous makes a new anonymous segment of exactly size bytes,
// zero-filled and mapped read-write. It has no key and no name that
// anything could be left under: other processes map it by file
// descriptor, given m.File() through os/exec's ExtraFiles or SendFile, and
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
// the operation that failed and the file's name (a size error names none).
func CreateAnonymous(size int, opts ...Option) (*Mapping, error) {
	if size <= 0 || size > maxSize {
		return nil, createSizeError(size)
	}
	for try := 1; ; try++ {
		key := ""
		if anonNeedsKey {
			key = newKey()
		}
		data, fd, name, sealed, err := createAnon(key, size, parseOptions(opts))
		if err == nil {
			return &Mapping{data: data, file: os.NewFile(uintptr(fd), name), owns: true, sealed: sealed}, nil
		}
		if !keyTaken(err, try) {
			return nil, err
		}
	}
}

// ReadFile maps the segment that f is a file of read-only and returns its
// first size bytes; size 0 maps the whole segment. A write to the slice
// faults. f is typically a file received with ReceiveFile, or inherited
// through os/exec's ExtraFiles (os.NewFile(3, name) in the child); it
// stays the caller's: close it when it is no longer needed to hand on, as
// soon as ReadFile returns if it is not, since the mapping does not need
// it. m.Close() unmaps but does not close f.
//
// f must be a segment: on Linux a regular file in memory (a memfd, a file
// in /dev/shm or another tmpfs, or hugetlbfs), on macOS a shm object.
// Anything else, a pipe, socket, directory or device, and a regular file
// on disk (whose mapping writes to the disk, and faults at the access when
// a page cannot be read or written back), is an error wrapping
// ErrNotSegment. A nil f is an error wrapping fs.ErrInvalid, a closed one
// fs.ErrClosed. A size that is negative or larger than the segment is
// ErrInvalidSize (checked with fstat before mapping: a mapping past the end
// would fault on first touch), and so is size 0 of an empty segment, or
// of one larger than a process can map (on 32-bit systems: map a part of
// it). A file opened without read access is fs.ErrPermission.
//
// m.Sealed() reports whether the segment is sealed against shrinking (on
// Linux, F_SEAL_SHRINK: CreateAnonymous's segments are, and so are memfds
// that other programs seal so). If it is, no process can ftruncate it
// below its size, so no access to the mapping can fault because another
// process shrank the segment; if it is not, one can, as with keys: an
// access past the new end is a fault that kills this process (see
// Bytes). The seals are read before the size, so a segment shrunk while
// ReadFile runs is never Sealed over a mapping past its end. A file from
// a process that is not trusted is best mapped with RequireSealed, which
// refuses one that is not sealed (ErrNotSealed) before mapping anything.
//
// An O_PATH descriptor, which a peer can send, is an error wrapping
// fs.ErrPermission: the file can be neither read nor written through it.
// m.Bytes() is valid until m.Close(). If there is an error, it will be of
// type *fs.PathError naming f.Name().
func ReadFile(f *os.File, size int, opts ...Option) (*Mapping, error) {
	return mapOf(f, size, false, parseOptions(opts))
}

// ReadWriteFile maps the segment that f is a file of read-write and
// returns its first size bytes; size 0 maps the whole segment. Files,
// sizes, seals and errors are as for ReadFile; a file opened without write
// access, or a segment sealed against writing (F_SEAL_WRITE), is an error
// wrapping fs.ErrPermission, and with RequireSealed a segment must be
// sealed against growing too (F_SEAL_GROW). f stays the caller's, and
// m.Bytes() is valid until m.Close(). If there is an error, it will be of
// type *fs.PathError naming f.Name().
func ReadWriteFile(f *os.File, size int, opts ...Option) (*Mapping, error) {
	return mapOf(f, size, true, parseOptions(opts))
}

func mapOf(f *os.File, size int, writable bool, o options) (*Mapping, error) {
	if size < 0 || size > maxSize {
		return nil, &fs.PathError{Op: "mmap", Path: fileName(f), Err: attachSizeError(size)}
	}
	var m *Mapping
	var err error
	if ferr := withFD(f, func(fd int) {
		var data []byte
		var sealed bool
		data, sealed, err = mapFile(fd, f.Name(), size, writable, o)
		if err == nil {
			m = &Mapping{data: data, file: f, sealed: sealed}
		}
	}); ferr != nil {
		return nil, &fs.PathError{Op: "mmap", Path: fileName(f), Err: ferr}
	}
	return m, err
}

// withFD calls fn with f's descriptor, which f cannot close meanwhile. A
// nil f is an error wrapping fs.ErrInvalid, a closed one fs.ErrClosed.
func withFD(f *os.File, fn func(fd int)) error {
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

// fileName is f's name, or "" for a nil f.
func fileName(f *os.File) string {
	if f == nil {
		return ""
	}
	return f.Name()
}

// Bytes returns the mapped memory: all of the segment for CreateAnonymous,
// size bytes (or all) for ReadFile and ReadWriteFile. It points outside the
// Go heap, at memory that other processes may change at any moment, and is
// valid until Close. Any access after that, a write to the bytes of a
// ReadFile mapping, and an access past the end of a segment that another
// process shrank (possible unless Sealed) kill the process with a fault,
// which recover cannot take unless the goroutine has called
// debug.SetPanicOnFault(true): see the package documentation. After Close,
// and of a nil Mapping, Bytes returns nil.
func (m *Mapping) Bytes() []byte {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data
}

// File returns the file of the segment, to hand over to another process:
// in os/exec's Cmd.ExtraFiles (the child finds it as fd 3 and on, and
// maps it with ReadWriteFile(os.NewFile(3, name), 0)), or with SendFile.
// Its descriptor is close-on-exec, so no other child inherits it.
//
// For CreateAnonymous, the file belongs to m: Close closes it, so do not
// close it yourself, and do not use it after Close. For ReadFile and
// ReadWriteFile it is the caller's f, which m neither needs nor closes. A
// nil Mapping has no file: nil.
func (m *Mapping) File() *os.File {
	if m == nil {
		return nil
	}
	return m.file
}

// Sealed reports whether the segment is sealed against shrinking: then no
// process can make it smaller, and no access to m's bytes can fault
// because another process truncated it. On Linux that is the memfd seal
// F_SEAL_SHRINK, which every segment of CreateAnonymous has (unless
// memfd_create did not exist) and ReadFile and ReadWriteFile look for. On
// macOS, which has no seals, Sealed is always false, although no segment
// can shrink there once its size is set (RequireSealed takes every
// segment there). A nil Mapping is not sealed.
func (m *Mapping) Sealed() bool { return m != nil && m.sealed }

// Close unmaps the segment and, for CreateAnonymous, closes its file. The
// slices from Bytes become invalid: any access to them faults. Other
// processes' mappings and descriptors stay valid; the memory is freed once
// the last of them goes. A second Close returns an error wrapping
// fs.ErrClosed and does nothing else; Close of a nil Mapping (of a failed
// CreateAnonymous, say), or of one not made by this package, an error
// wrapping fs.ErrInvalid. If there is an error, it will be of type
// *fs.PathError naming the file.
func (m *Mapping) Close() error {
	if m == nil || m.file == nil {
		return &fs.PathError{Op: "close", Path: "", Err: fs.ErrInvalid}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return &fs.PathError{Op: "close", Path: m.file.Name(), Err: fs.ErrClosed}
	}
	var err error
	if merr := munmap(m.data); merr != nil {
		err = &fs.PathError{Op: "munmap", Path: m.file.Name(), Err: merr}
	}
	m.data = nil
	if m.owns {
		if cerr := m.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
