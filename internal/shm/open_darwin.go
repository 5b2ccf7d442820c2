//go:build darwin

package shm

import (
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Dir is empty: xnu keeps shm names in a table of their own, in no
// directory.
const Dir = ""

// MapPopulate is the mmap flag of the Populate option: mmap(2) on macOS has
// no MAP_POPULATE, so the option does nothing there.
const MapPopulate = 0

// HoldsName: macOS has no Sweep (it cannot list shm names), so Create
// keeps no fd and no lock; the fd is closed once the mapping exists.
const HoldsName = false

// x/sys/unix does not wrap shm_open and shm_unlink on darwin. They are called
// here the way x/sys/unix calls libSystem, without cgo: a trampoline in
// shm_darwin.s jumps to the libSystem symbol that cgo_import_dynamic binds,
// and syscall.syscall runs it on the system stack as the runtime's other libc
// calls. Not the raw syscall numbers (266, 267): Go's darwin policy is that
// only libSystem is a stable interface, and the raw numbers have changed
// before.
//
//go:linkname syscall_syscall syscall.syscall
func syscall_syscall(fn, a1, a2, a3 uintptr) (r1, r2 uintptr, err syscall.Errno)

var (
	libc_shm_open_trampoline_addr   uintptr
	libc_shm_unlink_trampoline_addr uintptr
)

//go:cgo_import_dynamic libc_shm_open shm_open "/usr/lib/libSystem.B.dylib"
//go:cgo_import_dynamic libc_shm_unlink shm_unlink "/usr/lib/libSystem.B.dylib"

// OpenName opens segment name (canonical form). The fd is close-on-exec from
// the kernel itself: shm_open in bsd/kern/posix_shm.c sets FP_CLOEXEC in its
// fileproc's fp_flags while the slot is still reserved (fdt_fork in
// bsd/kern/kern_descrip.c copies no UF_RESERVED slot), and only then does
// procfdtbl_releasefd, under proc_fdlock, make it visible; so no fork can
// see it without (no fcntl, and no syscall.ForkLock, needed).
//
// shm_open is variadic, and on darwin/arm64 a variadic argument goes on the
// stack, not in a register. syscall.syscall copies its third argument onto
// the stack for exactly that (open and fcntl rely on it too), so mode
// reaches shm_open because the call passes exactly these three arguments;
// openNew checks the mode of every segment it makes, should that change.
func OpenName(name string, flag int, mode uint32) (fd int, err error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	err = ignoringEINTR(func() error {
		r, _, errno := syscall_syscall(libc_shm_open_trampoline_addr, uintptr(unsafe.Pointer(p)), uintptr(flag), uintptr(mode))
		if errno != 0 {
			return errno
		}
		fd = int(r)
		return nil
	})
	return fd, err
}

// UnlinkName removes segment name, as shm_unlink(2) does.
func UnlinkName(name string) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	return ignoringEINTR(func() error {
		if _, _, errno := syscall_syscall(libc_shm_unlink_trampoline_addr, uintptr(unsafe.Pointer(p)), 0, 0); errno != 0 {
			return errno
		}
		return nil
	})
}

// openNew makes segment name for Create: shm_open(2) with O_CREAT|O_EXCL and
// mode 0600. xnu applies no umask to it (shm_open: cmode &= ALLPERMS, and
// nothing else), and has no unnamed shm object, so the segment is named at
// once (named is true) and lockCreator does nothing. The mode is checked
// with fstat (pshm_stat reports pshm_mode), so that a mode argument lost
// on its way to the variadic shm_open is an error, not a segment others
// may open.
func openNew(name string) (fd int, named bool, err error) {
	fd, err = OpenName(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return -1, true, err
	}
	var st unix.Stat_t
	err = Fstat(fd, &st)
	if err == nil && st.Mode&0o777 != 0o600 {
		err = fmt.Errorf("shmmap: shm_open made mode %#o, not 0600", st.Mode&0o777)
	}
	if err != nil {
		UnlinkName(name)
		CloseFD(fd)
		return -1, true, err
	}
	return fd, true, nil
}

// linkName is never called on macOS, where openNew always names the
// segment.
func linkName(fd int, name string) error { return unix.ENOTSUP }

// isSegment is true of every fd that shm_open(2) returns: xnu keeps shm
// names in a table of its own, not in a filesystem, so nothing else can
// stand under a name; and pshm_stat fills st_mode with the object's
// permission bits alone, so there is no file type to check.
func isSegment(st *unix.Stat_t) bool { return true }

// notSegment is never true: nothing but segments has a shm name on macOS.
func notSegment(name string, err error) (mode uint32, ok bool) { return 0, false }

// InitSegment gives a new segment its size. macOS has no fallocate for shm
// objects and allows ftruncate(2) only once on each (pshm_truncate: a second
// one is EINVAL), rounding the size up to whole pages, so pages are
// allocated on first touch. It returns the failing operation's name with
// the error.
func InitSegment(fd, size int) (op string, err error) {
	return "ftruncate", ignoringEINTR(func() error { return unix.Ftruncate(fd, int64(size)) })
}

// explainENOMEM returns ENOMEM from mmap with what ran out.
func explainENOMEM(size int) error {
	return fmt.Errorf("%w: no room for %d bytes in this process' address space", unix.ENOMEM, size)
}

// ListNames is unsupported: macOS has no interface that lists shm names,
// so List and Sweep never reach StatName, CreatorHolds or reap.
func ListNames() ([]string, error) {
	return nil, fmt.Errorf("shmmap: macOS cannot list shared memory segments: %w", errors.ErrUnsupported)
}

func StatName(name string) (size int64, mode uint32, uid int, changed time.Time, ok bool) {
	return 0, 0, 0, time.Time{}, false
}
