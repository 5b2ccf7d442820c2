package wake

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func gettid() int { return 0 }

// cancelWakesAll: a canceller wakes every waiter on the word (wakeTag: xnu
// has no bitsets), so a Wait that cannot be cancelled may see it.
const cancelWakesAll = true

// unmappedErr is Wake's error for an address not mapped: __ulock_wake, and
// os_sync_wake_by_address_* above it, find no VM object for a SHARED word
// there (bsd/kern/sys_ulock.c: ulock_wake, uaddr_findobj).
const unmappedErr = unix.EINVAL

// waitAsleep gives thread tid of process pid time to fall asleep: macOS
// shows no other process' system calls, so it only waits.
func waitAsleep(t testing.TB, pid, tid int, w *uint32) { time.Sleep(200 * time.Millisecond) }

// allowedCPUs and pinProcess: macOS has no CPU affinity to set.
func allowedCPUs() ([]int, error)                    { return nil, errors.ErrUnsupported }
func pinProcess(cpu int) (restore func(), err error) { return nil, errors.ErrUnsupported }
