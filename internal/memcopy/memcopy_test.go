package memcopy

import (
	"bytes"
	"fmt"
	"testing"
)

// pattern returns n bytes that differ from their neighbours and from
// another call's with a different seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31+i>>8) ^ seed
	}
	return b
}

// TestCopy compares Copy with copy for lengths around every size where it
// changes how it copies (MovsbMin, chunk), at every alignment mod 8 of
// either slice, with dst shorter, as long as and longer than src.
func TestCopy(t *testing.T) {
	sizes := []int{0, 1, 7, 8, 9, 63, 64, 4095, 4096, MovsbMin - 1, MovsbMin, MovsbMin + 1, chunk + 7, 3*chunk + 5}
	for _, n := range sizes {
		for _, skew := range [][2]int{{0, 0}, {1, 0}, {0, 3}, {5, 7}} {
			for _, extra := range []int{-3, 0, 9} {
				dn := max(n+extra, 0)
				t.Run(fmt.Sprintf("%d/%d+%d/%d", n, skew[0], skew[1], dn), func(t *testing.T) {
					src := pattern(n+skew[1], 1)[skew[1]:]
					want := pattern(dn+skew[0], 2)[skew[0]:]
					got := bytes.Clone(want)
					wn := copy(want, src)
					if gn := Copy(got, src); gn != wn {
						t.Fatalf("Copy returned %d, copy %d", gn, wn)
					}
					if i := firstDiff(got, want); i >= 0 {
						t.Fatalf("byte %d of %d: %#x, copy made %#x", i, len(got), got[i], want[i])
					}
				})
			}
		}
	}
}

// TestCopyOverlap: slices that share bytes, dst before src and after it,
// come out as copy leaves them (a forward REP MOVSB would repeat the
// start of src over a dst after it).
func TestCopyOverlap(t *testing.T) {
	for _, n := range []int{100, MovsbMin, 2*chunk + 3} {
		for _, shift := range []int{-4096, -1, 1, 8, 4096} {
			t.Run(fmt.Sprintf("%d/%+d", n, shift), func(t *testing.T) {
				want := pattern(n+8192, 3)
				got := bytes.Clone(want)
				src, dst := 4096, 4096+shift
				wn := copy(want[dst:dst+n], want[src:src+n])
				if gn := Copy(got[dst:dst+n], got[src:src+n]); gn != wn {
					t.Fatalf("Copy returned %d, copy %d", gn, wn)
				}
				if i := firstDiff(got, want); i >= 0 {
					t.Fatalf("byte %d: %#x, copy made %#x", i, got[i], want[i])
				}
			})
		}
	}
}

// TestCopyNil: nil and empty slices copy nothing and touch nothing.
func TestCopyNil(t *testing.T) {
	b := []byte{1, 2, 3}
	if n := Copy(nil, b); n != 0 {
		t.Fatalf("Copy(nil, b) = %d", n)
	}
	if n := Copy(b, nil); n != 0 || !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Fatalf("Copy(b, nil) = %d, b = %v", n, b)
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
