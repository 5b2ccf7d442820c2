//go:build linux

package ringbench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpusEnv passes the CPUs the parent could use, in order, to its children.
const cpusEnv = "SHMMAP_PEERS_PIN_CPUS"

// Pin places this process as SHMMAP_PEERS_PIN asks the peers to place
// theirs: the parent on the first CPU it may use, the child on the same one
// ("same") or on the second ("split"), and returns the mode ("" when
// unset). Call it from the goroutine that then runs the messaging loop: it
// locks that goroutine to its thread, for good, and pins the thread.
//
// What is pinned is the work the C peers' one thread does: the goroutine
// that sends and receives. The Go runtime's other threads (sysmon, idle
// threads, the garbage collector's) keep every CPU the process had, as in
// a program that is not pinned: pinned beside the worker, sysmon preempts
// it on every wake-up from a sleep of more than ~20 µs, which no unpinned
// program sees. For the same reason Pin keeps GOMAXPROCS at the value this
// process started with (the child, started from a pinned thread, gets the
// parent's through the environment); a GOMAXPROCS already in the
// environment is kept. With WholeEnv=1 it pins every thread of the process
// instead, as `taskset` would (set GOMAXPROCS=1 too, which Go would pick
// for one CPU, within a second): bench/compare measures that case as a
// variant of its own.
func Pin(child bool) (string, error) {
	mode := strings.TrimSpace(os.Getenv(PinEnv))
	if mode == "" {
		return "", nil
	}
	if os.Getenv("GOMAXPROCS") == "" {
		n := runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(n) // set, so no longer updated
		os.Setenv("GOMAXPROCS", strconv.Itoa(n))
	}
	cpus, err := allowed()
	if err != nil {
		return "", err
	}
	cpu := cpus[0]
	switch {
	case mode == "same":
	case mode == "split" && len(cpus) >= 2:
		if child {
			cpu = cpus[1]
		}
	default:
		return "", fmt.Errorf("%s must be same or split (split needs 2 CPUs)", PinEnv)
	}
	var one unix.CPUSet
	one.Set(cpu)
	if os.Getenv(WholeEnv) == "1" {
		return mode, setAll(&one)
	}
	// LockOSThread first: it starts the thread that makes the runtime's
	// threads from now on (newm, for a locked thread), which must not
	// inherit the pin.
	runtime.LockOSThread()
	var all unix.CPUSet
	for _, c := range cpus {
		all.Set(c)
	}
	if err := setAll(&all); err != nil { // a child inherits its parent's one CPU
		return "", err
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil { // 0: this thread
		return "", err
	}
	return mode, nil
}

// allowed returns the CPUs the parent process could use, in order: its own
// affinity, or in a child the list the parent left in the environment.
func allowed() ([]int, error) {
	var cpus []int
	if list := os.Getenv(cpusEnv); list != "" {
		for _, f := range strings.Split(list, ",") {
			c, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("%s=%q: %v", cpusEnv, list, err)
			}
			cpus = append(cpus, c)
		}
		return cpus, nil
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var list []string
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
			list = append(list, strconv.Itoa(c))
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("no CPU in this process' affinity")
	}
	os.Setenv(cpusEnv, strings.Join(list, ","))
	return cpus, nil
}

// setAll sets the affinity of every thread of this process, and goes over
// them again until a pass finds each one set so: a thread that another
// makes during a pass inherits its maker's affinity, which may be the old
// one. Threads made later inherit it from the thread that makes them.
func setAll(set *unix.CPUSet) error {
	for range 100 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		changed := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			var cur unix.CPUSet
			if unix.SchedGetaffinity(tid, &cur) == nil && cur == *set {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return err
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("ringbench: threads kept appearing with another CPU affinity")
}
