package testproc

import (
	"bytes"
	"fmt"
	"os"
)

// zombie reads the state of process pid from /proc/PID/stat: the field
// after the command, which is in parentheses and may itself hold ") ";
// "Z" for a zombie (proc_pid_stat(5)).
func zombie(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	return b[i+2] == 'Z', nil
}
