//go:build darwin

package shmmap

import "os"

// macOS keeps segments in no directory (shm.Dir is empty), and has no
// /proc: the tests that look at files there or at a process's fds run on
// Linux only (checkLeaks checks nothing on macOS).

type held struct {
	fdCount   int
	fds, maps []string
}

func heldBy(pid int) (held, error) { return held{}, nil }

// segmentSize is the size fstat reports of a segment made with size bytes,
// which Read(key, 0) maps: on macOS, whole pages (pshm_truncate in xnu's
// bsd/kern/posix_shm.c rounds the length up to the page size).
func segmentSize(size int) int {
	page := os.Getpagesize()
	return (size + page - 1) / page * page
}
