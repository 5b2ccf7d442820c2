//go:build darwin

package shmmap

import (
	"errors"
)

// macOS has no liveness to keep: it cannot list shm names, so there is no
// Sweep to tell a live creator from a dead one (see holdsName), and List
// and Sweep never reach creatorHolds or reap. CreatorOf cannot tell:
// xnu takes no lock on a POSIX shm object (shm_open's fds are
// DTYPE_PSXSHM, and fcntl's lock commands refuse every type but
// DTYPE_VNODE: bsd/kern/kern_descrip.c).

func lockCreator(fd int) error { return nil }

func creatorHolds(name string) (held, ok bool) { return false, false }

func holdsFD(fd int) (held, ok bool) { return false, false }

func reap(name string) (bool, error) { return false, errors.ErrUnsupported }
