//go:build linux

package ringbench

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Pin pins every thread of this process to the CPU that SHMMAP_PEERS_PIN
// gives the parent (the first CPU this process may use) or the child (the
// same with "same", the second with "split"), and returns the mode ("" when
// unset). Threads made later inherit it from the thread that makes them.
func Pin(child bool) (string, error) {
	mode := os.Getenv(PinEnv)
	if mode == "" {
		return "", nil
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return "", err
	}
	var cpus []int
	for c := 0; c < len(set)*64 && len(cpus) < 2; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
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
	set.Zero()
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
