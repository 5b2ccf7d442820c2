//go:build amd64 || arm64

package ring

// pause hints to the CPU that the caller spins on a word (spinWhile).
//
//go:noescape
func pause()
