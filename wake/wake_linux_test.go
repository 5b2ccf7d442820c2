package wake

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func gettid() int { return unix.Gettid() }

// cancelWakesAll: a canceller wakes only the waiters of its own futex
// bitset tag (wakeTag), so never a Wait that cannot be cancelled.
const cancelWakesAll = false

// unmappedErr is Wake's error for an address not mapped: the futex call
// cannot find the page (get_futex_key).
const unmappedErr = unix.EFAULT

// allowedCPUs returns the CPUs this process may run on, in order.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for i := range len(set) * 64 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

// pinProcess puts every thread of this process on cpu, as
// SHMMAP_PEERS_PIN does for the peers' processes, and returns a function
// that puts them back. sched_setaffinity acts on one thread, so each is
// set; threads made later inherit their maker's affinity.
func pinProcess(cpu int) (restore func(), err error) {
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	set.Set(cpu)
	setAll := func(s *unix.CPUSet) error {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, s); err != nil && err != unix.ESRCH {
				return err
			}
		}
		return nil
	}
	if err := setAll(&set); err != nil {
		return nil, err
	}
	return func() { setAll(&old) }, nil
}

// waitAsleep returns once thread tid of process pid sleeps in futex(2)
// with FUTEX_WAIT_BITSET, on w if w is not nil, as
// /proc/PID/task/TID/syscall shows (the call's number and arguments); it
// fails t after 10 s. The private flag is ignored, so that a waiter that
// wrongly sets it is caught by the Wake that cannot find it, not here.
func waitAsleep(t testing.TB, pid, tid int, w *uint32) {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid)
	var last string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(path)
		if os.IsPermission(err) { // ptrace rules (Yama) may hide it
			t.Logf("%v: giving the thread time instead", err)
			time.Sleep(200 * time.Millisecond)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		last = strings.TrimSpace(string(b))
		f := strings.Fields(last)
		if len(f) < 3 || f[0] != strconv.Itoa(unix.SYS_FUTEX) {
			continue
		}
		addr, err1 := strconv.ParseUint(f[1], 0, 64)
		op, err2 := strconv.ParseUint(f[2], 0, 64)
		if err1 == nil && err2 == nil && op&^128 == futexWaitBitset &&
			(w == nil || uintptr(addr) == uintptr(unsafe.Pointer(w))) {
			return
		}
	}
	t.Fatalf("thread %d of process %d not asleep on the word after 10 s: %s says %q", tid, pid, path, last)
}

// threads returns the number of threads of this process.
func threads(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// TestThousandWaiters: 1,000 goroutines sleep at once on ten words of one
// segment, each on a thread of its own, and Wake wakes every one, counting
// exactly 1,000. A second round needs no more threads than the first left
// (the runtime keeps idle threads and reuses them: nothing leaks), and no
// goroutine stays behind.
func TestThousandWaiters(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 threads")
	}
	noLeaks(t)
	_, words := segment(t, 4096)
	const n, nwords = 1000, 10
	var after [2]int
	for round := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, n)
		var asleep atomic.Int32
		for i := range n {
			go func() {
				asleep.Add(1)
				errs <- Wait(ctx, &words[i%nwords*16], 0)
			}()
		}
		for asleep.Load() < n {
			time.Sleep(time.Millisecond)
		}
		// Every thread that sleeps in the kernel is one more thread.
		for end := time.Now().Add(time.Minute); threads(t) < n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%d threads after a minute, want at least %d waiting", threads(t), n)
			}
		}
		for i := range nwords {
			wakeUntil(t, &words[i*16], 0, n/nwords)
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		after[round] = threads(t)
	}
	t.Logf("threads after each round: %v", after)
	if after[1] > after[0]+20 {
		t.Errorf("threads: %d after the first round, %d after the second: not reused", after[0], after[1])
	}
}

// TestDeadlineSleeps: a WaitUntil sleeps until its deadline rather than
// spinning (a timeout that the kernel misreads, on the wrong clock or as
// relative, ends every sleep at once): the process uses far less CPU time
// than the wait lasts.
func TestDeadlineSleeps(t *testing.T) {
	_, words := segment(t, 4096)
	const d = 300 * time.Millisecond
	cpu := func() time.Duration {
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	before := cpu()
	if err := WaitUntil(ctx, &words[0], 0, time.Now().Add(d)); err != os.ErrDeadlineExceeded {
		t.Fatal(err)
	}
	if used := cpu() - before; used > d/3 {
		t.Errorf("a wait of %v used %v of CPU time", d, used)
	}
}

// TestMonotonic: the clock of the futex deadlines, read without a system
// call, is CLOCK_MONOTONIC as the kernel reads it (in this time namespace):
// never behind it, and ahead by no more than a moment.
func TestMonotonic(t *testing.T) {
	if _, err := monotonic(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the offset is taken; let time pass
	for range 100 {
		var before, after unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &before); err != nil {
			t.Fatal(err)
		}
		got, err := monotonic()
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &after); err != nil {
			t.Fatal(err)
		}
		if got < before.Nano() || got > after.Nano()+int64(5*time.Millisecond) {
			t.Fatalf("monotonic() = %d, CLOCK_MONOTONIC went from %d to %d", got, before.Nano(), after.Nano())
		}
	}
}
