// Package wake puts goroutines of any process to sleep on a 32-bit word in
// shared memory and wakes them: the futex of Linux, and its counterpart on
// macOS, for words that processes share through a segment of package
// shmmap (or any other shared mapping).
//
// A waiter says which value it saw; Wait sleeps only while the word still
// holds it, so a change made before the sleep is never missed:
//
//	// the waiting side (any process that maps the segment)
//	for atomic.LoadUint32(w) == old {
//		if err := wake.Wait(ctx, w, old); err != nil {
//			return err // ctx ended
//		}
//	}
//
//	// the other side
//	atomic.StoreUint32(w, old+1)
//	wake.Wake(w, 1)
//
// Wait may return early, with nil, when nothing happened to the word: a
// Wake meant for an earlier value, a cancelled waiter's nudge, a wake-up that
// the kernel itself lets through. Callers loop, as above, on what the word
// holds. Two processes must agree on nothing but the word's offset in the
// segment: the kernel finds the waiters of a shared word by the memory
// behind it, not by its address, which differs between processes.
//
// # Lifetime
//
// A word must stay mapped in a process for as long as any Wait or Wake on it
// runs in that process: Wait reads the word between sleeps, and a Release of
// its segment (or munmap) before then makes that read fault, which kills the
// process. Another process may unmap it, exit or be killed at any time: the
// kernel removes a dead process' waiters itself, and a waker never depends
// on them.
//
// # Threads
//
// A waiting goroutine holds an OS thread for as long as it sleeps: the wait
// is a blocking system call, during which the Go runtime hands the
// goroutine's P to other goroutines but cannot reuse its thread. So 1,000
// goroutines waiting at once are 1,000 threads, and the process dies when it
// passes runtime/debug.SetMaxThreads (10,000 by default). Threads that a
// burst of waiters made are kept by the runtime for later use, not freed.
//
// In a process with one P (GOMAXPROCS=1: a process run under taskset -c N
// or in a container given one CPU by cpuset, on a one-CPU machine, or with
// GOMAXPROCS set; Go gives a container limited by CPU quota at least two),
// WaitPeer on Linux first sleeps for up to a tick of the kernel's clock,
// kept within 1 to 10 ms (4 ms with HZ=250), keeping the P, and only then
// sleeps letting it go: with one P, letting it go costs the runtime
// several context switches on the only CPU, more than a short wait itself
// (BENCHMARKS.md). Meanwhile the process' other goroutines, and a
// cancellation, wait, as they would behind a goroutine that computes; the
// waits add up: a goroutine that waits again and again with WaitPeer, each
// wait ended within the tick, keeps the P until the runtime
// preempts it (after 10 ms), and many goroutines in WaitPeer at once hold
// it in turn. Wait and WaitUntil never keep the P: use WaitPeer only where
// the waker is another process and this one has little else to run.
//
// # Cancellation
//
// When a Wait's context ends, Wait returns ctx.Err() promptly (WaitPeer
// with one P, within a tick: see Threads), even while its thread
// sleeps in the kernel: a function registered with
// context.AfterFunc wakes the sleeper, and repeats until the waiter has
// gone, so that a cancellation that comes just before the waiter falls
// asleep is not lost. On Linux it wakes only the cancellable sleepers that
// drew the same one of 31 tags (the futex bitset); on macOS, every sleeper
// on the word. They see a spurious wake-up. A waiter that gives up after a
// Wake chose it passes one wake-up on, so that Wake(w, 1) is never swallowed
// by a waiter that is leaving (another waiter may then see a spurious
// wake-up). Nothing of a Wait outlives its return: no goroutine, no timer,
// no registration with ctx.
//
// # Systems
//
// Linux: futex(2) with FUTEX_WAIT_BITSET and FUTEX_WAKE or FUTEX_WAKE_BITSET,
// never FUTEX_PRIVATE_FLAG, so that waiters and wakers in different processes
// meet. Deadlines are absolute CLOCK_MONOTONIC times, read by the waiting
// thread itself, so that neither a step of the wall clock nor another
// process' time namespace moves them. A C or Python program joins in with
// futex(FUTEX_WAIT) and futex(FUTEX_WAKE) on the same word, without
// FUTEX_PRIVATE_FLAG.
//
// macOS: os_sync_wait_on_address and os_sync_wake_by_address_any/_all with
// the SHARED flags (macOS 14.4 and later), else __ulock_wait2 and
// __ulock_wake with UL_COMPARE_AND_WAIT_SHARED (macOS 11 and later, as every
// Go 1.25+ program requires macOS 12): both from libSystem, called without
// cgo. The kernel does not count the threads it wakes there, so Wake's count
// is less exact (see Wake).
//
// # Errors
//
// A nil or misaligned address is an error wrapping ErrAddress, from every
// function, before any system call or memory access. The end of a context is
// ctx.Err(); the end of WaitUntil's own deadline is os.ErrDeadlineExceeded.
// A system call that fails returns an *os.SyscallError naming the call, such
// as Wake's for an address that is not mapped: EFAULT on Linux, EINVAL on
// macOS, whose ulock_wake finds no VM object for it (xnu
// bsd/kern/sys_ulock.c, uaddr_findobj). Wait reads the word first, which
// faults.
package wake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// ErrAddress is wrapped by the error of every function given a nil address
// or one that is not a multiple of 4: the kernel waits only on aligned
// words, and an atomic access to a misaligned one faults on some systems.
var ErrAddress = errors.New("wake: address is nil or not 4-byte aligned")

// Wait sleeps until the word at addr no longer holds old, a Wake on it
// comes, or ctx ends, whichever is first; it may also return nil early,
// without any of these (see the package documentation: callers loop on
// the word's value).
//
// If ctx has ended, Wait returns ctx.Err(), whatever the word holds and even
// if a wake-up came at the same moment. Otherwise, if the word does not hold
// old, Wait returns nil at once, without a system call. A context that can
// end costs one context.AfterFunc registration per sleeping Wait; one that
// cannot (context.Background) costs nothing.
//
// The word must stay mapped until Wait returns. The error is ctx.Err(), an
// error wrapping ErrAddress, or an *os.SyscallError.
func Wait(ctx context.Context, addr *uint32, old uint32) error {
	return WaitUntil(ctx, addr, old, time.Time{})
}

// WaitUntil is Wait with a deadline of its own: it returns
// os.ErrDeadlineExceeded when deadline passes first. A zero deadline is
// none. It lets a caller wake up now and then (to check that its peer is
// alive, say) without a context for each sleep. If ctx's deadline comes
// first, the error is ctx.Err(), as for Wait.
func WaitUntil(ctx context.Context, addr *uint32, old uint32, deadline time.Time) error {
	return waitUntil(ctx, addr, old, deadline, false)
}

// WaitPeer is WaitUntil for a word that only another process changes and
// wakes, never a goroutine of this one. The difference shows in a process
// with one P (GOMAXPROCS=1) on Linux: the wait's first sleep, of at most
// a tick (1 to 10 ms), keeps the P (see Threads in the package
// documentation), which a waker in this process would need to run, so that
// it would wait for that sleep to end; a waker in another process does
// not. Elsewhere WaitPeer is WaitUntil. Its errors are WaitUntil's:
// ctx.Err(), os.ErrDeadlineExceeded, an error wrapping ErrAddress, or an
// *os.SyscallError.
func WaitPeer(ctx context.Context, addr *uint32, old uint32, deadline time.Time) error {
	return waitUntil(ctx, addr, old, deadline, true)
}

// waitUntil is WaitUntil, with the first sleep keeping a lone P if hold.
func waitUntil(ctx context.Context, addr *uint32, old uint32, deadline time.Time, hold bool) error {
	if err := check(addr); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if atomic.LoadUint32(addr) != old {
		return nil
	}
	end, endErr := deadline, os.ErrDeadlineExceeded
	if d, ok := ctx.Deadline(); ok && (end.IsZero() || d.Before(end)) {
		end, endErr = d, context.DeadlineExceeded
	}
	tag := defaultTag
	if ctx.Done() != nil {
		tag = newTag()
		c := startCanceller(ctx, addr, tag)
		defer c.stop()
	}
	held := hold && holdP && runtime.GOMAXPROCS(0) == 1
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		timeout := time.Duration(-1)
		if !end.IsZero() {
			if timeout = time.Until(end); timeout <= 0 {
				return endErr
			}
			timeout = min(timeout, maxSleep)
		}
		if testHookBeforeSleep != nil {
			testHookBeforeSleep()
		}
		var r result
		var err error
		if held {
			// One P: sleep first for a moment without letting it go (see
			// heldSleep).
			held = false
			d := heldSleep()
			if timeout >= 0 && timeout < d {
				d = timeout
			}
			if testHookHeld != nil {
				testHookHeld(d)
			}
			r, err = waitHeld(addr, old, tag, d)
			if r == timedOut && (timeout < 0 || d < timeout) {
				r = again // the sleep goes on, letting the P go
			}
		} else {
			r, err = wait(addr, old, tag, timeout)
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			if r == awoken {
				// The wake-up may have been a Wake's, meant for a waiter
				// that stays: hand it on.
				wake(addr, 1)
			}
			return err
		}
		if r == awoken || r == changed {
			return nil
		}
		// again or timedOut: look at the word, ctx and the clock again.
	}
}

// Wake wakes up to n goroutines waiting on the word at addr, in this
// process or any other, and returns how many it woke. n <= 0, or n at
// least the number of waiters, wakes them all. A Wake with no one waiting
// costs one system call and returns 0.
//
// On macOS the kernel tells only whether anyone waited: Wake(addr, 1)
// returns 1 or 0, a wake-up of all returns 1 if anyone waited, and a
// wake-up of several makes one call per waiter until the kernel says no one
// waits, counting each call that found the word's wait queue, which a
// waiter woken a moment before still holds until it has left. So the count
// may be too high there, never too low, and no waiter is missed.
//
// The error wraps ErrAddress, or is an *os.SyscallError: if addr is not
// mapped, EFAULT on Linux and EINVAL on macOS.
func Wake(addr *uint32, n int) (woken int, err error) {
	if err := check(addr); err != nil {
		return 0, err
	}
	if n <= 0 || n > maxWake {
		n = maxWake
	}
	return wake(addr, n)
}

// heldSleep bounds the first sleep of a WaitPeer in a process with one P,
// which keeps the P while it sleeps. A sleep in a blocking system call
// lets the P go to other goroutines, but with one P that costs more than
// the sleep: the runtime's sysmon takes the P from a thread that has slept
// through two of its ticks (20 µs or more apart) and, finding no idle P in
// the process, hands it to a thread it wakes to look for work, which runs
// on the only CPU, finds none and sleeps again; and while it takes Ps
// sysmon itself wakes every 20 µs. On one CPU that is several context
// switches for each wait that lasts longer than a tick, as a ping-pong of
// large messages does (BENCHMARKS.md). A raw system call keeps the P, so
// none of that happens, at the cost of the other goroutines waiting for
// it: for at most heldSleep() (a signal, such as a profiler's, ends the
// held sleep early). (A Gosched before the sleep, to let goroutines that
// were ready go first, slowed a ping-pong of small messages on one CPU
// too much: BENCHMARKS.md, "One P".)
//
// heldSleep returns the kernel's tick (sleepTick), within 1 to 10 ms: a
// sleep's timer that would expire before the CPU's next tick makes the
// kernel reprogram its clock device when the sleep starts and again when
// a wake-up cancels it, which on a virtual machine costs a few µs each
// time, as much as the rest of a small message's hand-over (BENCHMARKS.md,
// "A held sleep lasts a tick"); a timer a tick away never comes first. At
// most 10 ms, the slice after which the runtime preempts a goroutine that
// keeps its P; at least 1 ms, for a kernel that reports no tick.
func heldSleep() time.Duration { return heldSleepFor(sleepTick()) }

// heldSleepFor is heldSleep for a tick of tick.
func heldSleepFor(tick time.Duration) time.Duration {
	return min(max(tick, time.Millisecond), 10*time.Millisecond)
}

// maxSleep bounds each sleep in the kernel: a far deadline is slept in
// steps, so that its absolute time fits a 32-bit timespec.
const maxSleep = 24 * time.Hour

func check(addr *uint32) error {
	if addr == nil || uintptr(unsafe.Pointer(addr))%4 != 0 {
		return fmt.Errorf("%w: %p", ErrAddress, addr)
	}
	return nil
}

// Wake tags let a canceller wake its own waiter and few others (Linux: the
// futex bitset; ignored elsewhere). A Wait that cannot be cancelled sleeps
// under defaultTag, which no canceller uses.
const defaultTag uint32 = 1

var tagSeq atomic.Uint32

// newTag returns one of the 31 other bits, in turn.
func newTag() uint32 { return 1 << (1 + tagSeq.Add(1)%31) }

// testHookBeforeSleep, if set, runs before each sleep in the kernel;
// testHookHeld before each that keeps the P, with its length.
var (
	testHookBeforeSleep func()
	testHookHeld        func(time.Duration)
)

// A canceller wakes a Wait whose context has ended. The waiter may be just
// about to fall asleep when it runs (it saw ctx live a moment ago), and then
// a single wake-up finds no one; so the canceller repeats it, further and
// further apart, until the waiter says it has gone.
type canceller struct {
	addr      *uint32
	tag       uint32
	stopAfter func() bool
	exit      chan struct{} // closed by the waiter when it returns
	done      chan struct{} // closed when run returns
}

// Intervals between a canceller's wake-ups: the first repeat soon after,
// for a waiter that was entering the kernel; at most retryMax apart for one
// that the scheduler keeps from running.
const (
	retryMin = 50 * time.Microsecond
	retryMax = 5 * time.Millisecond
)

func startCanceller(ctx context.Context, addr *uint32, tag uint32) *canceller {
	c := &canceller{addr: addr, tag: tag, exit: make(chan struct{}), done: make(chan struct{})}
	c.stopAfter = context.AfterFunc(ctx, c.run)
	return c
}

// stop, called when the Wait returns, unregisters the canceller or, if it
// has started, ends it and waits for it: no wake-up of addr comes after.
func (c *canceller) stop() {
	if c.stopAfter() {
		return
	}
	close(c.exit)
	<-c.done
}

// cancellers counts the cancellers running, for tests: none may outlive its
// Wait.
var cancellers atomic.Int32

func (c *canceller) run() {
	cancellers.Add(1)
	defer close(c.done)
	defer cancellers.Add(-1)
	var t *time.Timer
	for d := retryMin; ; d = min(2*d, retryMax) {
		wakeTag(c.addr, c.tag)
		if t == nil {
			t = time.NewTimer(d)
		} else {
			t.Reset(d)
		}
		select {
		case <-c.exit:
			t.Stop()
			return
		case <-t.C:
		}
	}
}
