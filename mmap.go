package shmmap

import (
	"io/fs"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// create makes segment name (canonical form) of size bytes and maps it
// read-write. The fd is closed once the mapping exists: a mapping keeps the
// segment alive by itself. On failure the name is removed again.
func create(name string, size, flags int) ([]byte, error) {
	fd, err := shmOpen(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return nil, &fs.PathError{Op: "shm_open", Path: name, Err: err}
	}
	op, err := initSegment(fd, size)
	var data []byte
	if err == nil {
		op = "mmap"
		data, err = mmap(fd, size, true, flags)
	}
	closeFD(fd)
	if err != nil {
		shmUnlink(name, size)
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return data, nil
}

// open maps size bytes of the existing segment name (canonical form), or
// all of it if size is 0, after checking with fstat that the segment has
// them. Errors name key, the caller's spelling.
func open(name, key string, size int, writable bool, flags int) ([]byte, error) {
	flag := unix.O_RDONLY
	if writable {
		flag = unix.O_RDWR
	}
	fd, err := shmOpen(name, flag, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "shm_open", Path: key, Err: err}
	}
	defer closeFD(fd)
	var st unix.Stat_t
	if err := fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: key, Err: err}
	}
	switch {
	case st.Size > maxSize:
		return nil, &fs.PathError{Op: "mmap", Path: key, Err: sizeError(size, "segment has %d bytes, more than a process can map", int(min(st.Size, maxSize)))}
	case int(st.Size) == 0:
		return nil, &fs.PathError{Op: "mmap", Path: key, Err: sizeError(size, "segment has %d bytes", 0)}
	case size > int(st.Size):
		return nil, &fs.PathError{Op: "mmap", Path: key, Err: sizeError(size, "segment has %d bytes", int(st.Size))}
	case size == 0:
		size = int(st.Size)
	}
	data, err := mmap(fd, size, writable, flags)
	if err != nil {
		return nil, &fs.PathError{Op: "mmap", Path: key, Err: err}
	}
	return data, nil
}

// mmap maps size bytes of fd, shared, with extra flags. It goes around
// unix.Mmap, which keeps a second table of mappings under a lock of its own.
func mmap(fd, size int, writable bool, flags int) ([]byte, error) {
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	p, err := mmapFD(fd, size, prot, unix.MAP_SHARED|flags)
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
}

// release unmaps every mapping of s and, if this process created the
// segment, removes its name; a name already gone is what the caller wanted.
// Errors name key.
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

func (t *segmentTable) add(name string, data []byte, created bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.segs[name]
	if !ok {
		s.first = data
	} else {
		s.more = append(s.more, data)
	}
	s.created = s.created || created
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

// forget records that name's segment is no longer this process' to unlink.
func (t *segmentTable) forget(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.segs[name]; ok {
		s.created = false
		t.segs[name] = s
	}
}
