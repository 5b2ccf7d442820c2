//go:build darwin

package wake

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// macOS has no futex system call that Go may make: only libSystem is a
// stable interface there. This file calls libSystem without cgo, as the
// shmmap package calls shm_open: a trampoline in wake_darwin.s jumps to the
// symbol that cgo_import_dynamic binds, and syscall.syscall runs it on the
// system stack, with entersyscall, as the runtime's other libc calls.
//
// Two families do the work:
//
//   - os_sync_wait_on_address, os_sync_wait_on_address_with_timeout,
//     os_sync_wake_by_address_any and os_sync_wake_by_address_all, Apple's
//     public API since macOS 14.4 (libplatform's
//     include/os/os_sync_wait_on_address.h), used with
//     OS_SYNC_WAIT_ON_ADDRESS_SHARED and OS_SYNC_WAKE_BY_ADDRESS_SHARED: "This
//     flag should be used when synchronizing among multiple processes by
//     placing the @addr ... in a shared memory region".
//   - __ulock_wait2 and __ulock_wake with UL_COMPARE_AND_WAIT_SHARED, the
//     calls beneath, in libSystem since macOS 11 (xnu bsd/sys/ulock.h;
//     libc++'s std::atomic wait uses __ulock_wait and __ulock_wake). Every
//     Go 1.25+ program needs macOS 12, so they are always there.
//
// os_sync_* may be missing at run time, and a symbol that cgo_import_dynamic
// binds must exist or dyld refuses to start the program: the directive has
// no weak form. (The Go linker marks a bind weak only for a weak reference
// in a host object file, loadmacho's N_WEAK_REF; since golang/go#76023 the
// internal linker does so too.) So they are looked up once, with
// dlsym(RTLD_DEFAULT, name), as Rust's std looks up the libSystem functions
// an older macOS lacks (its weak! macro, library/std/src/sys/pal/unix/weak/
// dlsym.rs) and Go's race runtime its own: dlsym is in libSystem on every
// macOS. The __ulock_* calls are bound directly.
//
// With SHARED, xnu finds a word's waiters by the VM object and offset
// behind it (sys_ulock.c: uaddr_findobj, key type ULK_XPROC), so processes
// that map one segment at different addresses meet. All processes on one
// machine see the same libSystem and so use the same family.

//go:linkname syscall_syscall syscall.syscall
func syscall_syscall(fn, a1, a2, a3 uintptr) (r1, r2 uintptr, err syscall.Errno)

//go:linkname syscall_syscall6 syscall.syscall6
func syscall_syscall6(fn, a1, a2, a3, a4, a5, a6 uintptr) (r1, r2 uintptr, err syscall.Errno)

var (
	libc_dlsym_trampoline_addr         uintptr
	libc___ulock_wait2_trampoline_addr uintptr
	libc___ulock_wake_trampoline_addr  uintptr
)

//go:cgo_import_dynamic libc_dlsym dlsym "/usr/lib/libSystem.B.dylib"
//go:cgo_import_dynamic libc___ulock_wait2 __ulock_wait2 "/usr/lib/libSystem.B.dylib"
//go:cgo_import_dynamic libc___ulock_wake __ulock_wake "/usr/lib/libSystem.B.dylib"

// Constants from the headers named above.
const (
	rtldDefault = ^uintptr(1) // RTLD_DEFAULT, ((void *)-2) in <dlfcn.h>

	osSyncShared            = 1  // OS_SYNC_WAIT_ON_ADDRESS_SHARED, OS_SYNC_WAKE_BY_ADDRESS_SHARED
	osClockMachAbsoluteTime = 32 // OS_CLOCK_MACH_ABSOLUTE_TIME, <os/clock.h>

	ulCompareAndWaitShared = 3     // UL_COMPARE_AND_WAIT_SHARED: a 32-bit word, shared
	ulfWakeAll             = 0x100 // ULF_WAKE_ALL
)

// osSync holds the os_sync_* functions, or zeros where libSystem lacks any
// of them (before macOS 14.4).
type osSync struct{ wait, waitTimeout, wakeAny, wakeAll uintptr }

var loadOSSync = sync.OnceValue(func() osSync {
	var s osSync
	for _, f := range []struct {
		p    *uintptr
		name string
	}{
		{&s.wait, "os_sync_wait_on_address"},
		{&s.waitTimeout, "os_sync_wait_on_address_with_timeout"},
		{&s.wakeAny, "os_sync_wake_by_address_any"},
		{&s.wakeAll, "os_sync_wake_by_address_all"},
	} {
		name, err := unix.BytePtrFromString(f.name)
		if err != nil {
			return osSync{}
		}
		// dlsym returns a pointer, NULL if the symbol is missing; errno
		// means nothing here.
		*f.p, _, _ = syscall_syscall(libc_dlsym_trampoline_addr, rtldDefault, uintptr(unsafe.Pointer(name)), 0)
		if *f.p == 0 {
			return osSync{}
		}
	}
	return s
})

// maxFaults bounds the retries of a wait that fails with EFAULT or ENOMEM.
// xnu reads the word with page faults disabled, under a spinlock
// (sys_ulock.c, sys_ulock_wait2: "holding the ull spinlock across copyin
// forces any vm_fault we encounter to fail"), so a page that is not resident
// is EFAULT, and the header says to read the word and try again.
const maxFaults = 100

// holdP: on macOS every sleep lets its P go (see WaitPeer); a sleep that
// kept it would need a raw call into libSystem.
const holdP = false

// sleepTick: with holdP false, no sleep is held to its length.
func sleepTick() time.Duration { return 0 }

func waitHeld(addr *uint32, old uint32, tag uint32, timeout time.Duration) (result, error) {
	return wait(addr, old, tag, timeout)
}

// wait sleeps while *addr == old for at most timeout (< 0: no limit); tag is
// for Linux. Both families return the number of waiters left, >= 0, when
// woken or when the word did not hold old (these cannot be told apart, so
// both are awoken, which may have taken a Wake), and -1 with errno:
// ETIMEDOUT, EINTR (a signal, "spurious wake up"), EFAULT or ENOMEM
// ("transient", retried).
func wait(addr *uint32, old uint32, tag uint32, timeout time.Duration) (result, error) {
	s := loadOSSync()
	ns := uintptr(max(timeout, 1)) // a timeout of 0 is EINVAL for os_sync, forever for __ulock_wait2
	for faults := 0; ; faults++ {
		var errno syscall.Errno
		name := "os_sync_wait_on_address"
		switch {
		case s.wait != 0 && timeout < 0:
			_, _, errno = syscall_syscall6(s.wait, uintptr(unsafe.Pointer(addr)), uintptr(old), 4, osSyncShared, 0, 0)
		case s.wait != 0:
			name += "_with_timeout"
			_, _, errno = syscall_syscall6(s.waitTimeout, uintptr(unsafe.Pointer(addr)), uintptr(old), 4, osSyncShared, osClockMachAbsoluteTime, ns)
		default:
			name = "__ulock_wait2"
			if timeout < 0 {
				ns = 0
			}
			_, _, errno = syscall_syscall6(libc___ulock_wait2_trampoline_addr, ulCompareAndWaitShared, uintptr(unsafe.Pointer(addr)), uintptr(old), ns, 0, 0)
		}
		switch errno {
		case 0:
			return awoken, nil
		case unix.ETIMEDOUT:
			return timedOut, nil
		case unix.EINTR:
			return again, nil
		case unix.EFAULT, unix.ENOMEM:
			if faults < maxFaults {
				if atomic.LoadUint32(addr) != old { // and fault the page in
					return changed, nil
				}
				continue
			}
		}
		return 0, os.NewSyscallError(name, errno)
	}
}

// wake wakes up to n waiters: one call per waiter, each of which says only
// whether it found anyone (ENOENT: no one), or one call for all.
func wake(addr *uint32, n int) (int, error) {
	all := n == maxWake
	woken := 0
	for woken < n {
		ok, err := wakeOnce(addr, all)
		if err != nil || !ok {
			return woken, err
		}
		woken++
		if all {
			break
		}
	}
	return woken, nil
}

// wakeOnce wakes one waiter, or all, and reports whether there was any.
// __ulock_wake can be interrupted (libpthread retries it on EINTR).
func wakeOnce(addr *uint32, all bool) (bool, error) {
	s := loadOSSync()
	for {
		var errno syscall.Errno
		name := "os_sync_wake_by_address_any"
		switch {
		case s.wakeAny != 0 && all:
			name = "os_sync_wake_by_address_all"
			_, _, errno = syscall_syscall(s.wakeAll, uintptr(unsafe.Pointer(addr)), 4, osSyncShared)
		case s.wakeAny != 0:
			_, _, errno = syscall_syscall(s.wakeAny, uintptr(unsafe.Pointer(addr)), 4, osSyncShared)
		default:
			name = "__ulock_wake"
			op := uintptr(ulCompareAndWaitShared)
			if all {
				op |= ulfWakeAll
			}
			_, _, errno = syscall_syscall(libc___ulock_wake_trampoline_addr, op, uintptr(unsafe.Pointer(addr)), 0)
		}
		switch errno {
		case 0:
			return true, nil
		case unix.ENOENT:
			return false, nil
		case unix.EINTR:
			continue
		}
		return false, os.NewSyscallError(name, errno)
	}
}

// wakeTag wakes every waiter on addr: xnu has no bitsets.
func wakeTag(addr *uint32, tag uint32) { wakeOnce(addr, true) }
