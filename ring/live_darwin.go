//go:build darwin

package ring

import (
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/shmmap-go/shmmap"
	"golang.org/x/sys/unix"
)

// Liveness on macOS (see the package documentation): its POSIX shm objects
// take no locks. xnu's flock(2) and fcntl(2) F_SETLK/F_GETLK act only on
// files of type DTYPE_VNODE (bsd/kern/kern_descrip.c: sys_flock gets its
// vnode through fp_getfvp, which returns ENOTSUP for any other type, and
// fcntl's lock commands refuse any other type too), and a shm_open fd is a
// DTYPE_PSXSHM (bsd/kern/posix_shm.c); not yet checked on a Mac. So each
// end records its pid and start time in the header, and the other asks the
// kernel whether that process still runs: kill(pid, 0), then sysctl
// kern.proc.pid.<pid> for its state and its start time (which tells a
// reused pid from the original). A process that has exited but is not yet
// reaped, a zombie, passes both: kill returns 0 for it (bsd/kern/kern_sig.c,
// kill: pzfind) and the sysctl lists it (sysctl_prochandle iterates
// PROC_ZOMBPROCLIST); so p_stat SZOMB counts as dead. proc_exit
// (bsd/kern/kern_exit.c), run by the task's last thread to terminate, sets
// it after closing the process' files. macOS has no pid namespaces: a pid
// means the same process in every process of the machine.

// A watch on macOS needs nothing of its own: the end's handle holds the
// segment, and the pids are in the header.
type watch struct{}

func watchOf(m *shmmap.Mapping, creator bool) (watch, error) { return watch{}, nil }

func (w watch) peerAlive(seg []byte, creator bool) bool {
	offPID, offTime := offCreatorPID, offCreatorTime
	if creator {
		offPID, offTime = offOpenerPID, offOpenerTime
	}
	pid := int(atomic.LoadUint32(word(seg, offPID)))
	start := *(*uint64)(unsafe.Pointer(&seg[offTime]))
	if pid <= 0 {
		return true
	}
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return false
	}
	t, zombie, ok := process(pid)
	if !ok {
		return true // the kernel does not tell: a wrong "gone" would end a healthy stream
	}
	if zombie {
		return false // dead, not yet reaped
	}
	return start == 0 || t == start // a pid reused by another process has another start time
}

func self() (pid uint32, start uint64) {
	p := os.Getpid()
	start, _, _ = process(p)
	return uint32(p), start
}

// sZomb is p_stat's value for a process that has exited and awaits its
// parent's wait: SZOMB in bsd/sys/proc.h.
const sZomb = 5

// process asks sysctl kern.proc.pid.<pid> about process pid: its start time
// in µs since 1970 and whether it is a zombie. ok is false if the kernel
// does not tell (no such pid, or the call failed).
func process(pid int) (start uint64, zombie, ok bool) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || kp == nil {
		return 0, false, false
	}
	tv := kp.Proc.P_starttime
	return uint64(tv.Sec)*1e6 + uint64(tv.Usec), kp.Proc.P_stat == sZomb, true
}
