//go:build darwin || (linux && !(amd64 || arm64 || riscv64 || ppc64 || ppc64le))

package shmmap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstat and mmapFD through x/sys, which knows each system's calls: on macOS
// only libSystem is a stable interface, and on Linux outside raw_linux.go's
// architectures the calls differ (fstat64 and mmap2 on 32-bit systems, a
// kernel stat struct that x/sys converts on mips64 and loong64, old_mmap's
// argument block on s390x). The cost is the scheduler hand-off that the raw
// calls of raw_linux.go avoid.

func fstat(fd int, st *unix.Stat_t) error {
	return unix.Fstat(fd, st)
}

func mmapFD(fd, size, prot, flags int) (unsafe.Pointer, error) {
	return unix.MmapPtr(fd, 0, nil, uintptr(size), prot, flags)
}
