//go:build linux

package shm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// System calls, and which are raw. unix.Syscall tells the scheduler that the
// thread is leaving (entersyscall/exitsyscall), so that a call that blocks
// does not hold up the goroutines behind it; on this package's hot path that
// is a sizeable part of each call (BENCHMARKS.md has the figures).
// unix.RawSyscall skips it. A call here is raw exactly when the kernel's
// work is short and bounded, whatever the size and whatever another user put
// in /dev/shm: fchmod, fstat, a lock taken or tested without waiting, close
// of an fd whose file a mapping or a name still holds, mmap without
// MAP_POPULATE, memfd_create, fcntl's F_ADD_SEALS of seals that wait for
// nothing (not F_SEAL_WRITE, which waits for pinned pages) and F_GET_SEALS,
// and munmap, fallocate or the last close of at most rawLimit bytes. Past
// that, fallocate and MAP_POPULATE zero or map every page, and munmap and
// the last close free them: a multi-GiB call must not keep its P, and with
// it a garbage collection's stop, waiting. A file that a caller or a peer
// hands over (MapFileReadOnly, SendSegment, ReceiveSegment) may be anywhere,
// on NFS or FUSE, where even fstat waits on a server: until it is known to
// be a segment, it is asked about with ordinary calls only.
//
// Calls that take a path (openat, linkat, unlinkat) are ordinary: they take
// the lock of the shm directory, which other users' activity can keep busy,
// and an open reaches the driver of a device node that root put under a
// key, which may wait. Measured, their raw form saved nothing that noise
// did not hide (BENCHMARKS.md).
const rawLimit = 1 << 20

// bounded reports whether a call's work over n bytes (-1: unknown) is
// bounded enough for a raw call.
func bounded(n int64) bool { return 0 <= n && n <= rawLimit }

// syscall6 makes system call trap, raw if raw (see above).
//
// It is nosplit, as are unix.RawSyscall6 and unix.Syscall6: an argument
// that is the address of something on the caller's stack (a cpath, a
// Stat_t) is converted to uintptr in the call's argument list, and no
// stack check may stand between that and the system call, for the stack
// could be moved there and the address left pointing at its old copy.
// (During a system call the runtime never moves a goroutine's stack.) So
// an address reaches this package's wrappers as unsafe.Pointer, which the
// stack copier updates, and becomes a uintptr only here.
//
//go:nosplit
func syscall6(raw bool, trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, error) {
	var r uintptr
	var errno unix.Errno
	if raw {
		r, _, errno = unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
	} else {
		r, _, errno = unix.Syscall6(trap, a1, a2, a3, a4, a5, a6)
	}
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// atFDCWD is AT_FDCWD, a variable so that uintptr(atFDCWD) converts the
// negative int at run time.
var atFDCWD = unix.AT_FDCWD

// cpath is a NUL-terminated path on the caller's stack, so that no call
// allocates: room for /dev/shm and a name of NAME_MAX (255) bytes after its
// slash, or for /proc/self/fd/N.
type cpath [320]byte

// ptr fills p with the concatenation of a and b and a NUL and returns its
// address, as an unsafe.Pointer (see syscall6). A path that does not fit
// is made empty (ENOENT), never cut short: a shorter name could be another
// file's.
func (p *cpath) ptr(a, b string) unsafe.Pointer {
	if len(a)+len(b) < len(p) {
		n := copy(p[:], a)
		n += copy(p[n:], b)
		p[n] = 0
	} else {
		p[0] = 0
	}
	return unsafe.Pointer(&p[0])
}

func openat(path unsafe.Pointer, flag int, mode uint32) (int, error) {
	fd, err := syscall6(false, unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(path), uintptr(flag), uintptr(mode), 0, 0)
	return int(fd), err
}

// unlinkat removes path.
func unlinkat(path unsafe.Pointer) error {
	_, err := syscall6(false, unix.SYS_UNLINKAT, uintptr(atFDCWD), uintptr(path), 0, 0, 0, 0)
	return err
}

// linkat links oldpath (relative to olddirfd) as newpath.
func linkat(olddirfd int, oldpath, newpath unsafe.Pointer, flags int) error {
	_, err := syscall6(false, unix.SYS_LINKAT, uintptr(olddirfd), uintptr(oldpath), uintptr(atFDCWD), uintptr(newpath), uintptr(flags), 0)
	return err
}

func fchmod(fd int, mode uint32) error {
	_, err := syscall6(true, unix.SYS_FCHMOD, uintptr(fd), uintptr(mode), 0, 0, 0, 0)
	return err
}

// Fallocate reserves n bytes of fd at off (mode 0). It is a variable so
// that tests can make it fail. Each argument is one register only on 64-bit
// systems; elsewhere x/sys splits the offsets.
var Fallocate = func(fd int, off, n int64) error {
	if unsafe.Sizeof(uintptr(0)) == 8 {
		_, err := syscall6(bounded(n), unix.SYS_FALLOCATE, uintptr(fd), 0, uintptr(off), uintptr(n), 0, 0)
		return err
	}
	return unix.Fallocate(fd, 0, off, n)
}

// CloseFD closes fd, whose file a mapping or a name still holds, or which
// has no pages: the close frees nothing.
func CloseFD(fd int) { CloseFile(fd, 0) }

// CloseFile closes fd, whose file of size bytes (-1: unknown) may go with
// it: the last close of a file that has no name frees its pages.
func CloseFile(fd int, size int64) {
	syscall6(bounded(size), unix.SYS_CLOSE, uintptr(fd), 0, 0, 0, 0, 0)
}

// memfdName is memfd_create's name, NUL-terminated, in static memory that
// never moves: /proc shows the file as "/memfd:shmmap (deleted)".
const memfdName = "shmmap\x00"

// MemfdCreate makes an anonymous file in memory (memfd_create(2)). It is a
// variable so that tests can make it fail.
var MemfdCreate = func(flags int) (int, error) {
	fd, err := syscall6(true, unix.SYS_MEMFD_CREATE, uintptr(unsafe.Pointer(unsafe.StringData(memfdName))), uintptr(flags), 0, 0, 0, 0)
	return int(fd), err
}

// fcntlInt makes fcntl(2) command cmd with an int argument, as F_ADD_SEALS
// and F_GET_SEALS take: the plain fcntl call on every architecture
// (fcntl64 differs only for locks).
func fcntlInt(fd, cmd, arg int) (int, error) {
	r, err := syscall6(true, unix.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(arg), 0, 0, 0)
	return int(r), err
}

// Munmap unmaps b, a mapping of a segment of segSize bytes (-1: unknown).
// It may drop the last reference to the segment, which frees all of it, not
// only what b maps: so it is raw only when the segment is small too.
func Munmap(b []byte, segSize int64) error {
	_, err := syscall6(bounded(int64(len(b))) && bounded(segSize), unix.SYS_MUNMAP, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0, 0, 0, 0)
	return err
}

// scmPIDFD is the control message that carries the sender's pidfd, which
// the kernel installs in the receiver when its socket has SO_PASSPIDFD
// (Linux 6.5): RightsFDs closes it.
const scmPIDFD = unix.SCM_PIDFD
