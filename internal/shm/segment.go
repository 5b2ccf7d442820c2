package shm

import (
	"fmt"
	"io/fs"
	"math"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxSize is the largest segment Create makes and the largest mapping Read
// and ReadWrite make: 128 TiB, the user address space of x86-64 with 4-level
// paging and of macOS on arm64, or the largest int on 32-bit systems.
const MaxSize = min(1<<47, math.MaxInt)

// create makes segment name (canonical form) of size bytes, maps it
// read-write, and returns the mapping and its fd, which holds the
// creator's lock where the system keeps one (HoldsName). The
// segment gets its name only once it is locked, sized and mapped, where the
// system allows (Linux's O_TMPFILE): then no other process, a sweeper
// included, ever sees it half made, and a failure leaves no name to remove.
// With RequireSealed, a file that cannot be sealed (every file of a key, on
// Linux) is refused before it is sized. On failure nothing is left behind:
// no name, fd or mapping.
func CreateSegment(name string, size int, o Options) (data []byte, fd int, err error) {
	fd, named, err := openNew(name)
	if err != nil {
		return nil, -1, &fs.PathError{Op: "shm_open", Path: name, Err: err}
	}
	op := "fcntl"
	err = lockCreator(fd)
	if err == nil && o.Sealed {
		err = checkSealed(fileSeals(fd), true)
	}
	if err == nil {
		op, err = InitSegment(fd, size)
	}
	if err == nil {
		op = "mmap"
		data, err = mmap(fd, size, true, o.Flags)
	}
	if err == nil && !named {
		op = "linkat"
		if err = linkName(fd, name); err != nil {
			Munmap(data, int64(size))
		}
	}
	if err != nil {
		if named {
			UnlinkName(name)
		}
		CloseFile(fd, int64(size)) // the last reference: it frees what InitSegment reserved
		if err == errCannotLink {
			return CreateSegment(name, size, o) // named from the start, this time
		}
		return nil, -1, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return data, fd, nil
}

// open maps size bytes of the existing segment name (canonical form), or
// all of it if size is 0, after checking with fstat that it is a segment
// and has them, and for RequireSealed that it is sealed. It returns the
// segment's fd too if keep, else closes it (fd -1), and the segment's size
// as mapped. Errors name key, the caller's spelling.
func MapNamed(name, key string, size int, writable, keep bool, o Options) (data []byte, fd int, segSize int64, err error) {
	var st unix.Stat_t
	fd, err = OpenSegment(name, key, writable, &st)
	if err != nil {
		return nil, -1, 0, err
	}
	if o.Sealed {
		// The size again, after the seals: see MapFile.
		if err = checkSealed(fileSeals(fd), writable); err != nil {
			err = &fs.PathError{Op: "fcntl", Path: key, Err: err}
		} else if err = Fstat(fd, &st); err != nil {
			err = &fs.PathError{Op: "fstat", Path: key, Err: err}
		}
	}
	if err == nil {
		data, err = mapSegment(fd, &st, key, size, writable, o.Flags)
	}
	if err != nil || !keep {
		CloseFD(fd)
		fd = -1
	}
	return data, fd, int64(st.Size), err
}

// OpenSegment opens the existing segment name (canonical form), read-only
// or read-write, and fills st with its fstat; anything but a segment under
// the name is an error wrapping ErrNotSegment. Errors name key, the
// caller's spelling.
func OpenSegment(name, key string, writable bool, st *unix.Stat_t) (int, error) {
	flag := unix.O_RDONLY
	if writable {
		flag = unix.O_RDWR
	}
	fd, err := OpenName(name, flag, 0)
	if err != nil {
		if mode, ok := notSegment(name, err); ok {
			err = notSegmentError(mode, err)
		}
		return -1, &fs.PathError{Op: "shm_open", Path: key, Err: err}
	}
	if err := Fstat(fd, st); err != nil {
		CloseFD(fd)
		return -1, &fs.PathError{Op: "fstat", Path: key, Err: err}
	}
	if !isSegment(st) {
		CloseFD(fd)
		return -1, &fs.PathError{Op: "shm_open", Path: key, Err: notSegmentError(uint32(st.Mode), nil)}
	}
	return fd, nil
}

// mapSegment maps size bytes of the segment fd, or all of it if size is 0,
// after checking with st, its fstat, that it has them: a mapping past the
// end would fault on first touch. Errors name path.
func mapSegment(fd int, st *unix.Stat_t, path string, size int, writable bool, flags int) ([]byte, error) {
	has := int64(st.Size)
	switch {
	case has == 0:
		return nil, &fs.PathError{Op: "mmap", Path: path, Err: SizeError(size, "the segment has 0 bytes")}
	case size == 0 && has > MaxSize:
		return nil, &fs.PathError{Op: "mmap", Path: path, Err: SizeError(size, fmt.Sprintf(
			"the segment has %d bytes, more than a process can map (%d); map a part of it", has, int64(MaxSize)))}
	case int64(size) > has:
		return nil, &fs.PathError{Op: "mmap", Path: path, Err: SizeError(size, fmt.Sprintf("the segment has %d bytes", has))}
	case size == 0:
		size = int(has)
	}
	data, err := mmap(fd, size, writable, flags)
	if err != nil {
		return nil, &fs.PathError{Op: "mmap", Path: path, Err: err}
	}
	return data, nil
}

// MapFile maps size bytes of fd, a file that a caller gave, or all of it if
// size is 0, once CheckFile has found it a segment, and for RequireSealed
// checkFileSealed its seals; it reports whether the segment is sealed
// (fileSealed). An O_PATH descriptor, which a peer can send, is
// fs.ErrPermission: it can be neither read nor written. Errors name path,
// the file's name.
//
// The seals are read before the size: a seal, once added, is never removed,
// so a size read after F_SEAL_SHRINK is one the file keeps. Read after the
// size, a seal that a peer added just after shrinking the file would vouch
// for a mapping past its end.
func MapFile(fd int, path string, size int, writable bool, o Options) (data []byte, sealed bool, segSize int64, err error) {
	seals := fileSeals(fd)
	var st unix.Stat_t
	kind, err := CheckFile(fd, path, "mmap", &st)
	if err != nil {
		return nil, false, 0, err
	}
	if pathOnly(fd) {
		return nil, false, 0, &fs.PathError{Op: "mmap", Path: path, Err: errPathOnly}
	}
	if o.Sealed {
		if err := checkFileSealed(kind, seals, writable); err != nil {
			return nil, false, 0, &fs.PathError{Op: "fcntl", Path: path, Err: err}
		}
	}
	data, err = mapSegment(fd, &st, path, size, writable, o.Flags)
	if err != nil {
		return nil, false, 0, err
	}
	return data, fileSealed(kind, seals), int64(st.Size), nil
}

// errPathOnly is the error of mapping an O_PATH descriptor.
var errPathOnly = fmt.Errorf("%w: the file is open with O_PATH, for neither reading nor writing", fs.ErrPermission)

// CheckFile fills st with fstat of fd, a file that a caller or a peer
// handed over, and returns what segment it is, or an error wrapping
// ErrNotSegment, for op on path, unless it is one (statFile says what
// that is on each system).
func CheckFile(fd int, path, op string, st *unix.Stat_t) (segKind, error) {
	kind, err := statFile(fd, st)
	if err != nil {
		return notSeg, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if kind == notSeg {
		return notSeg, &fs.PathError{Op: op, Path: path, Err: notSegmentError(uint32(st.Mode), nil)}
	}
	return kind, nil
}

// CreateAnon makes an anonymous segment of size bytes: openAnon makes it
// without a name, or with one that it removes at once (key, on systems
// that need one: AnonNeedsKey). InitSegment gives it its mode and reserves
// its memory as Create does, seal seals it where the system can (for
// RequireSealed, checkSealed then checks it was), and it is mapped
// read-write. It returns the mapping, the fd (close-on-exec), the
// name the file goes by, and whether it is sealed. On failure nothing is
// left behind: no name, fd or mapping.
func CreateAnon(key string, size int, o Options) (data []byte, fd int, name string, sealed bool, err error) {
	fd, name, op, err := openAnon(key)
	if err != nil {
		return nil, -1, "", false, &fs.PathError{Op: op, Path: name, Err: err}
	}
	op, err = InitSegment(fd, size)
	if err == nil {
		op = "fcntl"
		sealed, err = seal(fd)
	}
	if err == nil && o.Sealed {
		err = checkSealed(fileSeals(fd), true)
	}
	if err == nil {
		op = "mmap"
		data, err = mmap(fd, size, true, o.Flags)
	}
	if err != nil {
		CloseFile(fd, int64(size)) // the last reference: it frees what InitSegment reserved
		return nil, -1, "", false, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return data, fd, name, sealed, nil
}

// notSegmentError is ErrNotSegment for a file of the given mode, with the
// error that showed it, if any.
func notSegmentError(mode uint32, cause error) error {
	if cause != nil {
		return fmt.Errorf("%w: it is %s (%w)", ErrNotSegment, fileKind(mode), cause)
	}
	return fmt.Errorf("%w: it is %s", ErrNotSegment, fileKind(mode))
}

// fileKind names the type of file that mode describes, for ErrNotSegment.
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFREG:
		return "a regular file outside memory (on a disk, say)"
	}
	return fmt.Sprintf("a file of type %#o", mode&unix.S_IFMT)
}

// mmap maps size bytes of fd, shared, with extra flags. It goes around
// unix.Mmap, which keeps a second table of mappings under a lock of its own.
// ENOMEM gets a word on what the system ran out of.
func mmap(fd, size int, writable bool, flags int) ([]byte, error) {
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	p, err := mmapFD(fd, size, prot, unix.MAP_SHARED|flags)
	if err == unix.ENOMEM {
		return nil, explainENOMEM(size)
	}
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), size), nil
}
