#include "textflag.h"

// func pause()
//
// ISB SY ($15), as Go 1.26's own spin does between its reads of the
// counter (runtime·procyieldAsm in src/runtime/asm_arm64.s, after the Arm
// advice it cites): YIELD is a hint that cores without SMT ignore, while
// ISB holds the core until its pipeline refills, so the spin issues fewer
// loads of the line that the other core is about to write.
TEXT ·pause(SB), NOSPLIT|NOFRAME, $0-0
	ISB	$15
	RET
