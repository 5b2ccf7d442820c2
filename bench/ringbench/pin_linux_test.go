package ringbench

import (
	"os"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// affinities returns the CPU count of each thread of this process.
func affinities(t *testing.T) map[int]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		var set unix.CPUSet
		if unix.SchedGetaffinity(tid, &set) == nil {
			counts[tid] = set.Count()
		}
	}
	return counts
}

// TestPin: Pin puts the calling goroutine's thread, and it alone, on the
// CPU of its side (split: the child on the second), leaves every other
// thread on every CPU, and keeps GOMAXPROCS; with WholeEnv=1 it pins every
// thread.
func TestPin(t *testing.T) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		t.Fatal(err)
	}
	if all.Count() < 2 {
		t.Skip("needs two CPUs")
	}
	t.Cleanup(func() { setAll(&all) })
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, whole := range []bool{false, true} {
		t.Setenv(PinEnv, "split")
		t.Setenv(cpusEnv, "")
		t.Setenv("GOMAXPROCS", "")
		t.Setenv(WholeEnv, map[bool]string{true: "1"}[whole])
		procs := runtime.GOMAXPROCS(0)
		type result struct {
			tid, cpu int
			err      error
		}
		got := make(chan result)
		go func() { // locked to its thread by Pin: the thread ends with it
			mode, err := Pin(true)
			if err == nil && mode != "split" {
				t.Errorf("mode %q", mode)
			}
			var set unix.CPUSet
			unix.SchedGetaffinity(0, &set)
			cpu := -1
			for c := 0; c < len(set)*64; c++ {
				if set.IsSet(c) && set.Count() == 1 {
					cpu = c
				}
			}
			counts := affinities(t)
			for tid, n := range counts {
				if tid == unix.Gettid() {
					continue
				}
				if want := map[bool]int{false: all.Count(), true: 1}[whole]; n != want {
					t.Errorf("whole=%v: thread %d has %d CPUs, want %d", whole, tid, n, want)
				}
			}
			got <- result{unix.Gettid(), cpu, err}
		}()
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		var second int
		for c, seen := 0, 0; c < len(all)*64; c++ {
			if all.IsSet(c) {
				if seen == 1 {
					second = c
				}
				seen++
			}
		}
		if r.cpu != second {
			t.Errorf("whole=%v: the child's worker is on CPU %d, want %d", whole, r.cpu, second)
		}
		if runtime.GOMAXPROCS(0) != procs || os.Getenv("GOMAXPROCS") != strconv.Itoa(procs) {
			t.Errorf("GOMAXPROCS %d (env %q), want %d kept", runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS"), procs)
		}
		setAll(&all)
	}
}
