// Package memcopy copies bytes into shared memory that another process
// reads next, the way the C library's memcpy does, where Go's copy does
// not.
//
// On amd64, Go's copy writes a copy of 1 MiB or more with non-temporal
// stores (runtime/memmove_amd64.s: gobble_big_data_fwd) unless the CPU is
// an Intel one with ERMS and FSRM and the destination is 16-byte aligned
// (then it uses REP MOVSQ: runtime/cpuflags_amd64.go). Non-temporal stores
// bypass the cache, so the process that reads the message next finds it in
// memory, not in the shared cache, and a ping-pong of 1 MiB messages takes
// about twice as long as C's (BENCHMARKS.md). A ring's messages start
// 16-byte aligned, for the Intel exception; on every other amd64 CPU
// the copy bypasses the cache. glibc's memcpy keeps such copies
// cached with REP MOVSB up to a threshold of a fraction of the last-level
// cache (sysdeps/x86/dl-cacheinfo.h: rep_movsb_stop_threshold). Copy does
// the same where the CPU has fast REP MOVSB (ERMS), and is copy everywhere
// else, and under the race detector, which does not see REP MOVSB.
//
// Use Copy for what another process will read soon (a message put into a
// ring); copy is as fast for everything else, and for copies smaller than
// MovsbMin on every CPU.
package memcopy

import "unsafe"

// MovsbMin is the smallest copy that Copy makes with REP MOVSB: below it,
// Go's copy is as fast (BENCHMARKS.md, "memcopy").
const MovsbMin = 1 << 20

// chunk bounds one REP MOVSB: an instruction runs to its end before the
// runtime can preempt its goroutine, so a long copy goes in pieces, each
// short next to the runtime's time slice.
const chunk = 1 << 20

// Copy copies min(len(dst), len(src)) bytes from src to dst and returns
// that count, as copy does, overlapping slices included. It differs from
// copy only in how it moves the bytes (see the package documentation).
func Copy(dst, src []byte) int {
	n := min(len(dst), len(src))
	if n < MovsbMin || !fastMovsb || raceEnabled || overlap(dst[:n], src[:n]) {
		return copy(dst, src)
	}
	// REP MOVSB is fastest into a 64-byte-aligned destination; glibc
	// aligns it the same way (memmove-vec-unaligned-erms.S).
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(dst)))) & 63
	copy(dst[:off], src)
	for ; off < n; off += chunk {
		end := min(off+chunk, n)
		movsb(dst[off:end], src[off:end])
	}
	return n
}
