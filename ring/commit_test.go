package ring

import (
	"context"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"
)

// TestCommitShorter: Commit(m) of a reservation of more sends the first m
// bytes as the message, and tail moves by the record of m bytes (and the
// padding before it), not by the room reserved; the next message follows
// it. Each case reserves in the middle of the buffer and after a padding
// record that goes with the message.
func TestCommitShorter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		at      int // the tail, by records of 32 bytes (and at 224, by one of 224)
		reserve int
		commit  []int
		wantPad int
	}{
		{"middle", 32, 200, []int{0, 1, 15, 16, 17, 100, 199, 200}, 0},
		{"after-padding", 224, 200, []int{0, 1, 15, 16, 17, 200}, 32},
	} {
		for _, m := range tc.commit {
			p, c := pair(t, 256)
			if tc.at == 224 {
				send(t, p, 200, 0)
				receive(t, c, 200, 0)
			}
			for i := 0; p.tail != uint32(tc.at); i++ {
				send(t, p, 10, uint64(i))
				receive(t, c, 10, uint64(i))
			}
			b, err := p.Reserve(context.Background(), tc.reserve)
			if err != nil {
				t.Fatal(err)
			}
			fill(b, 7)
			p.Commit(m)
			want := uint32(tc.at + tc.wantPad + recordHead + align(m))
			if got := atomic.LoadUint32(p.e.tail); got != want {
				t.Fatalf("%s: Commit(%d) of %d reserved: tail %d, want %d", tc.name, m, tc.reserve, got, want)
			}
			receive(t, c, m, 7)
			noMessage(t, c)
			send(t, p, 20, 8) // where the room of m bytes ends
			receive(t, c, 20, 8)
		}
	}
}

// TestCommitShorterClears: the bytes of a reservation past what Commit
// sends may hold anything, stamps of this lap included: the stamp word
// cleared is the one at the position after the message committed, so that
// the consumer takes the message and then finds no record. Both with the
// message in the middle of the buffer and after a padding record.
func TestCommitShorterClears(t *testing.T) {
	for _, low := range []uint32{kindMessage, kindPadding} {
		for _, padded := range []bool{false, true} {
			for _, m := range []int{0, 1, 8, 9, 50, 100} {
				p, c := pair(t, 256)
				n := p.MaxMessage()
				if padded {
					send(t, p, 200, 0)
					receive(t, c, 200, 0)
					n = 200 // with the 32 bytes of padding, the whole ring
				}
				b, err := p.Reserve(context.Background(), n)
				if err != nil {
					t.Fatal(err)
				}
				msg := p.tail + uint32(p.pad)
				for x := 0; x+8 <= len(b); x += recordAlign { // the heads of records at every later position
					putHead(b, x, 0, stampOf(msg+uint32(recordHead+x))|low)
				}
				p.Commit(m)
				got, err := c.Next(context.Background())
				if err != nil || len(got) != m {
					t.Fatalf("Next after Commit(%d): %d bytes, %v", m, len(got), err)
				}
				c.Release()
				nothingNext(t, c)
			}
		}
	}
}

// TestCommitOutOfRange: Commit of a negative length, or of more than was
// reserved, panics and says so, and sends nothing.
func TestCommitOutOfRange(t *testing.T) {
	p, c := pair(t, 256)
	for _, m := range []int{-1, 11, math.MaxInt, math.MinInt} {
		b, err := p.Reserve(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		fill(b, 0)
		err = noPanic(func() { p.Commit(m) })
		if err == nil || !strings.Contains(err.Error(), "ring: Commit(") {
			t.Errorf("Commit(%d) of a reservation of 10 bytes: %v, want a panic", m, err)
		}
		if got := atomic.LoadUint32(p.e.tail); got != 0 {
			t.Fatalf("Commit(%d) moved tail to %d", m, got)
		}
		nothingNext(t, c)
	}
}

// TestAbort: Abort drops the reservation: nothing reaches the consumer,
// tail stays, Commit then panics, and the next Reserve returns the same
// bytes; Abort without a reservation, twice, or on a closed end does
// nothing.
func TestAbort(t *testing.T) {
	p, c := pair(t, 256)
	send(t, p, 10, 0)
	receive(t, c, 10, 0)
	p.Abort() // no reservation
	b, err := p.Reserve(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	fill(b, 1)
	p.Abort()
	p.Abort()
	if got := atomic.LoadUint32(p.e.tail); got != 32 || p.tail != 32 {
		t.Fatalf("tail %d (this end's %d) after Abort, want 32", got, p.tail)
	}
	nothingNext(t, c)
	if err := noPanic(func() { p.Commit(0) }); err == nil {
		t.Fatal("Commit after Abort did not panic")
	}
	b2, err := p.Reserve(context.Background(), 50)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.SliceData(b2) != unsafe.SliceData(b) {
		t.Fatal("the Reserve after Abort starts elsewhere than the aborted one")
	}
	fill(b2, 2)
	p.Commit(len(b2))
	receive(t, c, 50, 2)
	p.Close()
	if err := noPanic(p.Abort); err != nil {
		t.Fatalf("Abort on a closed end: %v", err)
	}
}

// TestAbortAfterPadding: a Reserve that published a padding record alone
// (the padding and the message did not fit together) and is then aborted
// leaves the padding published, which the consumer passes by, and the next
// Reserve starts at the buffer's start.
func TestAbortAfterPadding(t *testing.T) {
	p, c := pair(t, 256)
	send(t, p, 200, 0)
	receive(t, c, 200, 0)
	ctx, cancel := context.WithCancel(context.Background())
	next := make(chan error, 1)
	go func() { // passes the padding, then waits for a message
		_, err := c.Next(ctx)
		next <- err
	}()
	b, err := p.Reserve(context.Background(), 256-recordHead) // padding of 32, then 256: apart
	if err != nil {
		t.Fatal(err)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(b))) != uintptr(unsafe.Pointer(&p.e.buf[recordHead])) {
		t.Fatal("the message is not at the buffer's start")
	}
	p.Abort()
	cancel()
	if err := <-next; err != context.Canceled {
		t.Fatalf("Next: %v, want context.Canceled", err)
	}
	if got := atomic.LoadUint32(p.e.tail); got != 256 {
		t.Fatalf("tail %d after Abort, want 256: the padding stays published", got)
	}
	nothingNext(t, c)
	send(t, p, 30, 1)
	if p.tail != 256+recordHead+32 {
		t.Fatalf("tail %d after a message of 30 bytes, want %d", p.tail, 256+recordHead+32)
	}
	receive(t, c, 30, 1)
}
