#include "textflag.h"

// func sum(b []byte) uint64
//
// The sum of b's 64-bit words, len(b) a multiple of 32: two SSE2 lanes of
// two words each, 32 bytes a round, the loop gcc -O2 makes of the peers'
// checksum (../shared/peers/c/msg.c; its two PADDQs per 32 bytes show in
// objdump -d of the built msgbench).
TEXT ·sum(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	PXOR X0, X0
	PXOR X1, X1
	SHRQ $5, CX
	JZ   done

loop:
	MOVOU 0(SI), X2
	MOVOU 16(SI), X3
	PADDQ X2, X0
	PADDQ X3, X1
	ADDQ  $32, SI
	DECQ  CX
	JNZ   loop

done:
	PADDQ  X1, X0
	MOVQ   X0, AX
	PSRLDQ $8, X0
	MOVQ   X0, BX
	ADDQ   BX, AX
	MOVQ   AX, ret+24(FP)
	RET
