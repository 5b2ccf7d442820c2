package shmmap

import (
	"fmt"
	"io/fs"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// create makes segment name (canonical form) of size bytes, maps it
// read-write, and returns the mapping and, where the system keeps one
// (holdsName), the fd that holds the creator's lock; else fd is -1. The
// segment gets its name only once it is locked, sized and mapped, where the
// system allows (Linux's O_TMPFILE): then no other process, a sweeper
// included, ever sees it half made, and a failure leaves no name to remove.
// On failure nothing is left behind: no name, fd or mapping.
func create(name string, size, flags int) (data []byte, fd int, err error) {
	fd, named, err := openNew(name)
	if err != nil {
		return nil, -1, &fs.PathError{Op: "shm_open", Path: name, Err: err}
	}
	op := "fcntl"
	err = lockCreator(fd)
	if err == nil {
		op, err = initSegment(fd, size)
	}
	if err == nil {
		op = "mmap"
		data, err = mmap(fd, size, true, flags)
	}
	if err == nil && !named {
		op = "linkat"
		if err = linkName(fd, name); err != nil {
			munmap(data)
		}
	}
	if err != nil {
		if named {
			ignoringEINTR(func() error { return shmUnlink(name, size) })
		}
		closeFD(fd)
		return nil, -1, &fs.PathError{Op: op, Path: name, Err: err}
	}
	if !holdsName {
		closeFD(fd)
		fd = -1
	}
	return data, fd, nil
}

// open maps size bytes of the existing segment name (canonical form), or
// all of it if size is 0, after checking with fstat that it is a segment
// and has them. Errors name key, the caller's spelling.
func open(name, key string, size int, writable bool, flags int) ([]byte, error) {
	flag := unix.O_RDONLY
	if writable {
		flag = unix.O_RDWR
	}
	fd, err := shmOpen(name, flag, 0)
	if err != nil {
		if kind := notSegment(name, err); kind != "" {
			err = fmt.Errorf("%w: it is %s (%w)", ErrNotSegment, kind, err)
		}
		return nil, &fs.PathError{Op: "shm_open", Path: key, Err: err}
	}
	defer closeFD(fd)
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: key, Err: err}
	}
	if !isSegment(&st) {
		return nil, &fs.PathError{Op: "shm_open", Path: key, Err: fmt.Errorf("%w: it is %s", ErrNotSegment, fileKind(uint32(st.Mode)))}
	}
	has := int64(st.Size)
	switch {
	case has == 0:
		return nil, &fs.PathError{Op: "mmap", Path: key, Err: sizeError(size, "the segment has 0 bytes")}
	case size == 0 && has > maxSize:
		return nil, &fs.PathError{Op: "mmap", Path: key, Err: sizeError(size, fmt.Sprintf(
			"the segment has %d bytes, more than a process can map (%d); map a part of it", has, int64(maxSize)))}
	case int64(size) > has:
		return nil, &fs.PathError{Op: "mmap", Path: key, Err: sizeError(size, fmt.Sprintf("the segment has %d bytes", has))}
	case size == 0:
		size = int(has)
	}
	data, err := mmap(fd, size, writable, flags)
	if err != nil {
		return nil, &fs.PathError{Op: "mmap", Path: key, Err: err}
	}
	return data, nil
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

// segment is what this process holds of one key. The first mapping is kept
// inline, so that the common case (one mapping a key) allocates nothing.
type segment struct {
	first   []byte   // the first mapping made of the key, in full
	more    [][]byte // any others
	created bool     // made by Create here and not unlinked since: Release unlinks
	fd      int      // while created, the fd that holds the creator's lock, or -1
}

// release unmaps every mapping of s and, if this process created the
// segment, removes its name and then drops the creator's lock; a name
// already gone is what the caller wanted. Errors name key.
func (s *segment) release(key string) error {
	var first error
	for i := -1; i < len(s.more); i++ {
		m := s.first
		if i >= 0 {
			m = s.more[i]
		}
		if err := munmap(m); err != nil && first == nil {
			first = &fs.PathError{Op: "munmap", Path: key, Err: err}
		}
	}
	if s.created {
		// Create mapped the whole segment first: its length is the size.
		err := ignoringEINTR(func() error { return shmUnlink(canonical(key), len(s.first)) })
		if err != nil && err != unix.ENOENT && first == nil {
			first = &fs.PathError{Op: "shm_unlink", Path: key, Err: err}
		}
	}
	if s.fd >= 0 {
		closeFD(s.fd)
	}
	return first
}

// canonical returns a valid key in its canonical form.
func canonical(key string) string {
	name, _ := normalize(key)
	return name
}

// table holds every mapping that this process has made, by canonical key.
// Its lock is never held across a syscall: Create and attach map first and
// record after, Release forgets first and unmaps after.
var table = segmentTable{segs: make(map[string]segment)}

type segmentTable struct {
	mu   sync.Mutex
	segs map[string]segment
}

// add records a mapping of name; for Create's, fd is the creator's lock
// (-1 where the system keeps none), else fd is ignored.
func (t *segmentTable) add(name string, data []byte, created bool, fd int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.segs[name]
	if !ok {
		s.first = data
		s.fd = -1
	} else {
		s.more = append(s.more, data)
	}
	if created {
		s.created, s.fd = true, fd
	}
	t.segs[name] = s
}

// remove takes name's segment out of the table and returns it.
func (t *segmentTable) remove(name string) (segment, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.segs[name]
	delete(t.segs, name)
	return s, ok
}

// removeAll empties the table and returns what it held.
func (t *segmentTable) removeAll() map[string]segment {
	t.mu.Lock()
	defer t.mu.Unlock()
	segs := t.segs
	t.segs = make(map[string]segment)
	return segs
}

// forget records that name's segment is no longer this process' to unlink,
// and returns the fd of the creator's lock for the caller to close, or -1.
func (t *segmentTable) forget(name string) (fd int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.segs[name]
	if !ok {
		return -1
	}
	fd = s.fd
	s.created, s.fd = false, -1
	t.segs[name] = s
	return fd
}
