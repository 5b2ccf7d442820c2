//go:build darwin && (amd64 || arm64)

// Trampolines to libSystem's dlsym, __ulock_wait2 and __ulock_wake, called
// through syscall.syscall; see wake_darwin.go. The same text assembles on
// amd64 and arm64.

#include "textflag.h"

TEXT libc_dlsym_trampoline<>(SB),NOSPLIT,$0-0
	JMP	libc_dlsym(SB)
GLOBL	·libc_dlsym_trampoline_addr(SB), RODATA, $8
DATA	·libc_dlsym_trampoline_addr(SB)/8, $libc_dlsym_trampoline<>(SB)

TEXT libc___ulock_wait2_trampoline<>(SB),NOSPLIT,$0-0
	JMP	libc___ulock_wait2(SB)
GLOBL	·libc___ulock_wait2_trampoline_addr(SB), RODATA, $8
DATA	·libc___ulock_wait2_trampoline_addr(SB)/8, $libc___ulock_wait2_trampoline<>(SB)

TEXT libc___ulock_wake_trampoline<>(SB),NOSPLIT,$0-0
	JMP	libc___ulock_wake(SB)
GLOBL	·libc___ulock_wake_trampoline_addr(SB), RODATA, $8
DATA	·libc___ulock_wake_trampoline_addr(SB)/8, $libc___ulock_wake_trampoline<>(SB)
