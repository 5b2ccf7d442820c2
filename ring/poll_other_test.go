//go:build !linux

package ring

import (
	"testing"
	"time"
)

// waitInFutex gives a goroutine that has said it sleeps time to get into
// the kernel: this system does not show where a thread blocks.
func waitInFutex(t *testing.T, w *uint32) { time.Sleep(10 * time.Millisecond) }
