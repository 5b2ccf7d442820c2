//go:build darwin

package shm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// On macOS only libSystem is a stable interface, so every call goes through
// x/sys, which calls it; sys_linux.go says why Linux makes some of them raw.

func Fstat(fd int, st *unix.Stat_t) error { return unix.Fstat(fd, st) }

func mmapFD(fd, size, prot, flags int) (unsafe.Pointer, error) {
	return unix.MmapPtr(fd, 0, nil, uintptr(size), prot, flags)
}

func Munmap(b []byte, segSize int64) error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}

func CloseFD(fd int) { unix.Close(fd) }

// CloseFile closes fd, whose file may go with it; size decides raw calls
// on Linux.
func CloseFile(fd int, size int64) { unix.Close(fd) }

// scmPIDFD is no control message: macOS has no pidfds. (Its type -1 is
// none that xnu writes; type 4 there is SCM_TIMESTAMP_MONOTONIC.)
const scmPIDFD = -1
