package shmmap

import (
	"fmt"
	"unsafe"
)

// Number is the fixed-size numeric types that View can see bytes as: those
// whose layout NumPy (int8 ... float64) and JavaScript's typed arrays
// (Int8Array ... Float64Array, BigInt64Array) share with Go.
type Number interface {
	~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// View returns the memory of b as a []T, without copying: writes through
// either slice are seen through the other, and by other processes mapping
// the same segment. Values are in the machine's native byte order (little
// endian on amd64 and arm64), which is what NumPy's default dtypes and
// JavaScript's typed arrays use on the same machine. The view is valid as
// long as b is, that is until Release.
//
// len(b) must be a multiple of T's size, else the error wraps
// ErrInvalidSize, and b's address a multiple of T's size too (its natural
// alignment), else it wraps ErrAlignment. That is stricter than Go's own
// rule on 32-bit systems, where a uint64 may sit at a multiple of 4: the
// same offsets then work on every system, and for sync/atomic, which needs
// 64-bit words 8-aligned everywhere. A segment's start is page-aligned, so a
// view at offset 0, or at any offset that is a multiple of 8, suits every T.
//
// sync/atomic works across processes on an aligned 32- or 64-bit word of a
// shared segment: atomic.AddUint64(&View[uint64](data)[0], 1) in two
// processes at once loses no increment.
func View[T Number](b []byte) ([]T, error) {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(b)%size != 0 {
		return nil, fmt.Errorf("%w: %d bytes are not a whole number of %d-byte %T values", ErrInvalidSize, len(b), size, zero)
	}
	if len(b) == 0 {
		return []T{}, nil
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if uintptr(p)%uintptr(size) != 0 {
		return nil, fmt.Errorf("%w: address %p is not a multiple of %d, the size of %T", ErrAlignment, p, size, zero)
	}
	return unsafe.Slice((*T)(p), len(b)/size), nil
}

// Bytes returns the memory of s as bytes, without copying: the inverse of
// View. It cannot fail; a nil or empty s gives an empty, non-nil slice. The
// result is valid as long as s is.
func Bytes[T Number](s []T) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero)))
}
