#include "textflag.h"

// func pause()
//
// YIELD hints that this is a spin-wait loop (Arm ARM, YIELD), as the Go
// runtime's own spin (runtime.procyield) does on arm64.
TEXT ·pause(SB), NOSPLIT|NOFRAME, $0-0
	YIELD
	RET
