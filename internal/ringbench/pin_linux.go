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

// cpusEnv passes the first two CPUs the parent could use to its children.
const cpusEnv = "SHMMAP_PEERS_PIN_CPUS"

// Pin pins every thread of this process to the CPU that SHMMAP_PEERS_PIN
// gives the parent (the first CPU this process may use) or the child (the
// same with "same", the second with "split"), and returns the mode ("" when
// unset). Threads made later inherit it from the thread that makes them.
//
// Pinning fixes where the two processes run; it is not meant to change
// what the Go runtime does, so Pin keeps GOMAXPROCS at the value this
// process started with, the number of CPUs it could use, and gives it to
// the child through the environment (which started pinned to one CPU, it
// would start with 1). Otherwise the runtime lowers GOMAXPROCS to the one
// CPU of the affinity (since Go 1.25, checked every second, so in the
// middle of a measurement), and with one P every sleep in the futex over
// 20 µs has sysmon take the P from the sleeping thread and hand it on,
// which the waking thread then pays for (runtime/proc.go: retake, and
// exitsyscall). A GOMAXPROCS already in the environment is kept: that is
// how bench/compare measures that case too.
func Pin(child bool) (string, error) {
	mode := os.Getenv(PinEnv)
	if mode == "" {
		return "", nil
	}
	if os.Getenv("GOMAXPROCS") == "" {
		n := runtime.GOMAXPROCS(0)
		runtime.GOMAXPROCS(n) // set, so no longer updated
		os.Setenv("GOMAXPROCS", strconv.Itoa(n))
	}
	// A child inherits the pinned parent's one CPU: the parent passes on
	// the two it found.
	var cpus []int
	if list := os.Getenv(cpusEnv); list != "" {
		for _, f := range strings.Split(list, ",") {
			c, err := strconv.Atoi(f)
			if err != nil {
				return "", fmt.Errorf("%s=%q: %v", cpusEnv, list, err)
			}
			cpus = append(cpus, c)
		}
	} else {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			return "", err
		}
		for c := 0; c < len(set)*64 && len(cpus) < 2; c++ {
			if set.IsSet(c) {
				cpus = append(cpus, c)
			}
		}
		list := fmt.Sprint(cpus[0])
		if len(cpus) > 1 {
			list += fmt.Sprint(",", cpus[1])
		}
		os.Setenv(cpusEnv, list)
	}
	cpu := cpus[0]
	switch {
	case mode == "same":
	case mode == "split" && len(cpus) == 2:
		if child {
			cpu = cpus[1]
		}
	default:
		return "", fmt.Errorf("%s must be same or split (split needs 2 CPUs)", PinEnv)
	}
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return "", err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return "", err
		}
	}
	return strings.TrimSpace(mode), nil
}
