//go:build darwin

package shm

import (
	"errors"
)

// macOS has no liveness to keep: it cannot list shm names, so there is no
// Sweep to tell a live creator from a dead one (see HoldsName), and List
// and Sweep never reach CreatorHolds or Reap. Nor is there a lock to ask
// about: xnu takes none on a POSIX shm object (shm_open's fds are
// DTYPE_PSXSHM, and fcntl's lock commands refuse every type but
// DTYPE_VNODE: bsd/kern/kern_descrip.c); package ring asks about pids
// there instead.

func lockCreator(fd int) error { return nil }

func CreatorHolds(name string) (held, ok bool) { return false, false }

func Reap(name string) (bool, error) { return false, errors.ErrUnsupported }
