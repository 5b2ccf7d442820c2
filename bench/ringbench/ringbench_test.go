package ringbench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shmmap-go/shmmap"
)

// TestSum: sum (SSE2 on amd64) agrees with the plain loop on every
// length the payloads have, with words that carry out of 64 bits.
func TestSum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 1<<16+32)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for n := 0; n <= len(b); n += 32 {
		for _, off := range []int{0, 8} { // aligned, and not to 16
			if off+n > len(b) {
				continue
			}
			if got, want := sum(b[off:off+n]), sumGo(b[off:off+n]); got != want {
				t.Fatalf("sum of %d bytes at %d = %#x, want %#x", n, off, got, want)
			}
		}
	}
}

// TestPayload: a message that Send would write checks as message i and as
// no other.
func TestPayload(t *testing.T) {
	for _, size := range []int{32, 64, 4096, 1 << 20} {
		p := NewPayload(size)
		b := append([]byte(nil), p.pattern...)
		stamp(b, 7)
		if err := p.verify(b, 7); err != nil {
			t.Errorf("%d bytes: %v", size, err)
		}
		if err := p.verify(b, 8); err == nil {
			t.Errorf("%d bytes: message 7 checks as 8", size)
		}
		b[size/2]++
		if err := p.verify(b, 7); err == nil {
			t.Errorf("%d bytes: a changed byte goes unseen", size)
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, size := range []int{4096, 1 << 20} {
		p := NewPayload(size)
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				sum(p.pattern)
			}
		})
	}
}

func BenchmarkChecksumGo(b *testing.B) {
	p := NewPayload(1 << 20)
	b.SetBytes(1 << 20)
	for b.Loop() {
		sumGo(p.pattern)
	}
}

// TestSharePayload: the payload another process opens by key is the one
// made, checks what the maker sends, and both release cleanly; a size that
// is not a multiple of 32 is refused.
func TestSharePayload(t *testing.T) {
	key, p, err := SharePayload(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer shmmap.Release(key)
	q, err := OpenPayload(key, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if q.base != p.base || !bytes.Equal(q.pattern, NewPayload(4096).pattern) {
		t.Fatal("the opened payload differs from the one made")
	}
	b := make([]byte, 4096)
	copyCached(b, p.pattern)
	stamp(b, 9)
	if err := q.verify(b, 9); err != nil {
		t.Error(err)
	}
	if err := shmmap.Release(key); err != nil { // the reader's mapping, then the maker's
		t.Fatal(err)
	}
	if _, err := OpenPayload(key, 4096); err == nil {
		t.Error("a released payload opened")
	}
	if _, err := OpenPayload(key, 100); err == nil {
		t.Error("a payload of 100 bytes opened")
	}
}
