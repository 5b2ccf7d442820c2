package ring

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// TestForgedStamps: a message whose bytes hold, at every 8-byte offset, the
// head a record would have there one lap later (what a hostile or unlucky
// payload may hold) is never taken for a record. On the next lap the
// producer commits 8-byte records one at a time, so that the consumer's head
// stops at each of those offsets with nothing committed there yet: Next must
// find no message, and then the real one.
func TestForgedStamps(t *testing.T) {
	checkLeaks(t)
	p, c := pair(t, 128)
	capacity := uint32(len(p.e.buf))
	b, err := p.Reserve(context.Background(), p.MaxMessage())
	if err != nil {
		t.Fatal(err)
	}
	for x := 0; x+8 <= len(b); x += 8 {
		pos := capacity + uint32(recordHead+x) // the position of this offset one lap on
		*(*uint64)(unsafe.Pointer(&b[x])) = headWords(3, stampOf(pos)|kindMessage)
	}
	p.Commit()
	m, err := c.Next(context.Background())
	if err != nil || len(m) != p.MaxMessage() {
		t.Fatalf("Next: %d bytes, %v", len(m), err)
	}
	c.Release()

	done, cancel := context.WithCancel(context.Background())
	cancel()
	for i := uint64(0); c.head < 2*capacity-recordHead; i++ {
		if m, err := c.Next(done); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next at position %d, before the producer wrote there: %q, %v; want no message", c.head, m, err)
		}
		send(t, p, 0, i)
		receive(t, c, 0, i)
	}
}

// TestCorruptRecord: a record whose length runs past the buffer's end, and a
// tail that has passed a record without a stamp, are ErrCorrupt from Next,
// at once: not a message, a fault or a wait.
func TestCorruptRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(p *Producer)
	}{
		{"length", func(p *Producer) {
			h := (*uint64)(unsafe.Pointer(&p.e.buf[0]))
			atomic.StoreUint64(h, headWords(uint32(len(p.e.buf)-recordHead+1), stampOf(0)|kindMessage))
		}},
		{"padding-length", func(p *Producer) {
			h := (*uint64)(unsafe.Pointer(&p.e.buf[0]))
			atomic.StoreUint64(h, headWords(1<<31, stampOf(0)|kindPadding))
		}},
		{"no-stamp", func(p *Producer) { *word(p.e.buf, 4) = 0 }},
		{"stamp-of-another-position", func(p *Producer) { *word(p.e.buf, 4) = stampOf(64) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			p, c := pair(t, 256)
			send(t, p, 10, 0)
			tc.damage(p)
			ctx, cancel := context.WithTimeout(context.Background(), prompt)
			defer cancel()
			got := make(chan error, 1)
			go func() {
				_, err := c.Next(ctx)
				got <- err
			}()
			select {
			case err := <-got:
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Next: %v; want ErrCorrupt", err)
				}
			case <-time.After(2 * prompt):
				t.Fatal("Next hangs, deaf to its context") // and leaks; the test binary ends
			}
		})
	}
}
