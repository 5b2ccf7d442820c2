//go:build !amd64 && !arm64

package ring

// pause does nothing where no hint is wired up: the spin loads on.
func pause() {}
