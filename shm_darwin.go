//go:build darwin

package shmmap

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// macOS keeps shm names verbatim, up to PSHMNAMLEN (31) bytes; older kernels
// reject 31, so keys stay at 30 with the slash (shm_open(2): ENAMETOOLONG).
const maxKeyLen = 30

// mapPopulate is the mmap flag of the Populate option: mmap(2) on macOS has
// no MAP_POPULATE, so the option does nothing there.
const mapPopulate = 0

// x/sys/unix does not wrap shm_open and shm_unlink on darwin. They are called
// here the way x/sys/unix calls libSystem, without cgo: a trampoline in
// shm_darwin.s jumps to the libSystem symbol that cgo_import_dynamic binds,
// and syscall.syscall runs it on the system stack as the runtime's other libc
// calls. Not the raw syscall numbers (266, 267): Go's darwin policy is that
// only libSystem is a stable interface, and the raw numbers have changed
// before. shm_open is variadic, and on darwin/arm64 variadic arguments go on
// the stack, not in registers: syscall.syscall copies its third argument onto
// the stack for exactly that (it serves open and fcntl too), so mode reaches
// shm_open on both arm64 and amd64.
//
//go:linkname syscall_syscall syscall.syscall
func syscall_syscall(fn, a1, a2, a3 uintptr) (r1, r2 uintptr, err syscall.Errno)

var (
	libc_shm_open_trampoline_addr   uintptr
	libc_shm_unlink_trampoline_addr uintptr
)

//go:cgo_import_dynamic libc_shm_open shm_open "/usr/lib/libSystem.B.dylib"
//go:cgo_import_dynamic libc_shm_unlink shm_unlink "/usr/lib/libSystem.B.dylib"

// shmOpen opens segment name (canonical form), close-on-exec. shm_open(2)
// takes only O_RDONLY, O_RDWR, O_CREAT, O_EXCL and O_TRUNC, so FD_CLOEXEC is
// set after it, under syscall.ForkLock, which os/exec holds while it forks:
// no child can inherit the fd in between.
func shmOpen(name string, flag int, mode uint32) (fd int, err error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	for {
		r, _, errno := syscall_syscall(libc_shm_open_trampoline_addr, uintptr(unsafe.Pointer(p)), uintptr(flag), uintptr(mode))
		switch errno {
		case 0:
			unix.CloseOnExec(int(r))
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return -1, errno
	}
}

// shmUnlink removes segment name, as shm_unlink(2) does; size is unused
// here (see shm_linux.go).
func shmUnlink(name string, size int) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	if _, _, errno := syscall_syscall(libc_shm_unlink_trampoline_addr, uintptr(unsafe.Pointer(p)), 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// closeFD and munmap are the plain x/sys calls on macOS, and so are fstat
// and mmapFD (xsys.go); see shm_linux.go for why Linux makes some of them
// raw.

func closeFD(fd int) { unix.Close(fd) }

func munmap(b []byte) error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}

// initSegment gives a new segment its size. macOS has no fallocate for shm
// objects and allows ftruncate(2) only once on each (a second one is
// EINVAL), so pages are allocated on first touch. The mode is 0600 as asked
// of shm_open, less the umask's bits: it can only lose owner bits, never
// widen. It returns the failing operation's name with the error.
func initSegment(fd, size int) (op string, err error) {
	return "ftruncate", ignoringEINTR(func() error { return unix.Ftruncate(fd, int64(size)) })
}

// holdsName: macOS has no Sweep (it cannot list shm names), so Create
// keeps no fd and no lock; the fd is closed once the mapping exists.
const holdsName = false

// openNew makes segment name for Create: shm_open(2) with O_CREAT|O_EXCL,
// mode 0600. xnu has no unnamed shm object, so the segment is named at once
// (named is true), and lockCreator does nothing.
func openNew(name string) (fd int, named bool, err error) {
	fd, err = shmOpen(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	return fd, true, err
}

func lockCreator(fd int) error { return nil }

// linkName is never called on macOS, where openNew always names the
// segment.
func linkName(fd int, name string) error { return unix.ENOTSUP }

// isSegment is true of every fd that shm_open(2) returns: xnu keeps shm
// names in a table of its own (bsd/kern/posix_shm.c), not in a filesystem,
// so nothing else can stand under a name; and pshm_stat fills st_mode with
// the object's permission bits alone, so there is no file type to check.
func isSegment(st *unix.Stat_t) bool { return true }

// notSegment is always "": nothing but segments has a shm name on macOS.
func notSegment(name string, err error) string { return "" }

// explainENOMEM returns ENOMEM from mmap with what ran out.
func explainENOMEM(size int) error {
	return fmt.Errorf("%w: no room for %d bytes in this process' address space", unix.ENOMEM, size)
}

// listNames is unsupported: macOS has no interface that lists shm names
// (shm_open(2) objects live in the kernel, not in a filesystem), so List
// and Sweep never reach statSegment, creatorState or reap.
func listNames() ([]string, error) {
	return nil, fmt.Errorf("shmmap: macOS cannot list shared memory segments: %w", errors.ErrUnsupported)
}

func statSegment(name string) (Segment, bool) { return Segment{}, false }

func creatorState(name string) Creator { return CreatorUnknown }

func reap(name string) (bool, error) { return false, errors.ErrUnsupported }
