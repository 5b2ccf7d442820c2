package testproc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// zombie reads /proc/PID/stat (proc_pid_stat(5)): state Z, and one thread
// left. The thread group's leader, whose state the file shows, turns Z when
// it exits while other threads may still be exiting, with the process'
// files still open; each thread that has gone is no longer counted, and the
// leader stays counted until it is reaped. The fields start after the
// command, which is in parentheses and may hold ") " itself.
func zombie(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false, err
	}
	f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
	if len(f) < 18 {
		return false, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	threads, err := strconv.Atoi(string(f[17])) // num_threads, field 20
	if err != nil {
		return false, fmt.Errorf("/proc/%d/stat: num_threads: %v", pid, err)
	}
	return string(f[0]) == "Z" && threads == 1, nil
}
