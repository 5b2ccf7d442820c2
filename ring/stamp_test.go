package ring

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
)

// putHead writes a record head at offset off of buf: what a payload, or a
// corrupt peer, may hold there.
func putHead(buf []byte, off int, n, stamp uint32) {
	*word(buf, off) = n
	*word(buf, off+4) = stamp
}

// onStamped makes every Commit run hook between its stamps and its store of
// tail, until t ends.
func onStamped(t *testing.T, hook func()) {
	testHookStamped = hook
	t.Cleanup(func() { testHookStamped = nil })
}

// noMessage checks that c has no message to give: Next with an ended
// context finds none.
func noMessage(t *testing.T, c *Consumer) {
	t.Helper()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	next := c.next
	if m, err := c.Next(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next from position %d: %q, %v; want no message", next, m, err)
	}
}

// nothingNext checks that c has no message to give and takes no record
// looking for one.
func nothingNext(t *testing.T, c *Consumer) {
	t.Helper()
	next := c.next
	noMessage(t, c)
	if c.next != next {
		t.Fatalf("Next took records from %d to %d; want none", next, c.next)
	}
}

// forge commits and consumes a message that fills the ring's buffer from
// offset recordHead, its bytes the heads that records at each offset would have one
// lap later (what a hostile or unlucky payload may hold), with the given
// low bits.
func forge(t *testing.T, p *Producer, c *Consumer, low uint32) {
	t.Helper()
	capacity := uint32(len(p.e.buf))
	lap := p.tail - p.tail%capacity + capacity
	b, err := p.Reserve(context.Background(), p.MaxMessage())
	if err != nil {
		t.Fatal(err)
	}
	for x := 0; x+8 <= len(b); x += recordAlign {
		putHead(b, x, 0, stampOf(lap+uint32(recordHead+x))|low)
	}
	p.Commit(len(b))
	if m, err := c.Next(context.Background()); err != nil || len(m) != p.MaxMessage() {
		t.Fatalf("Next of the forging message: %d bytes, %v", len(m), err)
	}
	c.Release()
}

// TestForgedStamps: forged heads in an earlier lap's bytes are never taken
// for records. Every Commit is held right after its stamps, where a
// consumer on another CPU sees what this one does: the consumer takes the
// new record and must find nothing at the next position, whichever of a
// lap's offsets that is, and also when exactly one record head is left
// free.
func TestForgedStamps(t *testing.T) {
	for _, low := range []uint32{kindMessage, kindPadding, 2, 3} {
		p, c := pair(t, 128)
		takeThenNothing := func() {
			if _, err := c.Next(context.Background()); err != nil {
				t.Fatalf("Next of a stamped record: %v", err)
			}
			c.Release()
			nothingNext(t, c)
		}
		forge(t, p, c, low)
		onStamped(t, takeThenNothing)
		// Empty records (a head alone) stop at every offset of the next lap.
		for range len(p.e.buf) / recordHead {
			if _, err := p.Reserve(context.Background(), 0); err != nil {
				t.Fatal(err)
			}
			p.Commit(0)
		}
		testHookStamped = nil
		forge(t, p, c, low)
		// One record of capacity - recordHead: a head's bytes after it are
		// free.
		onStamped(t, takeThenNothing)
		b, err := p.Reserve(context.Background(), len(p.e.buf)-2*recordHead)
		if err != nil {
			t.Fatal(err)
		}
		fill(b, 1)
		p.Commit(len(b))
		testHookStamped = nil
	}
}

// TestAheadOfTail: a consumer takes a record by its stamp before the
// producer stores tail, and is then ahead of tail: it must see an empty
// ring there, not a corrupt one.
func TestAheadOfTail(t *testing.T) {
	checkLeaks(t)
	p, c := pair(t, 256)
	onStamped(t, func() {
		receive(t, c, 10, 0)
		if got := atomic.LoadUint32(p.e.tail); int32(got-c.next) >= 0 {
			t.Fatalf("tail %d, next %d: the consumer is not ahead of tail", got, c.next)
		}
		nothingNext(t, c)
	})
	send(t, p, 10, 0)
	testHookStamped = nil
	send(t, p, 20, 1)
	receive(t, c, 20, 1)
}

// TestSpinSeesStamp: a spinning consumer takes a message by its stamp,
// with tail never moving while it waits.
func TestSpinSeesStamp(t *testing.T) {
	checkLeaks(t)
	defer func(d time.Duration) { maxSpin = d }(maxSpin)
	maxSpin = time.Hour // spin on, not sleep, whatever the machine's pace
	p, c := pair(t, 256)
	c.SetSpin(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 2*prompt)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		b, err := c.Next(ctx)
		if err == nil {
			err = check(b, 0, 10, make([]byte, 10))
			c.Release()
		}
		got <- err
	}()
	received := false
	onStamped(t, func() {
		tail := atomic.LoadUint32(p.e.tail)
		select {
		case err := <-got:
			received = true
			if err != nil {
				t.Errorf("Next: %v", err)
			}
		case <-time.After(time.Second): // a spin that ignores the stamp ends with ctx
			t.Errorf("a spinning Next did not take a stamped message in a second")
		}
		if atomic.LoadUint32(p.e.tail) != tail {
			t.Error("tail moved")
		}
	})
	time.Sleep(10 * time.Millisecond) // Next is spinning
	send(t, p, 10, 0)
	if !received { // let Next end before Close unmaps
		cancel()
		<-got
	}
}

// TestCommitAfterFailedReserve: a Reserve that fails, even after it has
// published a padding record, leaves no reservation: Commit panics rather
// than stamp a message where its bytes are not.
func TestCommitAfterFailedReserve(t *testing.T) {
	p, c := pair(t, 256)
	send(t, p, 200, 0)
	receive(t, c, 200, 0)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		n    int
		want error
	}{
		{"padding-then-no-room", done, 256 - recordHead, context.Canceled},
		{"too-large", context.Background(), 256 - recordHead + 1, ErrTooLarge},
		{"negative", context.Background(), -1, shmmap.ErrInvalidSize},
	} {
		b, err := p.Reserve(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		fill(b, 1)
		if _, err := p.Reserve(tc.ctx, tc.n); !errors.Is(err, tc.want) {
			t.Fatalf("%s: Reserve(%d): %v, want %v", tc.name, tc.n, err, tc.want)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Commit after a failed Reserve did not panic", tc.name)
				}
			}()
			p.Commit(0)
		}()
		noMessage(t, c) // a published padding record aside
	}
}

// TestCorruptRecord: a record whose length runs past the buffer's end, and a
// tail that has passed a record without a stamp, are ErrCorrupt from Next,
// at once: not a message, a fault or a wait; at offset 0, and at a later
// offset, where a length that would fit at 0 runs past the end.
func TestCorruptRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		off    int // of the damaged record
		damage func(buf []byte, off int)
	}{
		{"length", 0, func(buf []byte, off int) {
			putHead(buf, off, uint32(len(buf)-off-recordHead+1), stampOf(uint32(off))|kindMessage)
		}},
		{"length-later", 32, func(buf []byte, off int) {
			putHead(buf, off, uint32(len(buf)-recordHead), stampOf(uint32(off))|kindMessage)
		}},
		{"padding-length", 0, func(buf []byte, off int) { putHead(buf, off, 1<<31, stampOf(uint32(off))|kindPadding) }},
		// Paddings that fit but that no producer writes: one that stops
		// short of the buffer's end, one at offset 0. A peer stamping such
		// paddings one after another kept Next from ever looking at ctx.
		{"padding-short", 32, func(buf []byte, off int) { putHead(buf, off, 16, stampOf(uint32(off))|kindPadding) }}, // ends at tail
		{"padding-at-start", 0, func(buf []byte, off int) {
			putHead(buf, off, uint32(len(buf)-recordHead), stampOf(uint32(off))|kindPadding)
		}},
		{"no-stamp", 0, func(buf []byte, off int) { *word(buf, off+4) = 0 }},
		{"stamp-of-another-position", 0, func(buf []byte, off int) { *word(buf, off+4) = stampOf(uint32(off) + 64) }},
		{"stamp-low-bits", 0, func(buf []byte, off int) { *word(buf, off+4) = stampOf(uint32(off)) | 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			p, c := pair(t, 256)
			for i := 0; p.tail != uint32(tc.off); i++ { // records of 32 bytes up to off
				send(t, p, 10, uint64(i))
				receive(t, c, 10, uint64(i))
			}
			send(t, p, 10, 0)
			tc.damage(p.e.buf, tc.off)
			ctx, cancel := context.WithTimeout(context.Background(), prompt)
			defer cancel()
			got := make(chan error, 1)
			go func() {
				err := noPanic(func() {
					_, err := c.Next(ctx)
					got <- err
				})
				if err != nil {
					got <- err
				}
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
