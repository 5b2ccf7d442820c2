//go:build darwin

package shmmap

import "errors"

// macOS has no liveness to keep: it cannot list shm names, so there is no
// Sweep to tell a live creator from a dead one (see holdsName), and List
// and Sweep never reach creatorHolds or reap.

func lockCreator(fd int) error { return nil }

func creatorHolds(name string) (held, ok bool) { return false, false }

func reap(name string) (bool, error) { return false, errors.ErrUnsupported }
