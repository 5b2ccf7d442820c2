package ringbench

// sum returns the sum of the 64-bit words of b, whose length is a multiple
// of 32, in SSE2 (sum_amd64.s): the C peers' checksum compiles to it, and
// Go's compiler does not vectorize, which made its loop take twice as long
// as theirs on a 1 MiB message.
//
//go:noescape
func sum(b []byte) uint64
