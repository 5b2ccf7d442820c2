package wake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests of a process with one P (GOMAXPROCS=1), where the first sleep
// of a WaitPeer keeps the P for at most heldSleep(). Each runs in a
// helper process, which sets GOMAXPROCS=1 for itself.

func init() {
	helpers.Register("onep", helperOneP)
}

// helperOneP CASE runs one case with one P and prints its outcome:
//
//   - held: a WaitPeer of 50 ms, a WaitUntil, then a WaitPeer with two
//     Ps; prints how many sleeps kept the P in each and how long the first
//     was ("1 0 0 4ms" with HZ=250).
//   - others: a goroutine that sleeps 200 µs at a time runs on while
//     another waits 300 ms on a word that nothing changes; prints its
//     count of turns and the wait's error.
//   - cancel: a context that a goroutine cancels 20 ms into the wait ends
//     it; prints the wait's error.
func helperOneP(args ...string) error {
	runtime.GOMAXPROCS(1)
	var w uint32
	switch args[0] {
	case "held":
		var held atomic.Int64
		var first time.Duration
		testHookHeld = func(d time.Duration) {
			if held.Add(1) == 1 {
				first = d
			}
		}
		// expire waits on w, which nothing changes, until d has passed,
		// and returns how many sleeps kept the P.
		expire := func(wait func(context.Context, *uint32, uint32, time.Time) error, what string, d time.Duration) (int64, error) {
			if err := wait(context.Background(), &w, 0, time.Now().Add(d)); !errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, fmt.Errorf("%s: %v, want os.ErrDeadlineExceeded", what, err)
			}
			return held.Swap(0), nil
		}
		one, err := expire(WaitPeer, "WaitPeer with one P", 50*time.Millisecond)
		if err != nil {
			return err
		}
		plain, err := expire(WaitUntil, "WaitUntil with one P", 5*time.Millisecond)
		if err != nil {
			return err
		}
		runtime.GOMAXPROCS(2)
		two, err := expire(WaitPeer, "WaitPeer with two Ps", 5*time.Millisecond)
		if err != nil {
			return err
		}
		fmt.Println(one, plain, two, first)
	case "others":
		var turns atomic.Int64
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Microsecond):
					turns.Add(1)
				}
			}
		}()
		err := WaitPeer(context.Background(), &w, 0, time.Now().Add(300*time.Millisecond))
		close(stop)
		fmt.Println(turns.Load(), err)
	case "cancel":
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(20 * time.Millisecond)
			cancel()
		}()
		fmt.Println(WaitPeer(ctx, &w, 0, time.Time{}))
	}
	return nil
}

func runOneP(t *testing.T, name string) string {
	t.Helper()
	out, err := helpers.Command(t, time.Minute, "onep", name).Output()
	if err != nil {
		t.Fatalf("helper onep %s: %v\n%s", name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestOnePHeld: with one P a WaitPeer's first sleep keeps it, once per
// wait, for heldSleep(); a WaitUntil's never does (its waker may be a
// goroutine of this process, which needs the P), nor any with two Ps.
func TestOnePHeld(t *testing.T) {
	want := fmt.Sprint("1 0 0 ", heldSleep())
	if got := runOneP(t, "held"); got != want {
		t.Fatalf("sleeps that kept the P: WaitPeer with one P, WaitUntil, WaitPeer with two Ps, and the first's length: %s, want %s", got, want)
	}
}

// TestHeldSleepIsATick: a held sleep lasts the kernel's tick, the
// resolution of CLOCK_MONOTONIC_COARSE, within 1 to 10 ms, so that its
// timer never expires before the tick's (see heldSleep).
func TestHeldSleepIsATick(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGetres(unix.CLOCK_MONOTONIC_COARSE, &ts); err != nil {
		t.Fatal(err)
	}
	tick := time.Duration(ts.Nano())
	want := min(max(tick, time.Millisecond), 10*time.Millisecond)
	if got := heldSleep(); got != want {
		t.Fatalf("heldSleep() = %v, want %v (the tick: %v)", got, want, tick)
	}
	if tick < time.Millisecond || tick > 10*time.Millisecond {
		t.Logf("a tick of %v, outside 1 to 10 ms", tick)
	}
}

// TestHeldSleepFor: the tick, kept within 1 to 10 ms, for ticks this
// kernel does not have: none (ClockGetres failed), gVisor's 1 ns, HZ=1000,
// 300, 250, 100, and coarser.
func TestHeldSleepFor(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct{ tick, want time.Duration }{
		{-1, ms}, {0, ms}, {1, ms}, {ms - 1, ms}, {ms, ms},
		{3333333, 3333333}, {4 * ms, 4 * ms}, {10 * ms, 10 * ms},
		{10*ms + 1, 10 * ms}, {time.Second, 10 * ms},
	} {
		if got := heldSleepFor(c.tick); got != c.want {
			t.Errorf("heldSleepFor(%v) = %v, want %v", c.tick, got, c.want)
		}
	}
}

// TestOnePOthersRun: a wait that keeps the P keeps it only for a moment:
// another goroutine of the process, whose timer fires every 200 µs, runs
// on through a wait of 300 ms, about 300 times here (the timers of a
// process with one idle P fire about 1 ms apart). The floor is low, for a
// loaded machine, and far above the turns it would get from a wait that
// kept the P throughout, waking only when the runtime preempts it, every
// 10 ms or more.
func TestOnePOthersRun(t *testing.T) {
	var turns int
	var errText string
	got := runOneP(t, "others")
	if _, err := fmt.Sscanf(got, "%d %s", &turns, &errText); err != nil {
		t.Fatalf("helper printed %q: %v", got, err)
	}
	if !strings.Contains(got, os.ErrDeadlineExceeded.Error()) {
		t.Fatalf("the wait: %q, want os.ErrDeadlineExceeded", got)
	}
	if turns < 50 {
		t.Fatalf("the other goroutine ran %d times during a wait of 300 ms, want at least 50", turns)
	}
	t.Logf("the other goroutine ran %d times", turns)
}

// TestOnePCancel: with one P, the canceller, a goroutine, still gets to
// run and end a wait whose context is cancelled.
func TestOnePCancel(t *testing.T) {
	if got := runOneP(t, "cancel"); got != context.Canceled.Error() {
		t.Fatalf("Wait with a cancelled context, one P: %q, want %q", got, context.Canceled)
	}
}
