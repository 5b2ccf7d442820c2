package memcopy

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// fastMovsb: the CPU says that REP MOVSB is fast (ERMS, CPUID leaf 7).
var fastMovsb = cpu.X86.HasERMS

// movsb copies len(dst) bytes, len(dst) == len(src) > 0, from src to dst,
// which do not overlap, with REP MOVSB (movsb_amd64.s).
func movsb(dst, src []byte) { repMovsb(unsafe.SliceData(dst), unsafe.SliceData(src), len(dst)) }

//go:noescape
func repMovsb(dst, src *byte, n int)
