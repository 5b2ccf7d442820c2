package bytesum

import "testing"

func TestSum(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 1023, 1024, 1025, 100000} {
		b := make([]byte, n)
		var want uint64
		for i := range b {
			b[i] = byte(255 - i%7)
			want += uint64(b[i])
		}
		if got := Sum(b); got != want {
			t.Errorf("Sum of %d bytes = %d, want %d", n, got, want)
		}
	}
}
