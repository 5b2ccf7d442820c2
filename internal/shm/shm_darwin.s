//go:build darwin && (amd64 || arm64)

// Trampolines to libSystem's shm_open and shm_unlink, called through
// syscall.syscall; see shm_darwin.go. The same text assembles on amd64 and
// arm64.

#include "textflag.h"

TEXT libc_shm_open_trampoline<>(SB),NOSPLIT,$0-0
	JMP	libc_shm_open(SB)
GLOBL	·libc_shm_open_trampoline_addr(SB), RODATA, $8
DATA	·libc_shm_open_trampoline_addr(SB)/8, $libc_shm_open_trampoline<>(SB)

TEXT libc_shm_unlink_trampoline<>(SB),NOSPLIT,$0-0
	JMP	libc_shm_unlink(SB)
GLOBL	·libc_shm_unlink_trampoline_addr(SB), RODATA, $8
DATA	·libc_shm_unlink_trampoline_addr(SB)/8, $libc_shm_unlink_trampoline<>(SB)
