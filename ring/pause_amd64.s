#include "textflag.h"

// func pause()
//
// PAUSE tells the core that this is a spin-wait loop: it waits some cycles
// without issuing loads, so the spinning core takes less of the cache
// line's bandwidth from the core about to write it, and leaves the loop
// without the memory-order misspeculation that a tight load loop incurs
// (Intel SDM vol. 2B, PAUSE; as the C peers' spinning ring does).
TEXT ·pause(SB), NOSPLIT|NOFRAME, $0-0
	PAUSE
	RET
