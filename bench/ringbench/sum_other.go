//go:build !amd64

package ringbench

// sum returns the sum of the 64-bit words of b, whose length is a multiple
// of 32, with four accumulators, as the peers' C does (msg.c: checksum).
func sum(b []byte) uint64 { return sumGo(b) }
