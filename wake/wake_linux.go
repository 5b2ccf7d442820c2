//go:build linux

package wake

import (
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// futex(2) operations, from include/uapi/linux/futex.h. None has
// FUTEX_PRIVATE_FLAG (128): a private futex is keyed by this process' mm and
// the address, so a waker in another process would never find the waiter.
// Without it, get_futex_key (kernel/futex/core.c) keys a word of a shared
// mapping by the file's inode and the word's offset in it, which every
// process mapping the segment shares, at whatever address.
const (
	futexWake       = 1  // FUTEX_WAKE: wake up to val waiters, any bitset
	futexWaitBitset = 9  // FUTEX_WAIT_BITSET: sleep under val3's bits
	futexWakeBitset = 10 // FUTEX_WAKE_BITSET: wake those sharing a bit of val3
)

// wait sleeps with FUTEX_WAIT_BITSET while *addr == old, under the bitset
// tag, for at most timeout (< 0: no limit).
//
// The timeout is absolute on CLOCK_MONOTONIC, the bitset operation's
// default clock: FUTEX_WAIT_BITSET without FUTEX_CLOCK_REALTIME. Not
// CLOCK_REALTIME: Go's deadlines are monotonic (time.Until, context timers),
// and a wall clock that steps would move the sleep's end but not the
// context's. CLOCK_MONOTONIC has an offset per time namespace, and the
// kernel reads an absolute futex timeout in the caller's namespace
// (futex_init_timeout in kernel/futex/syscalls.c converts it with
// timens_ktime_to_host: commit c2f7d08cccf4 of 2020, sent to the stable
// kernels); the time is read here, by the waiting thread, and never crosses
// to another process, so namespaces cannot mix. Its values are the time
// since boot, so they fit the 32-bit timespec of SYS_FUTEX on 386 and arm.
//
// The time is read without a system call (see monotonic).
//
// The call is unix.Syscall6, not raw: it blocks, and the runtime must hand
// this thread's P to other goroutines meanwhile.
func wait(addr *uint32, old uint32, tag uint32, timeout time.Duration) (result, error) {
	return futexWait(false, addr, old, tag, timeout)
}

// waitHeld is wait for at most timeout (>= 0, always given) in a raw
// system call, which keeps this thread's P for the whole sleep (see
// heldSleep).
func waitHeld(addr *uint32, old uint32, tag uint32, timeout time.Duration) (result, error) {
	return futexWait(true, addr, old, tag, timeout)
}

// holdP: on Linux a short sleep may keep its P (see WaitPeer).
const holdP = true

// sleepTick returns the period of the kernel's tick, the resolution of
// CLOCK_MONOTONIC_COARSE (a jiffy: 4 ms with HZ=250), read once; 0 if the
// kernel does not tell.
var sleepTick = sync.OnceValue(func() time.Duration {
	var ts unix.Timespec
	if unix.ClockGetres(unix.CLOCK_MONOTONIC_COARSE, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
})

// futexWait sleeps as wait does, in a raw system call if raw. The calls
// are direct, so that the compiler keeps &ts valid through each (the rule
// of unsafe.Pointer for a conversion in a system call's argument list).
func futexWait(raw bool, addr *uint32, old uint32, tag uint32, timeout time.Duration) (result, error) {
	var errno unix.Errno
	if timeout < 0 {
		_, _, errno = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitBitset, uintptr(old), 0, 0, uintptr(tag))
	} else {
		now, err := monotonic()
		if err != nil {
			return 0, err
		}
		ts := unix.NsecToTimespec(now + int64(timeout))
		if raw {
			_, _, errno = unix.RawSyscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitBitset, uintptr(old), uintptr(unsafe.Pointer(&ts)), 0, uintptr(tag))
		} else {
			_, _, errno = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitBitset, uintptr(old), uintptr(unsafe.Pointer(&ts)), 0, uintptr(tag))
		}
	}
	switch errno {
	case 0:
		return awoken, nil
	case unix.EAGAIN: // *addr != old when the kernel looked
		return changed, nil
	case unix.EINTR: // a signal: Go's preemption, a profiler
		return again, nil
	case unix.ETIMEDOUT:
		return timedOut, nil
	}
	return 0, os.NewSyscallError("futex", errno)
}

// wake wakes up to n (1 <= n <= maxWake) waiters with FUTEX_WAKE, which
// returns how many it woke, whatever their bitsets. It goes through the
// scheduler too: waking many waiters is not short, and even one may wait
// for the mmap lock to find a page that is not yet in this process' page
// tables.
func wake(addr *uint32, n int) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, uintptr(n), 0, 0, 0)
	if errno != 0 {
		return 0, os.NewSyscallError("futex", errno)
	}
	return int(r), nil
}

// wakeTag wakes every waiter on addr whose bitset has tag's bit: a
// canceller's waiter, and those of the other waiters that drew the same
// bit. A waiter from another program that sleeps with FUTEX_WAIT (every
// bit) is among them, and sees a spurious wake-up.
func wakeTag(addr *uint32, tag uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeBitset, maxWake, 0, 0, uintptr(tag))
}

// monoBase pairs one reading of CLOCK_MONOTONIC with the time.Time taken
// right before it.
var monoBase struct {
	once sync.Once
	ns   int64 // CLOCK_MONOTONIC, in ns
	t    time.Time
	err  error
}

// monotonic returns CLOCK_MONOTONIC in ns, without a system call:
// unix.ClockGettime is one (x/sys does not use the vDSO), which would cost a
// system call's time at every sleep (BENCHMARKS.md has the figure). Go's
// monotonic time (time.Since) is the runtime's nanotime, CLOCK_MONOTONIC
// read through the vDSO on Linux (runtime/sys_linux_*.s: nanotime1), so the
// difference of the two clocks is a constant, taken once. The reading is
// ahead by at most the moment between the two reads of monoBase, so a sleep
// may end that much late, never early.
func monotonic() (int64, error) {
	b := &monoBase
	b.once.Do(func() {
		t := time.Now()
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			b.err = os.NewSyscallError("clock_gettime", err)
			return
		}
		b.ns, b.t = ts.Nano(), t
	})
	if b.err != nil {
		return 0, b.err
	}
	return b.ns + int64(time.Since(b.t)), nil
}
