// Package shmmap shares memory between processes on one machine through
// POSIX shared memory segments (shm_open, ftruncate or fallocate, mmap),
// handed out as plain byte slices that every process reads and writes in
// place, without copying.
//
// A segment's life:
//
//	key, data, err := shmmap.Create(size) // the creator: a new segment
//	// pass key to another process: argv, environment, a pipe
//	data, err := shmmap.ReadWrite(key, 0) // the other: all of the segment
//	err = shmmap.Unlink(key)              // optional, once all attached
//	err = shmmap.Release(key)             // in each process, when done
//
// Create makes a segment and maps it; Read and ReadWrite map an existing one
// by key, whichever program made it (Python's multiprocessing.shared_memory,
// the node package shmmap, C's shm_open); Release unmaps what this process
// mapped and, in the creating process, removes the segment's name. Unlink
// removes the name at once while mappings stay valid, so that a segment
// vanishes even if its creator crashes later. Sweep removes what crashed
// creators left behind. Segments can also go without a key, by file
// descriptor: see Anonymous segments below.
//
// # Slices and their lifetime
//
// The slices returned point outside the Go heap, at memory that other
// processes may change at any moment: synchronise through other means (a
// pipe, a lock, sync/atomic on aligned words). A slice is valid until Release
// of its key in this process, which unmaps every slice of that key in the
// process at once. Any access after that, any write to a slice from Read,
// and any access past the end of a segment that another process has shrunk
// (ftruncate) is a fault: SIGSEGV, or SIGBUS past the end, and on macOS for
// the write too (xnu signals a protection failure so). A fault kills the
// process, and recover cannot take it, unless the goroutine that faults has
// called debug.SetPanicOnFault(true): then it is a panic with a
// runtime.Error, which recover takes. Code that must survive a peer that
// shrinks a segment under it reads it so:
//
//	func sum(data []byte) (sum int, err error) {
//		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
//		defer func() {
//			if r := recover(); r != nil {
//				err = fmt.Errorf("the segment shrank under us: %v", r)
//			}
//		}()
//		for _, b := range data {
//			sum += int(b)
//		}
//		return sum, nil
//	}
//
// SetPanicOnFault covers only the goroutine that calls it, and the
// function that faults stops there, as for any panic. A segment handed
// over by file is better taken with RequireSealed, which refuses one that
// could shrink. append past a slice's capacity silently copies it to the Go
// heap, where other processes no longer see it.
//
// # Other runtimes
//
// Python, Node and C programs map the same segments by key. View and Bytes
// see a segment's bytes as numbers in the machine's byte order, which is
// what NumPy arrays and JavaScript typed arrays assume. Python's
// multiprocessing.shared_memory.SharedMemory takes the key without its
// leading slash; before Python 3.13 it also registers every segment it
// opens with its resource tracker, which removes the segment when the Python
// process exits, under its Go owner. Open with track=False (3.13+) or call
// resource_tracker.unregister(shm._name, "shared_memory") after opening;
// README.md has both sides in full. The node package shmmap maps a key with
// read_write(key, size).
//
// # Processes, containers and macOS
//
// Across fork and exec: fds are opened close-on-exec, and exec drops every
// mapping, so a child process started with os/exec inherits nothing; it
// attaches by key, or maps the file of an anonymous segment that it was
// given in ExtraFiles. Read and ReadWrite close their fd once the mapping
// exists; on Linux, Create keeps one fd per segment until Release or Unlink
// (see below).
//
// Containers: a segment takes memory from the shm filesystem (/dev/shm on
// Linux), which containers often keep small (Docker's default is 64 MiB). On
// Linux, Create reserves the whole segment up front, so a full /dev/shm makes
// Create fail with ENOSPC (errors.Is(err, syscall.ENOSPC)) instead of killing
// the process with SIGBUS at the first write to a page that cannot be had.
// Another process can still shrink a named segment with ftruncate under a
// mapping; access past its new end then faults, which nothing can prevent
// for a name that anyone may open. Anonymous segments have neither
// problem on Linux: /dev/shm's size does not count them, and they are
// sealed against shrinking.
//
// Who is alive: on Linux, Create's process holds a lock (an open file
// description lock, through the fd it keeps) on each segment it made, until
// Release or Unlink; the kernel drops it when the process exits or is
// killed. List and Sweep ask the kernel about that lock, not about a pid, so
// they tell a live creator from a dead one whatever pid, time or user
// namespace either side runs in, as long as both see the same shm
// filesystem (docker --ipc=host, a /dev/shm volume shared between
// containers, the containers of one pod). The segment gets its name only
// once it is locked (O_TMPFILE, then linkat), so a concurrent Sweep cannot
// take a segment being created for a dead one. The cost is one fd per
// created segment, which Go's default limit makes ample: since Go 1.19 the
// runtime raises the soft RLIMIT_NOFILE to the hard limit at start-up. This
// needs Linux 3.15 or later (OFD locks).
//
// Other users: anyone may put a file in /dev/shm under any name. A symlink
// is never followed; a FIFO, socket or directory under a key is
// ErrNotSegment from Read and ReadWrite, at once (opens never block); a key
// of another user's 0600 segment is fs.ErrPermission. Sweep removes only
// segments that the sweeping user owns, also inside a user namespace that
// shows every unmapped owner as the same overflow uid.
//
// 32-bit systems: a process can map at most math.MaxInt bytes at once, so
// size 0 of a larger segment is ErrInvalidSize, and a prefix of it can be
// mapped with ReadWrite(key, n) or Read(key, n).
//
// On macOS, names are at most 31 bytes with the slash (Create's have 30;
// another program's longer name cannot be opened there), a segment's size
// can be set only once, and fstat reports it rounded up to the page size
// of the process that set it (xnu's pshm_truncate: 16 KiB for an arm64
// process on Apple silicon, 4 KiB for an x86_64 one, Rosetta's included),
// so Read(key, 0) maps whole pages. The kernel keeps names verbatim, so
// "x" and "/x" are two segments there: a key always means its slashed
// form, as Python's SharedMemory does, and a segment that a C program
// named "x" cannot be reached. No umask applies (the mode is exactly
// 0600), Populate has no effect, and List and Sweep are unsupported.
//
// # Anonymous segments
//
// CreateAnonymous makes a segment with no key and no name that anything
// could be left under. Other processes get its file, m.File(), through
// os/exec's ExtraFiles (as fd 3 and on) or over a Unix socket with
// SendSegment and ReceiveSegment, which speak what Python's socket.send_fds and
// recv_fds speak, and map it with MapFileReadOnly or MapFile. Its memory is
// freed with the last descriptor and mapping of it, in whatever process
// and however that process ends: there is nothing for Sweep to do. On
// Linux it is a memfd, which /dev/shm's size does not limit, sealed so
// that no process it is handed to can change its size (Sealed reports
// that); on macOS it is a segment whose random name is removed the moment
// it is made, which cannot be sealed (nor shrunk: xnu sets a size once).
// A process that receives a file from one it does not trust maps it with
// RequireSealed: a file that the sender could still shrink under the
// mapping, killing the receiver at its next access, is then refused.
//
// An anonymous segment, or any segment handed over as a file, comes as a
// handle, a *Mapping, that its owner closes, as an *os.File: its bytes are
// valid until Close, with the same rules as a key's slices until Release.
// Mappings are not keys: Release and ReleaseAll do not touch them.
// README.md has a table of when to choose which.
//
// # Errors
//
// Every error of Create, Read, ReadWrite, Release and Unlink is an
// *fs.PathError naming the operation and the key as the caller gave it
// (Create's size errors name no key); ReleaseAll and Sweep join one such
// error for each key that failed. All work with errors.Is: fs.ErrNotExist
// for a missing segment, fs.ErrPermission for one the caller may not open,
// syscall.ENOSPC for a full shm filesystem, syscall.ENOMEM when the address
// space or the map count (vm.max_map_count) runs out, and this package's
// ErrInvalidKey, ErrInvalidSize, ErrNotMapped, ErrNotSegment and, with
// RequireSealed, ErrNotSealed. View takes no key: its errors wrap
// ErrInvalidSize or ErrAlignment and are not *fs.PathError. Keys are
// checked before any system call, so that no key reaches a file outside
// the shm namespace.
//
// The errors of CreateAnonymous, MapFileReadOnly, MapFile and Mapping.Close
// are *fs.PathError too, naming the file as its Name() gives it
// ("memfd:shmmap" for CreateAnonymous's on Linux): ErrNotSegment for a file
// that is not shared memory (a pipe, a socket, a directory, a regular file
// on disk), fs.ErrInvalid for a nil *os.File and fs.ErrClosed for a closed
// one, fs.ErrPermission for one without the access needed (an O_PATH
// descriptor has none), and ErrNotSealed for one that RequireSealed
// refuses. SendSegment and ReceiveSegment return such an error for a file, and
// an *net.OpError, as net's own methods do, for the socket and for a
// message that does not carry exactly one descriptor (ErrBadMessage);
// ReceiveSegment returns io.EOF once the other end has closed.
package shmmap

import (
	"errors"
	"io/fs"
	"sync"
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
// no name, fd or mapping. If there is an error, it will be of type
// *fs.PathError.
func Create(size int, opts ...Option) (key string, data []byte, err error) {
	m, err := CreateNamed(size, opts...)
	if err != nil {
		return "", nil, err
	}
	if !holdsName && m.fd >= 0 {
		closeFD(m.fd) // no lock to hold: the key API keeps no fd here
		m.fd = -1
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
// data is valid until Release(key). If there is an error, it will be of type
// *fs.PathError.
func Read(key string, size int, opts ...Option) ([]byte, error) {
	return attach(key, size, false, parseOptions(opts))
}

// ReadWrite maps the existing segment key read-write and returns its first
// size bytes; size 0 maps the whole segment. Keys, sizes and errors are as
// for Read. data is valid until Release(key). If there is an error, it will
// be of type *fs.PathError.
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
// If there is an error, it will be of type *fs.PathError.
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
// this process' included, stay valid until Release. In the creating
// process it also closes the fd that Create kept. A missing name is an
// error wrapping fs.ErrNotExist. If there is an error, it will be of type
// *fs.PathError.
func Unlink(key string) error {
	name, err := normalize(key)
	if err != nil {
		return &fs.PathError{Op: "shm_unlink", Path: key, Err: err}
	}
	err = shmUnlink(name, -1)
	// A creator's Release must not remove a later segment of the same name,
	// and the creator no longer owns one to hold.
	table.forget(name)
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

// forget records that name's segment, whose name is gone, is no longer the
// key API's to unlink: its creator's Mapping, if the table has one, is
// disowned, which drops the creator's lock.
func (t *holdingTable) forget(name string) {
	t.mu.Lock()
	s, ok := t.segs[name]
	t.mu.Unlock()
	if ok {
		s.first.disown() // the creator's, if any, is the first
	}
}
