//go:build linux && !(amd64 || arm64 || riscv64 || ppc64 || ppc64le)

package shm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Fstat, fcntlLock and mmapFD through x/sys on the Linux architectures that
// sys_linux_raw.go does not serve, where the calls differ: fstat64, fcntl64
// and mmap2 on 32-bit systems, a kernel stat struct that x/sys converts on
// mips64 and loong64, old_mmap's argument block on s390x. The cost is the
// scheduler hand-off that the raw calls avoid.

func Fstat(fd int, st *unix.Stat_t) error { return unix.Fstat(fd, st) }

func fcntlLock(fd, cmd int, lk *unix.Flock_t, wait bool) error {
	return unix.FcntlFlock(uintptr(fd), cmd, lk)
}

func mmapFD(fd, size, prot, flags int) (unsafe.Pointer, error) {
	return unix.MmapPtr(fd, 0, nil, uintptr(size), prot, flags)
}
