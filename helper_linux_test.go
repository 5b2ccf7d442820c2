//go:build linux

package shmmap

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

// held is what a process holds of shared memory, files in /dev/shm and
// memfds, as /proc shows it.
type held struct {
	fdCount int      // every open fd
	fds     []string // "N -> /dev/shm/NAME" for each fd on a file there (an O_TMPFILE's reads "/dev/shm/#INO (deleted)"), "N -> /memfd:NAME (deleted)" for a memfd
	maps    []string // the lines of its maps that map such a file, sorted
}

// heldBy reads what process pid (0: this one) holds of shared memory. It is
// the one place where the tests read a process's fds and mappings.
func heldBy(pid int) (held, error) {
	proc := "/proc/self"
	if pid != 0 {
		proc = fmt.Sprintf("/proc/%d", pid)
	}
	var h held
	ents, err := os.ReadDir(proc + "/fd")
	if err != nil {
		return h, err
	}
	for _, e := range ents {
		target, err := os.Readlink(proc + "/fd/" + e.Name())
		if err != nil {
			continue // the fd ReadDir itself used, closed by now
		}
		h.fdCount++
		if strings.HasPrefix(target, shm.Dir+"/") || strings.HasPrefix(target, "/memfd:") {
			h.fds = append(h.fds, e.Name()+" -> "+target)
		}
	}
	if pid == 0 {
		h.fdCount-- // ReadDir's own fd, listed but closed
	}
	maps, err := os.ReadFile(proc + "/maps")
	if err != nil {
		return h, err
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if strings.Contains(line, " "+shm.Dir+"/") || strings.Contains(line, " /memfd:") {
			h.maps = append(h.maps, line)
		}
	}
	slices.Sort(h.maps)
	return h, nil
}

// nothing fails unless h holds nothing of shared memory.
func (h held) nothing() error {
	if len(h.fds) > 0 || len(h.maps) > 0 {
		return fmt.Errorf("fds on shared memory %s, mappings %s", brief(h.fds), brief(h.maps))
	}
	return nil
}

// segmentSize is the size fstat reports of a segment made with size bytes,
// which Read(key, 0) maps: on Linux, the same.
func segmentSize(size int) int { return size }

// inMountNamespace runs helper name in a private mount namespace, where it
// may mount a small tmpfs of its own on /dev/shm, and returns what it
// printed, stdout and stderr. It skips t where no mount namespace can be
// made, and fails it if the helper fails.
func inMountNamespace(t *testing.T, name string) string {
	t.Helper()
	cmd := helperCommand(t, name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot make a mount namespace here: %v", err)
	}
	if err != nil {
		t.Fatalf("helper %s: %v\n%s", name, err, out)
	}
	return string(out)
}

// helperWithin is helperCommand with a deadline of its own.
func helperWithin(t testing.TB, d time.Duration, name string, args ...string) *exec.Cmd {
	t.Helper()
	return helpers.Command(t, d, name, args...)
}

// openFile opens the file of segment key as Map keeps it, read-write or
// read-only, for tests that need the file itself.
func openFile(key string, writable bool) (*os.File, error) {
	name, err := normalize(key)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	fd, err := shm.OpenSegment(name, key, writable, &st)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), key), nil
}

// filterSyscall installs a seccomp filter, with flags, that answers every
// call of syscall nr with action and lets every other call through, and
// returns what seccomp(2) returns: the listener for
// SECCOMP_FILTER_FLAG_NEW_LISTENER.
func filterSyscall(nr int, action uint32, flags int) (uintptr, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("no_new_privs: %w", err)
	}
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(nr), Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: action},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return 0, fmt.Errorf("seccomp: %w", errno)
	}
	return r, nil
}
