//go:build darwin

package ringbench

import (
	"errors"
	"os"
)

// Pin fails on macOS when SHMMAP_PEERS_PIN is set: macOS has no
// sched_setaffinity (thread affinity there is only a hint, by tag).
func Pin(child bool) (string, error) {
	if os.Getenv(PinEnv) == "" {
		return "", nil
	}
	return "", errors.New("ringbench: pinning to CPUs needs Linux")
}
