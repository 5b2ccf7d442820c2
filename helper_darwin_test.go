//go:build darwin

package shmmap

// macOS keeps segments in no directory, and has no /proc: shmDir is empty,
// and the tests that look at files there or at a process's fds run on Linux
// only (checkLeaks checks nothing on macOS).
const shmDir = ""

type held struct {
	fdCount   int
	fds, maps []string
}

func heldBy(pid int) (held, error) { return held{}, nil }

func (h held) nothing() error { return nil }
