// Package shmmap shares memory between processes on one machine through
// POSIX shared memory segments (shm_open, ftruncate or fallocate, mmap),
// handed out as plain byte slices that every process reads and writes in
// place, without copying.
//
// A segment's life, through its key:
//
//	key, data, err := shmmap.Create(size) // the creator: a new segment
//	// pass key to another process: argv, environment, a pipe
//	data, err := shmmap.ReadWrite(key, 0) // the other: all of the segment
//	err = shmmap.Unlink(key)              // optional, once all attached
//	err = shmmap.Release(key)             // in each process, when done
//
// Read and ReadWrite map a segment by key whichever program made it
// (Python's multiprocessing.shared_memory, the node package shmmap, C's
// shm_open; README.md shows each side). Release unmaps what the key API
// mapped in this process and, in the creator, removes the name; Unlink
// removes it at once, so that no crash can leave it behind. Sweep removes
// what crashed creators left. CreateAnonymous makes a segment without a
// key, handed to other processes as a file (MapFile, SendSegment).
//
// # Handles and keys
//
// Code that shares its process with other code holds segments as handles:
// CreateNamed, Map, MapReadOnly, CreateAnonymous and MapFile return a
// *Mapping, whose bytes are its owner's until its Close, as an *os.File is.
// Release and ReleaseAll never touch a Mapping: they work only on what the
// key API (Create, Read, ReadWrite) made, which is a thin layer over
// handles that it keeps in a table of its own.
//
// # Lifetimes and faults
//
// The bytes lie outside the Go heap, and other processes may change them
// at any moment: synchronise through other means (a pipe, a lock,
// sync/atomic on aligned words). A key's slices are valid until Release
// of the key in this process, which unmaps them all at once; a Mapping's
// until its Close. An access after that, a write to a read-only mapping,
// and an access past the end of a segment that another process shrank
// (ftruncate) are faults that kill the process. recover takes one only in
// a goroutine that has called debug.SetPanicOnFault(true), where it is a
// panic with a runtime.Error:
//
//	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
//
// A file from a process that is not trusted is best mapped with
// RequireSealed, which refuses a segment that could shrink. append past a
// slice's capacity copies it to the Go heap, out of the other processes'
// sight. README.md covers containers, macOS, and the choice between keys
// and anonymous segments.
//
// # Errors
//
// The errors of every function that opens, maps or releases a segment are
// *fs.PathError, naming the operation and the key or file; ReleaseAll and
// Sweep join one per key. They work with errors.Is: fs.ErrNotExist,
// fs.ErrPermission, syscall.ENOSPC for a full shm filesystem,
// syscall.ENOMEM when the address space or the map count runs out, and
// this package's Err values. Keys are checked before any system call, so
// that no key reaches a file outside the shm namespace.
package shmmap

import (
	"errors"
	"io/fs"
	"sync"

	"github.com/shmmap-go/shmmap/internal/shm"
)

// Create makes a new shared memory segment of exactly size bytes, zero-filled
// and mapped read-write, and returns its key and data. The segment's mode is
// 0600 (owner only) whatever the umask. Keys start with "/", are 30 bytes
// long and carry 128 random bits; pass the key to another process, which
// maps the segment with Read or ReadWrite. On Linux the creating process
// keeps one fd (close-on-exec) on the segment, with the lock that tells List
// and Sweep it is alive, until Release or Unlink; the name appears only once
// the segment is complete.
//
// On Linux the memory is reserved with fallocate, so that a full /dev/shm is
// an ENOSPC error from Create rather than a SIGBUS at first write; on a
// filesystem without fallocate (EOPNOTSUPP, ENODEV), and on macOS, the size is
// set with ftruncate alone and pages are allocated on first touch.
//
// data is valid until Release(key); see the package documentation for what
// that means. Release also removes the segment's name; so does Unlink, at
// once. If size <= 0 or past what a process can map, the error wraps
// ErrInvalidSize; with RequireSealed it wraps ErrNotSealed on Linux, where
// a segment with a key cannot be sealed. On failure nothing is left behind:
// no name, fd or mapping.
func Create(size int, opts ...Option) (key string, data []byte, err error) {
	m, err := createNamed(size, parseOptions(opts), true)
	if err != nil {
		return "", nil, err
	}
	table.add(m.name, m)
	return m.name, m.data, nil
}

// Read maps the existing segment key read-only and returns its first size
// bytes; size 0 maps the whole segment. A write to the slice faults. Key is
// any POSIX shared memory name, with or without its leading slash:
// "/psm_ab12" and "psm_ab12" are the same segment.
//
// The error wraps ErrInvalidKey for a malformed key, fs.ErrNotExist if there
// is no such segment, fs.ErrPermission if it may not be opened,
// ErrNotSegment if something else stands under the name (a FIFO, socket,
// directory or symlink: the open never blocks on it), and ErrInvalidSize if
// size is negative or larger than the segment (checked with fstat before
// mapping: a mapping past the end would fault on first touch) or if size is
// 0 and the segment is larger than a process can map (on 32-bit systems:
// map a prefix instead); with RequireSealed it wraps ErrNotSealed on Linux,
// where a segment with a key cannot be sealed.
// data is valid until Release(key).
func Read(key string, size int, opts ...Option) ([]byte, error) {
	return attach(key, size, false, parseOptions(opts))
}

// ReadWrite maps the existing segment key read-write and returns its first
// size bytes; size 0 maps the whole segment. Keys, sizes and errors are as
// for Read. data is valid until Release(key).
func ReadWrite(key string, size int, opts ...Option) ([]byte, error) {
	return attach(key, size, true, parseOptions(opts))
}

func attach(key string, size int, writable bool, o options) ([]byte, error) {
	m, err := mapKey(key, size, writable, false, o)
	if err != nil {
		return nil, err
	}
	table.add(m.name, m)
	return m.data, nil
}

// Release unmaps every mapping of key that this process holds and, if this
// process created the segment and has not unlinked it, removes its name and
// closes the fd that Create kept.
// Other processes' mappings stay valid. Every slice of key that this process
// was given becomes invalid: touching it afterwards faults. Goroutines that
// share a key must therefore all be done with it before one releases it.
//
// Release of a key that this process does not hold (never mapped, or
// released already) returns an error wrapping ErrNotMapped. A name that is
// already gone (removed by Unlink, or by another process) is not an error.
func Release(key string) error {
	name, err := normalize(key)
	if err != nil {
		return &fs.PathError{Op: "release", Path: key, Err: err}
	}
	s, ok := table.remove(name)
	if !ok {
		return &fs.PathError{Op: "release", Path: key, Err: ErrNotMapped}
	}
	return s.release(key)
}

// ReleaseAll releases every key that this process holds, as Release does,
// and returns the errors joined; for defer shmmap.ReleaseAll() in main.
// Mappings (CreateAnonymous, MapFileReadOnly, MapFile) are not keys: it
// leaves them to their Close.
func ReleaseAll() error {
	var errs []error
	for name, s := range table.removeAll() {
		errs = append(errs, s.release(name))
	}
	return errors.Join(errs...)
}

// Unlink removes the name of segment key now, so that no other process can
// open it and its memory is freed once every mapping is gone. Mappings,
// this process' included, stay valid until Release (a handle's, until its
// Close). In the creating process it also closes the fd that Create kept,
// and a creator, Create's or CreateNamed's, then removes nothing at
// Release or Close. A missing name is an error wrapping fs.ErrNotExist.
func Unlink(key string) error {
	name, err := normalize(key)
	if err != nil {
		return &fs.PathError{Op: "shm_unlink", Path: key, Err: err}
	}
	err = shm.UnlinkName(name)
	// A creator's Release or Close must not remove a later segment of the
	// same name, and the key API's creator no longer owns one to hold.
	creators.nameRemoved(name)
	if err != nil {
		return &fs.PathError{Op: "shm_unlink", Path: key, Err: err}
	}
	return nil
}

// holding is what the key API holds of one key: the Mappings it made, in
// the order made. The first is kept inline, so that the common case (one
// mapping a key) allocates no slice.
type holding struct {
	first *Mapping
	more  []*Mapping
}

// release closes every Mapping of s, the later ones first, so that the
// creator's (always the first: Create's key is new) goes last and its close
// of the segment's fd is the one that frees the pages. Errors name key;
// the first is returned.
func (s *holding) release(key string) error {
	var first error
	for i := len(s.more) - 1; i >= -1; i-- {
		m := s.first
		if i >= 0 {
			m = s.more[i]
		}
		if err := m.close(key); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// table holds every Mapping that the key API has made, by canonical key.
// Its lock is never held across a syscall: Create and attach map first and
// record after, Release forgets first and unmaps after.
var table = holdingTable{segs: make(map[string]holding)}

type holdingTable struct {
	mu   sync.Mutex
	segs map[string]holding
}

// add records m, a Mapping of name that the key API made.
func (t *holdingTable) add(name string, m *Mapping) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.segs[name]
	if !ok {
		s.first = m
	} else {
		s.more = append(s.more, m)
	}
	t.segs[name] = s
}

// remove takes name's segment out of the table and returns it.
func (t *holdingTable) remove(name string) (holding, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.segs[name]
	delete(t.segs, name)
	return s, ok
}

// removeAll empties the table and returns what it held.
func (t *holdingTable) removeAll() map[string]holding {
	t.mu.Lock()
	defer t.mu.Unlock()
	segs := t.segs
	t.segs = make(map[string]holding)
	return segs
}
