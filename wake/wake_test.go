package wake

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// prompt is how soon a waiter must return once it has cause to: generous,
// for a noisy shared machine; the tests assert no other timing.
const prompt = 5 * time.Second

func init() {
	helpers.Register("wait", helperWait)
	helpers.Register("wake", helperWake)
	helpers.Register("sleep", helperSleep)
}

// helperWait KEY INDEX MODE maps the word (read-only if MODE is "ro"),
// prints the id of the thread it will sleep on, and waits on the word while
// it holds 0: first once, printing what Wait returned and the word (a Wake
// with the word unchanged gives "<nil> 0"), then until the word changes,
// printing "saw" and its value.
func helperWait(args ...string) error {
	runtime.LockOSThread()
	w, err := attachWord(args[0], args[1], args[2])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fmt.Println(gettid())
	err = Wait(ctx, w, 0)
	fmt.Println(err, atomic.LoadUint32(w))
	for atomic.LoadUint32(w) == 0 {
		if err := Wait(ctx, w, 0); err != nil {
			return err
		}
	}
	fmt.Println("saw", atomic.LoadUint32(w))
	return nil
}

// helperWake KEY INDEX wakes one waiter on the word, calling Wake until it
// finds one, and prints how many it woke; then, once the parent has written
// a line, it stores 1 in the word and wakes again.
func helperWake(args ...string) error {
	w, err := attachWord(args[0], args[1], "rw")
	if err != nil {
		return err
	}
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		n, err := Wake(w, 1)
		if err != nil {
			return err
		}
		if n > 0 {
			fmt.Println("woke", n)
			break
		}
		if time.Now().After(end) {
			return errors.New("no waiter found in 10 s")
		}
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return err
	}
	atomic.StoreUint32(w, 1)
	_, err = Wake(w, 1)
	return err
}

// helperSleep KEY INDEX prints the id of its thread and waits on the word
// with no end, to be killed.
func helperSleep(args ...string) error {
	runtime.LockOSThread()
	w, err := attachWord(args[0], args[1], "rw")
	if err != nil {
		return err
	}
	fmt.Println(gettid())
	for {
		if err := Wait(context.Background(), w, atomic.LoadUint32(w)); err != nil {
			return err
		}
	}
}

// sleeper is a goroutine waiting on a word on a thread of its own.
type sleeper struct {
	tid  int
	done chan error
}

// startSleeper starts a goroutine that waits once on w while it holds old,
// and returns once that goroutine sleeps in the kernel.
func startSleeper(t *testing.T, ctx context.Context, w *uint32, old uint32) *sleeper {
	t.Helper()
	s := &sleeper{done: make(chan error, 1)}
	tids := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- gettid()
		s.done <- Wait(ctx, w, old)
	}()
	s.tid = <-tids
	waitAsleep(t, os.Getpid(), s.tid, w)
	return s
}

// result returns what the sleeper's Wait returned, failing t if it has not
// returned within prompt.
func (s *sleeper) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(prompt):
		t.Fatalf("Wait still sleeping after %v", prompt)
		return nil
	}
}

// TestCrossProcess: a child process sleeping on a word of a segment is
// woken by this process' Wake, with the word unchanged (only the wake-up
// can have ended its sleep), and then by a change of the word plus a Wake.
// With FUTEX_PRIVATE_FLAG, Wake would never find it: the test fails after
// 10 s instead of hanging. "ro": the child maps the segment read-only.
func TestCrossProcess(t *testing.T) {
	for _, mode := range []string{"rw", "ro"} {
		t.Run(mode, func(t *testing.T) {
			key, words := segment(t, 4096)
			w := &words[100]
			c := helpers.Start(t, "wait", key, "100", mode)
			tid, err := strconv.Atoi(c.Line(t))
			if err != nil {
				t.Fatal(err)
			}
			waitAsleep(t, c.Cmd.Process.Pid, tid, nil)
			wakeUntil(t, w, 1, 1)
			if got, want := c.Line(t), "<nil> 0"; got != want {
				t.Fatalf("child's Wait: got %q, want %q", got, want)
			}
			atomic.StoreUint32(w, 7)
			if _, err := Wake(w, 1); err != nil {
				t.Fatal(err)
			}
			if got, want := c.Line(t), "saw 7"; got != want {
				t.Fatalf("child: got %q, want %q", got, want)
			}
			c.Wait(t)
		})
	}
}

// TestCrossProcessReverse: this process sleeps, a child wakes it.
func TestCrossProcessReverse(t *testing.T) {
	noLeaks(t)
	key, words := segment(t, 4096)
	w := &words[5]
	c := helpers.Start(t, "wake", key, "5")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Wait(ctx, w, 0); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if got := atomic.LoadUint32(w); got != 0 {
		t.Fatalf("woken with the word at %d, want 0 (only a Wake should have woken us)", got)
	}
	if got, want := c.Line(t), "woke 1"; got != want {
		t.Fatalf("child: got %q, want %q", got, want)
	}
	fmt.Fprintln(c.Stdin, "now change it")
	for atomic.LoadUint32(w) == 0 {
		if err := Wait(ctx, w, 0); err != nil {
			t.Fatalf("Wait for the change: %v", err)
		}
	}
	c.Wait(t)
}

// TestKilledWaiter: a child killed while it sleeps on a word leaves no
// waiter behind (Wake finds no one), and the word works as before, for
// this process and for another child.
func TestKilledWaiter(t *testing.T) {
	key, words := segment(t, 4096)
	w := &words[0]
	c := helpers.Start(t, "sleep", key, "0")
	tid, err := strconv.Atoi(c.Line(t))
	if err != nil {
		t.Fatal(err)
	}
	waitAsleep(t, c.Cmd.Process.Pid, tid, nil)
	c.Kill(t)

	if n, err := Wake(w, 0); n != 0 || err != nil {
		t.Fatalf("Wake after the waiter was killed: %d, %v; want 0, nil", n, err)
	}
	s := startSleeper(t, context.Background(), w, 0)
	if n, err := Wake(w, 0); n != 1 || err != nil {
		t.Fatalf("Wake of this process' waiter: %d, %v; want 1, nil", n, err)
	}
	if err := s.result(t); err != nil {
		t.Fatal(err)
	}

	c2 := helpers.Start(t, "wait", key, "0", "rw")
	tid, err = strconv.Atoi(c2.Line(t))
	if err != nil {
		t.Fatal(err)
	}
	waitAsleep(t, c2.Cmd.Process.Pid, tid, nil)
	wakeUntil(t, w, 1, 1)
	if got, want := c2.Line(t), "<nil> 0"; got != want {
		t.Fatalf("second child's Wait: got %q, want %q", got, want)
	}
	atomic.StoreUint32(w, 1)
	Wake(w, 1)
	if got, want := c2.Line(t), "saw 1"; got != want {
		t.Fatalf("second child: got %q, want %q", got, want)
	}
	c2.Wait(t)
}

// TestChanged: Wait returns nil at once, with no goroutine and no system
// call, when the word does not hold the value; Wake with no waiter wakes
// no one.
func TestChanged(t *testing.T) {
	noLeaks(t)
	_, words := segment(t, 4096)
	w := &words[1]
	atomic.StoreUint32(w, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ctx := range []context.Context{context.Background(), ctx} {
		if err := Wait(ctx, w, 2); err != nil {
			t.Errorf("Wait on a changed word: %v", err)
		}
		if err := WaitUntil(ctx, w, 2, time.Now().Add(-time.Hour)); err != nil {
			t.Errorf("WaitUntil on a changed word, deadline passed: %v", err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Wait(ctx, w, 2) }); n != 0 {
		t.Errorf("Wait on a changed word allocates %v times", n)
	}
	for _, n := range []int{1, 2, 0, -1, math.MaxInt} {
		if got, err := Wake(w, n); got != 0 || err != nil {
			t.Errorf("Wake(w, %d) with no waiter: %d, %v; want 0, nil", n, got, err)
		}
	}
}

// TestDone: a context that has ended is ctx.Err() at once, whatever the
// word holds.
func TestDone(t *testing.T) {
	noLeaks(t)
	_, words := segment(t, 4096)
	w := &words[0]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, old := range []uint32{0, 1} {
		if err := Wait(ctx, w, old); err != context.Canceled {
			t.Errorf("Wait(cancelled, old %d): %v, want %v", old, err, context.Canceled)
		}
		if err := WaitUntil(expired, w, old, time.Time{}); err != context.DeadlineExceeded {
			t.Errorf("WaitUntil(expired, old %d): %v, want %v", old, err, context.DeadlineExceeded)
		}
	}
}

// TestDeadline: WaitUntil's own deadline is os.ErrDeadlineExceeded, a
// context's is context.DeadlineExceeded, whichever comes first; neither
// comes early, and both come promptly.
func TestDeadline(t *testing.T) {
	noLeaks(t)
	_, words := segment(t, 4096)
	w := &words[0]
	const d = 50 * time.Millisecond
	for _, tc := range []struct {
		name     string
		ctx      time.Duration // 0: no context deadline
		deadline time.Duration // 0: none
		want     error
	}{
		{"own", 0, d, os.ErrDeadlineExceeded},
		{"context", d, 0, context.DeadlineExceeded},
		{"own first", time.Hour, d, os.ErrDeadlineExceeded},
		{"context first", d, time.Hour, context.DeadlineExceeded},
		{"own passed", 0, -time.Second, os.ErrDeadlineExceeded},
		{"own in 200 years", d, 200 * 365 * 24 * time.Hour, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now() // before either deadline is set
			ctx := context.Background()
			if tc.ctx != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			var deadline time.Time
			if tc.deadline != 0 {
				deadline = start.Add(tc.deadline)
			}
			err := WaitUntil(ctx, w, 0, deadline)
			took := time.Since(start)
			if err != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if min := min(d, max(tc.deadline, 0)); took < min && tc.deadline >= 0 {
				t.Errorf("returned after %v, before the deadline %v", took, min)
			}
			if took > prompt {
				t.Errorf("returned after %v", took)
			}
		})
	}
}

// TestCancel: cancelling a context wakes every goroutine sleeping under it,
// here 100 on ten words of a segment, and each returns context.Canceled,
// leaving nothing behind.
func TestCancel(t *testing.T) {
	noLeaks(t)
	_, words := segment(t, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	const n = 100
	errs := make(chan error, n)
	var started sync.WaitGroup
	for i := range n {
		started.Add(1)
		go func() {
			started.Done()
			errs <- Wait(ctx, &words[i%10], 0)
		}()
	}
	started.Wait()
	time.Sleep(100 * time.Millisecond) // most of them asleep in the kernel
	cancel()
	timeout := time.After(prompt)
	for i := range n {
		select {
		case err := <-errs:
			if err != context.Canceled {
				t.Fatalf("Wait: %v, want %v", err, context.Canceled)
			}
		case <-timeout:
			t.Fatalf("%d of %d waiters still sleeping %v after cancel", n-i, n, prompt)
		}
	}
	if n := cancellers.Load(); n != 0 {
		t.Errorf("%d cancellers still running after every Wait returned", n)
	}
}

// TestCancelBeforeSleep: a context cancelled after the waiter last looked
// at it, but before it fell asleep, still wakes it: the canceller's first
// wake-up finds no one, and it must try again.
func TestCancelBeforeSleep(t *testing.T) {
	noLeaks(t)
	_, words := segment(t, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testHookBeforeSleep = func() {
		cancel()
		time.Sleep(20 * time.Millisecond) // the canceller has run by now
	}
	defer func() { testHookBeforeSleep = nil }()
	start := time.Now()
	err := WaitUntil(ctx, &words[0], 0, start.Add(2*prompt))
	if took := time.Since(start); err != context.Canceled || took > prompt {
		t.Fatalf("Wait: %v after %v, want %v within %v", err, took, context.Canceled, prompt)
	}
	if n := cancellers.Load(); n != 0 {
		t.Errorf("%d cancellers still running after Wait returned", n)
	}
}

// TestPassOn: a Wake(w, 1) that picks a waiter whose context ends at that
// moment is not lost: that waiter returns ctx.Err() and hands the wake-up
// on to the other waiter. The kernel wakes the earliest sleeper first, so
// the Wake goes to the cancellable one.
//
// Where a canceller wakes every sleeper on the word (cancelWakesAll: macOS),
// a cancel that comes after the first waiter took the Wake but before it
// stopped its canceller also wakes the second, which a last Wake then
// finds gone; and there the second would be woken without the hand-on too,
// so the test shows only that no waiter is left asleep.
func TestPassOn(t *testing.T) {
	noLeaks(t)
	_, words := segment(t, 4096)
	w := &words[0]
	exercised := 0
	const rounds = 50
	for range rounds {
		ctx, cancel := context.WithCancel(context.Background())
		first := startSleeper(t, ctx, w, 0)
		second := startSleeper(t, context.Background(), w, 0)
		if n, err := Wake(w, 1); n != 1 || err != nil {
			t.Fatalf("Wake: %d, %v; want 1, nil", n, err)
		}
		cancel()
		if err := first.result(t); err == nil {
			// The first waiter ran before cancel: it had the wake-up.
			if n, err := Wake(w, 1); err != nil || n != 1 && !cancelWakesAll {
				t.Fatalf("Wake of the second waiter: %d, %v; want 1, nil", n, err)
			}
		} else if err != context.Canceled {
			t.Fatalf("first waiter: %v", err)
		} else {
			exercised++
		}
		if err := second.result(t); err != nil {
			t.Fatalf("second waiter: %v", err)
		}
	}
	t.Logf("a cancelled waiter passed the wake-up on %d times in %d", exercised, rounds)
	if exercised == 0 {
		t.Errorf("in %d rounds, the first waiter never saw its cancellation with the Wake: the test tested nothing", rounds)
	}
}

// TestManyWaits: waits that end by Wake, by cancellation and by deadline,
// a thousand of each, leave no goroutine behind (noLeaks): every
// AfterFunc is stopped or has finished, every canceller has returned.
func TestManyWaits(t *testing.T) {
	noLeaks(t)
	_, words := segment(t, 4096)
	w := &words[0]
	n := 3000
	if testing.Short() {
		n = 300
	}
	base := runtime.NumGoroutine()
	for i := range n {
		if i%100 == 0 && runtime.NumGoroutine() > base+50 {
			t.Fatalf("after %d waits, %d goroutines, from %d: they pile up", i, runtime.NumGoroutine(), base)
		}
		ctx, cancel := context.WithCancel(context.Background())
		want := []error{nil, context.Canceled, context.DeadlineExceeded}[i%3]
		if want == context.DeadlineExceeded {
			ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
		}
		done := make(chan error, 1)
		go func() { done <- Wait(ctx, w, 0) }()
		switch want {
		case nil:
			// Nothing else can end this Wait: wake until it is found.
			for {
				if k, err := Wake(w, 1); err != nil {
					t.Fatal(err)
				} else if k > 0 {
					break
				}
				runtime.Gosched()
			}
		case context.Canceled:
			cancel()
		}
		if err := <-done; err != want {
			t.Fatalf("wait %d: %v, want %v", i, err, want)
		}
		if n := cancellers.Load(); n != 0 {
			t.Fatalf("wait %d: %d cancellers still running after it returned", i, n)
		}
		cancel()
	}
}

// TestBadAddress: a nil or misaligned address is an error wrapping
// ErrAddress from every function, and never a fault.
func TestBadAddress(t *testing.T) {
	_, words := segment(t, 4096)
	seg := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 4096)
	heap := make([]byte, 8)
	for _, tc := range []struct {
		name string
		addr *uint32
	}{
		{"nil", nil},
		{"segment+1", (*uint32)(unsafe.Pointer(&seg[1]))},
		{"segment+2", (*uint32)(unsafe.Pointer(&seg[2]))},
		{"segment+4095", (*uint32)(unsafe.Pointer(&seg[4095]))},
		{"heap+3", (*uint32)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(heap)), 3))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := Wait(ctx, tc.addr, 0); !errors.Is(err, ErrAddress) {
				t.Errorf("Wait: %v, want %v", err, ErrAddress)
			}
			if err := WaitUntil(context.Background(), tc.addr, 0, time.Now().Add(time.Hour)); !errors.Is(err, ErrAddress) {
				t.Errorf("WaitUntil: %v, want %v", err, ErrAddress)
			}
			for _, n := range []int{1, 0, -1} {
				if k, err := Wake(tc.addr, n); k != 0 || !errors.Is(err, ErrAddress) {
					t.Errorf("Wake(addr, %d): %d, %v; want 0, %v", n, k, err, ErrAddress)
				}
			}
		})
	}
}

// TestWakeUnmapped: Wake of an aligned address that is not mapped is an
// *os.SyscallError wrapping unmappedErr, as Wake's doc says: EFAULT on
// Linux, EINVAL on macOS. (Wait reads the word first, which faults.)
func TestWakeUnmapped(t *testing.T) {
	b, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	w := (*uint32)(unsafe.Pointer(&b[0]))
	if err := unix.Munmap(b); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 0} {
		k, err := Wake(w, n)
		var se *os.SyscallError
		if k != 0 || !errors.As(err, &se) || !errors.Is(err, unmappedErr) {
			t.Errorf("Wake(unmapped, %d): %d, %v; want 0 and an *os.SyscallError wrapping %v", n, k, err, unmappedErr)
		}
	}
}

// TestWakeCount: Wake wakes as many as asked, and n <= 0 or past the
// number waiting wakes all. (On macOS, where the kernel does not count,
// a wake-up of all reports 1.)
func TestWakeCount(t *testing.T) {
	noLeaks(t)
	_, words := segment(t, 4096)
	w := &words[0]
	for _, n := range []int{0, -1, math.MaxInt, 6} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var ss []*sleeper
			for range 5 {
				ss = append(ss, startSleeper(t, context.Background(), w, 0))
			}
			if got, err := Wake(w, 2); got != 2 || err != nil {
				t.Fatalf("Wake(w, 2): %d, %v; want 2, nil", got, err)
			}
			lo, hi := 3, 3
			if runtime.GOOS == "darwin" { // the kernel does not count
				lo, hi = 1, 1
				if n == 6 {
					lo, hi = 3, 6
				}
			}
			if got, err := Wake(w, n); got < lo || got > hi || err != nil {
				t.Fatalf("Wake(w, %d): %d, %v; want %d to %d, nil", n, got, err, lo, hi)
			}
			for _, s := range ss {
				if err := s.result(t); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
