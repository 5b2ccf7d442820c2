//go:build !amd64

package memcopy

// Elsewhere Copy is copy: Go's copy makes no non-temporal stores on the
// other architectures (runtime/memmove_*.s).
const fastMovsb = false

func movsb(dst, src []byte) { copy(dst, src) }
