package wake

import "math"

// The vocabulary of the per-OS files (wake_linux.go, wake_darwin.go), which
// implement, each for its system:
//
//	wait(addr *uint32, old, tag uint32, timeout time.Duration) (result, error)
//	waitHeld(addr *uint32, old, tag uint32, timeout time.Duration) (result, error)
//	const holdP bool
//	sleepTick() time.Duration
//	wake(addr *uint32, n int) (int, error)
//	wakeTag(addr *uint32, tag uint32)
//
// They use nothing of wake.go, which uses them.

// result is what one sleep in the kernel ended with, when it did not fail.
type result int

const (
	// awoken: a wake-up, which a Wake may have sent (on macOS, also a word
	// that no longer held the value).
	awoken result = iota
	// changed: the word did not hold the value, and nothing was consumed.
	changed
	// again: interrupted, or a transient failure: look again.
	again
	// timedOut: the sleep's time ran out.
	timedOut
)

// maxWake is the most waiters a wake-up asks for, and the number that
// means all of them: the futex's count is an int.
const maxWake = math.MaxInt32
