//go:build linux && (amd64 || arm64 || riscv64 || ppc64 || ppc64le)

package shmmap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// On these architectures the kernel's fstat fills the very struct that
// unix.Stat_t declares and mmap takes its six arguments in registers, as
// x/sys's own wrappers assume (zsyscall_linux_$GOARCH.go), so both calls
// can be raw: see "Raw syscalls" in shm_linux.go.

func fstat(fd int, st *unix.Stat_t) error {
	if _, _, errno := unix.RawSyscall(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0); errno != 0 {
		return errno
	}
	return nil
}

func mmapFD(fd, size, prot, flags int) (unsafe.Pointer, error) {
	call := unix.RawSyscall6
	if flags&unix.MAP_POPULATE != 0 && size > rawLimit {
		call = unix.Syscall6
	}
	p, _, errno := call(unix.SYS_MMAP, 0, uintptr(size), uintptr(prot), uintptr(flags), uintptr(fd), 0)
	if errno != 0 {
		return nil, errno
	}
	// The address is outside the Go heap; the double conversion tells vet
	// that this uintptr is not a Go pointer that could have moved.
	return *(*unsafe.Pointer)(unsafe.Pointer(&p)), nil
}
