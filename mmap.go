package shmmap

import (
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

// A Mapping is a handle on one mapping of a segment: a named segment that
// this process made (CreateNamed) or opened by key (Map, MapReadOnly), an
// anonymous one (CreateAnonymous), or one handed over as a file (MapFile,
// MapFileReadOnly). It belongs to the code that made it, as an *os.File
// does: its bytes stay mapped until its Close, whatever else in the
// process maps, releases or closes the same segment. Release and
// ReleaseAll work only on what the key API (Create, Read, ReadWrite) made,
// and never touch a Mapping.
//
// defer m.Close() is the usual shape. A Mapping dropped without Close
// keeps its memory mapped until the process exits: the garbage collector
// cannot unmap it, since the slices from Bytes point outside the Go heap,
// where it cannot see them.
//
// The methods are safe for concurrent use, but Close must not race with
// any use of the slice from Bytes.
type Mapping struct {
	mu      sync.Mutex
	data    []byte   // nil once closed
	fd      int      // the descriptor m owns, or -1
	file    *os.File // fd's *os.File once File has made one; or the caller's (MapFile)
	name    string   // the key of a named segment (canonical), else the file's name
	named   bool     // a named segment, with a key
	creator bool     // made by this Mapping, name not yet removed: Close removes it
	keyAPI  bool     // made by Create: removing the name also drops the creator's fd
	segSize int64    // the segment's size when mapped: Close may free all of it
	sealed  bool
}

// CreateNamed makes a new shared memory segment of exactly size bytes,
// zero-filled and mapped read-write, as Create does (mode 0600, a fresh
// random key, memory reserved on Linux), and returns a handle on it: the
// key is m.Key(), for other processes to map with Map or Read. The
// segment's name lives as long as m: m.Close() unmaps and removes it, and
// m.Unlink() removes it at once. On Linux m keeps the segment's file, with
// the creator's lock that tells List and Sweep that its creator is alive,
// until Close.
//
// Sizes, options and errors are as for Create. On failure nothing is left
// behind: no name, fd or mapping.
func CreateNamed(size int, opts ...Option) (*Mapping, error) {
	return createNamed(size, parseOptions(opts), false)
}

// createNamed is CreateNamed; keyAPI marks the key API's creators, which
// keep no fd where there is no creator's lock to hold (!shm.HoldsName).
func createNamed(size int, o options, keyAPI bool) (*Mapping, error) {
	if size <= 0 || size > shm.MaxSize {
		return nil, createSizeError(size)
	}
	for try := 1; ; try++ {
		key := newKey()
		data, fd, err := shm.CreateSegment(key, size, o)
		if err == nil {
			if keyAPI && !shm.HoldsName {
				shm.CloseFD(fd)
				fd = -1
			}
			m := &Mapping{data: data, fd: fd, name: key, named: true, creator: true, keyAPI: keyAPI, segSize: int64(size)}
			creators.add(m)
			return m, nil
		}
		if !keyTaken(err, try) {
			return nil, err
		}
	}
}

// Map maps the existing segment key read-write and returns a handle on the
// mapping of its first size bytes; size 0 maps the whole segment. Keys,
// sizes, options and errors are as for ReadWrite. m keeps a descriptor of
// the segment, m.File(), until m.Close(), which unmaps it; the segment's
// name stays.
func Map(key string, size int, opts ...Option) (*Mapping, error) {
	return mapKey(key, size, true, true, parseOptions(opts))
}

// MapReadOnly maps the existing segment key read-only, as Map does; a
// write to its bytes faults. Keys, sizes, options and errors are as for
// Read.
func MapReadOnly(key string, size int, opts ...Option) (*Mapping, error) {
	return mapKey(key, size, false, true, parseOptions(opts))
}

// mapKey maps segment key; keep says whether the Mapping keeps the
// segment's descriptor (the key API's do not).
func mapKey(key string, size int, writable, keep bool, o options) (*Mapping, error) {
	name, err := normalize(key)
	if err != nil {
		return nil, &fs.PathError{Op: "shm_open", Path: key, Err: err}
	}
	if size < 0 || size > shm.MaxSize {
		return nil, &fs.PathError{Op: "mmap", Path: key, Err: attachSizeError(size)}
	}
	data, fd, segSize, err := shm.MapNamed(name, key, size, writable, keep, o)
	if err != nil {
		return nil, err
	}
	return &Mapping{data: data, fd: fd, name: name, named: true, segSize: segSize}, nil
}

// MapFileReadOnly maps the segment that f is a file of read-only and
// returns its first size bytes; size 0 maps the whole segment. A write to
// the slice faults. f is typically a file received with ReceiveSegment, or
// inherited through os/exec's ExtraFiles (os.NewFile(3, name) in the
// child); it stays the caller's: close it when it is no longer needed to
// hand on, as soon as MapFileReadOnly returns if it is not, since the
// mapping does not need it. m.Close() unmaps but does not close f.
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
// that other programs seal so; on hugetlbfs F_SEAL_WRITE or
// F_SEAL_FUTURE_WRITE as well, see Sealed). If it is, no process can
// ftruncate it below its size, so no access to the mapping can fault
// because another process shrank the segment; if it is not, one can, as
// with keys: an access past the new end is a fault that kills this process
// (see Bytes). The seals are read before the size, so a segment shrunk
// while MapFileReadOnly runs is never Sealed over a mapping past its end.
// A file from a process that is not trusted is best mapped with
// RequireSealed, which refuses one that is not sealed (ErrNotSealed)
// before mapping anything.
//
// To learn whether f is a segment, MapFileReadOnly asks its filesystem
// (fstat, fstatfs). A file on a filesystem that a process serves (FUSE,
// which an unprivileged peer can mount in a user namespace of its own) or
// on one over a network (NFS) can make that call wait on the server, in
// the kernel, for as long as the server does not answer, past every
// signal but a fatal one; a received file is checked so once already, by
// ReceiveSegment.
//
// An O_PATH descriptor, which a peer can send, is an error wrapping
// fs.ErrPermission: the file can be neither read nor written through it.
// m.Bytes() is valid until m.Close(). If there is an error, it will be of
// type *fs.PathError naming f.Name().
func MapFileReadOnly(f *os.File, size int, opts ...Option) (*Mapping, error) {
	return mapOf(f, size, false, parseOptions(opts))
}

// MapFile maps the segment that f is a file of read-write and returns its
// first size bytes; size 0 maps the whole segment. Files, sizes, seals and
// errors are as for MapFileReadOnly; a file opened without write access,
// or a segment sealed against writing (F_SEAL_WRITE), is an error wrapping
// fs.ErrPermission, and with RequireSealed a segment must be sealed
// against growing too (F_SEAL_GROW). Like MapFileReadOnly, it asks f's
// filesystem whether f is a segment, which for a file on FUSE or NFS can
// wait on the server. f stays the caller's, and m.Bytes()
// is valid until m.Close(). If there is an error, it will be of type
// *fs.PathError naming f.Name().
func MapFile(f *os.File, size int, opts ...Option) (*Mapping, error) {
	return mapOf(f, size, true, parseOptions(opts))
}

func mapOf(f *os.File, size int, writable bool, o options) (*Mapping, error) {
	if size < 0 || size > shm.MaxSize {
		return nil, &fs.PathError{Op: "mmap", Path: fileName(f), Err: attachSizeError(size)}
	}
	var m *Mapping
	var err error
	if ferr := shm.WithFD(f, func(fd int) {
		var data []byte
		var sealed bool
		var segSize int64
		data, sealed, segSize, err = shm.MapFile(fd, f.Name(), size, writable, o)
		if err == nil {
			m = &Mapping{data: data, fd: -1, file: f, name: f.Name(), sealed: sealed, segSize: segSize}
		}
	}); ferr != nil {
		return nil, &fs.PathError{Op: "mmap", Path: fileName(f), Err: ferr}
	}
	return m, err
}

// fileName is f's name, or "" for a nil f.
func fileName(f *os.File) string {
	if f == nil {
		return ""
	}
	return f.Name()
}

// Bytes returns the mapped memory: all of the segment, or the size bytes
// asked for. It points outside the Go heap, at memory that other processes
// may change at any moment, and is valid until Close. Any access after
// that, a write to the bytes of a read-only mapping, and an access past the
// end of a segment that another process shrank (possible unless Sealed)
// kill the process with a fault, which recover cannot take unless the
// goroutine has called debug.SetPanicOnFault(true): see the package
// documentation. After Close, and of a nil Mapping, Bytes returns nil.
func (m *Mapping) Bytes() []byte {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data
}

// Key returns the key of a named segment, with its leading slash, for
// another process to map with Map or Read; "" for an anonymous segment or a
// file handed over, which have none, and for a nil Mapping.
func (m *Mapping) Key() string {
	if m == nil || !m.named {
		return ""
	}
	return m.name
}

// File returns the file of the segment, to hand over to another process:
// in os/exec's Cmd.ExtraFiles (the child finds it as fd 3 and on, and
// maps it with MapFile(os.NewFile(3, name), 0)), or with SendSegment. Its
// descriptor is close-on-exec, so no other child inherits it.
//
// For CreateNamed, Map, MapReadOnly and CreateAnonymous, the file belongs
// to m: Close closes it, so do not close it yourself, and do not use it
// after Close. For MapFile and MapFileReadOnly it is the caller's f, which
// m neither needs nor closes. A nil Mapping has no file: nil; nor has one
// closed before its first File, except CreateAnonymous's.
func (m *Mapping) File() *os.File {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.file == nil && m.fd >= 0 && m.name != "" { // not of a zero Mapping
		// Made on demand: os.NewFile costs system calls that most
		// Mappings never need.
		m.file = os.NewFile(uintptr(m.fd), m.name)
	}
	return m.file
}

// Sealed reports whether the segment is sealed against shrinking: then no
// process can make it smaller, and no access to m's bytes can fault
// because another process truncated it. On Linux that is the memfd seal
// F_SEAL_SHRINK, which every segment of CreateAnonymous has (unless
// memfd_create did not exist) and MapFile and MapFileReadOnly look for; a
// named segment never has it. On macOS, which has no seals, Sealed is
// always false, although no segment can shrink there once its size is set
// (RequireSealed takes every segment there). A nil Mapping is not sealed.
//
// Sealed covers the size, not the pages within it. A process that may
// write the file can still punch a hole into it (fallocate(2) with
// FALLOC_FL_PUNCH_HOLE, or madvise MADV_REMOVE), which the size seals do
// not stop and only F_SEAL_WRITE or F_SEAL_FUTURE_WRITE do. On tmpfs (a
// memfd, /dev/shm) that only zeroes the bytes: the next access to the
// hole gets a new zero page, as an access to a page never touched does,
// and that fault fails only when memory cannot be had (shmem_fault and
// shmem_get_folio_gfp in mm/shmem.c): a SIGBUS where the commit limit
// refuses the page (vm.overcommit_memory=2) or the tmpfs is full (its
// size=; a memfd's has none), the OOM killer where no page is left. On
// hugetlbfs the punch gives the huge page back to the pool, and the next
// access needs one from the pool again, a SIGBUS if the sender has taken
// it meanwhile (hugetlb_no_page in mm/hugetlb.c): so there Sealed also
// wants F_SEAL_WRITE or F_SEAL_FUTURE_WRITE, which stop the punch
// (hugetlbfs_punch_hole in fs/hugetlbfs/inode.c).
func (m *Mapping) Sealed() bool { return m != nil && m.sealed }

// Unlink removes the name of m's segment now, as Unlink does by key: no
// other process can open it any more, and its memory is freed once every
// mapping and descriptor of it is gone. m's bytes stay valid until Close.
// The segment's creator in this process, m or another, handle or key API,
// then removes nothing at Close or Release: not even a later segment of
// the same name. A name already gone is an error wrapping
// fs.ErrNotExist; a Mapping without a key (anonymous, or of a file), an
// error wrapping fs.ErrInvalid, and a closed one fs.ErrClosed. If there is
// an error, it will be of type *fs.PathError naming the key.
func (m *Mapping) Unlink() error {
	if m == nil || !m.named {
		return &fs.PathError{Op: "shm_unlink", Path: "", Err: fs.ErrInvalid}
	}
	m.mu.Lock()
	closed := m.data == nil
	m.mu.Unlock()
	if closed {
		return &fs.PathError{Op: "shm_unlink", Path: m.name, Err: fs.ErrClosed}
	}
	err := shm.UnlinkName(m.name)
	if err == nil || err == unix.ENOENT {
		creators.nameRemoved(m.name) // m, or whichever Mapping made the segment
	}
	if err != nil {
		return &fs.PathError{Op: "shm_unlink", Path: m.name, Err: err}
	}
	return nil
}

// Close unmaps the segment, removes its name if m made it (CreateNamed)
// and has not unlinked it, and closes the file that m owns. The slices
// from Bytes become invalid: any access to them faults. Other processes'
// mappings and descriptors stay valid, and so do this process' other
// Mappings of the same segment; the memory is freed once the last of them
// goes. A name already gone is not an error. A second Close returns an
// error wrapping fs.ErrClosed and does nothing else; Close of a nil
// Mapping (of a failed constructor, say), or of one not made by this
// package, an error wrapping fs.ErrInvalid. If there is an error, it will
// be of type *fs.PathError naming the key or the file.
func (m *Mapping) Close() error {
	if m == nil {
		return &fs.PathError{Op: "close", Path: "", Err: fs.ErrInvalid}
	}
	m.mu.Lock()
	made := m.name != "" || m.file != nil // not a zero Mapping
	m.mu.Unlock()
	if !made {
		return &fs.PathError{Op: "close", Path: "", Err: fs.ErrInvalid}
	}
	return m.close(m.name)
}

// close is Close, with errors naming path.
func (m *Mapping) close(path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data == nil {
		return &fs.PathError{Op: "close", Path: path, Err: fs.ErrClosed}
	}
	var err error
	if merr := shm.Munmap(m.data, m.segSize); merr != nil {
		err = &fs.PathError{Op: "munmap", Path: path, Err: merr}
	}
	if m.creator {
		creators.drop(m)
		if uerr := shm.UnlinkName(m.name); uerr != nil && uerr != unix.ENOENT && err == nil {
			err = &fs.PathError{Op: "shm_unlink", Path: path, Err: uerr}
		}
		m.creator = false
	}
	m.data = nil
	m.dropFile(m.segSize)
	return err
}

// disown makes m no longer the creator of its segment, whose name someone
// in this process removed: Close must not remove a later segment of that
// name. For the key API's creator it also closes the creator's descriptor,
// and the lock on it, as Unlink by key documents; a handle keeps its file,
// and its lock, until Close.
func (m *Mapping) disown() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.creator {
		return
	}
	m.creator = false
	if m.keyAPI {
		m.dropFile(-1)
	}
}

// creators are the Mappings that made a named segment in this process and
// still own its name, by key. Whichever API removes a name, Unlink by key
// or a Mapping's Unlink, tells the name's creator here, so that no Close or
// Release removes a later segment of the same name.
var creators = creatorTable{m: make(map[string]*Mapping)}

type creatorTable struct {
	mu sync.Mutex
	m  map[string]*Mapping
}

func (t *creatorTable) add(m *Mapping) {
	t.mu.Lock()
	t.m[m.name] = m
	t.mu.Unlock()
}

// drop forgets m, which is removing its own name.
func (t *creatorTable) drop(m *Mapping) {
	t.mu.Lock()
	if t.m[m.name] == m {
		delete(t.m, m.name)
	}
	t.mu.Unlock()
}

// nameRemoved tells the creator of name, if it is in this process, that
// the name is gone.
func (t *creatorTable) nameRemoved(name string) {
	t.mu.Lock()
	m := t.m[name]
	delete(t.m, name)
	t.mu.Unlock()
	if m != nil {
		m.disown()
	}
}

// dropFile closes the descriptor that m owns, if any; with the mapping and
// the name gone, that is likely the last reference, which frees size
// bytes (-1: unknown). The caller's file (MapFile) is left alone. m.mu is
// held.
func (m *Mapping) dropFile(size int64) {
	if m.fd < 0 {
		return
	}
	if m.file != nil {
		m.file.Close() // and kept: File returns it, closed, after Close
	} else {
		shm.CloseFile(m.fd, size)
	}
	m.fd = -1
}

// maxCreateTries bounds Create's retries on a key that already exists; with
// 128 random bits in each key a single retry is already unheard of.
const maxCreateTries = 100

// newSegmentPath is the Path of the error of a size that no segment can be
// made with, which names no key: there is none yet.
const newSegmentPath = "(new segment)"

// createSizeError is the error of a size that Create and CreateAnonymous
// cannot make.
func createSizeError(size int) error {
	return &fs.PathError{Op: "create", Path: newSegmentPath, Err: shm.SizeError(size, fmt.Sprintf("want 0 < size <= %d", int64(shm.MaxSize)))}
}

// keyTaken reports whether err, of the try-th attempt to create a segment
// under a fresh key, is that the key is taken (an *fs.PathError wrapping
// EEXIST) and another may be drawn: at most maxCreateTries in all.
func keyTaken(err error, try int) bool {
	pe, ok := err.(*fs.PathError)
	return ok && pe.Err == unix.EEXIST && try < maxCreateTries
}

// attachSizeError wraps ErrInvalidSize for a size that no segment can be
// mapped with.
func attachSizeError(size int) error {
	return shm.SizeError(size, fmt.Sprintf("want 0 <= size <= %d", int64(shm.MaxSize)))
}
