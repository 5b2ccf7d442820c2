//go:build linux && (amd64 || arm64 || riscv64 || ppc64 || ppc64le)

package shm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// On these architectures the kernel's fstat fills the very struct that
// unix.Stat_t declares, struct flock is unix.Flock_t, and mmap takes its
// six arguments in registers, as x/sys's own wrappers assume
// (zsyscall_linux_$GOARCH.go), so the calls can be raw (see sys_linux.go).
// sys_linux_xsys.go serves every other Linux architecture; the two build
// constraints are complements, and a gap or an overlap fails the build.

func Fstat(fd int, st *unix.Stat_t) error {
	_, err := syscall6(true, unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0, 0, 0, 0)
	return err
}

// fcntlLock sets or tests a lock; wait is true for F_OFD_SETLKW.
func fcntlLock(fd, cmd int, lk *unix.Flock_t, wait bool) error {
	_, err := syscall6(!wait, unix.SYS_FCNTL, uintptr(fd), uintptr(cmd), uintptr(unsafe.Pointer(lk)), 0, 0, 0)
	return err
}

func mmapFD(fd, size, prot, flags int) (unsafe.Pointer, error) {
	raw := flags&unix.MAP_POPULATE == 0 || bounded(int64(size))
	p, err := syscall6(raw, unix.SYS_MMAP, 0, uintptr(size), uintptr(prot), uintptr(flags), uintptr(fd), 0)
	if err != nil {
		return nil, err
	}
	// The address is outside the Go heap; the double conversion tells vet
	// that this uintptr is not a Go pointer that could have moved.
	return *(*unsafe.Pointer)(unsafe.Pointer(&p)), nil
}
