package ring

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// take takes message i of n bytes with Next, checks it and returns it,
// without releasing it.
func take(t *testing.T, c *Consumer, n int, i uint64) []byte {
	t.Helper()
	b, err := c.Next(context.Background())
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if err := check(b, i, n, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBatchRelease: three Nexts without a Release take three messages in
// turn, and every slice holds its message until the one Release, which
// frees all three with one store of head: the Nexts store nothing, and
// the producer cannot write the bytes they took meanwhile.
func TestBatchRelease(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	p, c := pair(t, 256)
	for i := range 3 {
		send(t, p, 48, uint64(i)) // records of 64: 192 bytes of 256
	}
	// With the producer's sleeper flag set, each store of head is followed
	// by a wake-up, which counts it.
	atomic.StoreUint32(p.prodSleep, 1)
	counts()
	var taken [][]byte
	for i := range 3 {
		taken = append(taken, take(t, c, 48, uint64(i)))
	}
	if _, woke := counts(); woke != 0 {
		t.Fatalf("%d stores of head by three Nexts, want none", woke)
	}
	if h := atomic.LoadUint32(p.e.head); h != 0 {
		t.Fatalf("head %d after three Nexts, want 0: released before Release", h)
	}
	if _, err := p.Reserve(ended(), 100); err != context.Canceled {
		t.Fatalf("Reserve of the room of messages taken: %v, want context.Canceled", err)
	}
	for i, b := range taken {
		if err := check(b, uint64(i), 48, make([]byte, 48)); err != nil {
			t.Fatalf("taken message %d, before Release: %v", i, err)
		}
	}
	atomic.StoreUint32(p.prodSleep, 1) // the failed Reserve cleared it
	counts()
	c.Release()
	if _, woke := counts(); woke != 1 {
		t.Fatalf("%d stores of head by one Release, want 1", woke)
	}
	if h := atomic.LoadUint32(p.e.head); h != 192 {
		t.Fatalf("head %d after Release, want 192", h)
	}
	atomic.StoreUint32(p.prodSleep, 0)
	send(t, p, 100, 3) // the room is free
	receive(t, c, 100, 3)
}

// TestBatchWake: a producer asleep for room is woken once by a Release of
// three messages, not three times; and a consumer that holds messages
// sleeps for the next one at the position after them, to be woken by its
// Commit.
func TestBatchWake(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	p, c := pair(t, 256)
	for i := range 4 {
		send(t, p, 48, uint64(i)) // 256 bytes: full
	}
	counts()
	sent := make(chan error, 1)
	go func() {
		b, err := p.Reserve(context.Background(), 176) // 192 bytes: three messages' room
		if err == nil {
			fill(b, 4)
			p.Commit(len(b))
		}
		sent <- err
	}()
	waitWord(t, p.prodSleep, 1)
	for i := range 3 {
		take(t, c, 48, uint64(i))
	}
	c.Release()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if slept, woke := counts(); slept > 1 || woke != 1 {
		t.Fatalf("a Release of three messages for a sleeping producer: %d sleeps, %d wake-ups; want 1 and 1", slept, woke)
	}

	// Holding two messages, the consumer sleeps past both for the third,
	// which a Commit wakes it for.
	p, c = pair(t, 256)
	send(t, p, 50, 0)
	send(t, p, 50, 1)
	take(t, c, 50, 0)
	take(t, c, 50, 1)
	counts()
	got := make(chan error, 1)
	go func() {
		b, err := c.Next(context.Background())
		if err == nil {
			err = check(b, 2, 10, make([]byte, 10))
		}
		got <- err
	}()
	waitWord(t, p.consSleep, 1)
	select {
	case err := <-got:
		t.Fatalf("Next while holding two messages, none after: %v; want it to wait", err)
	case <-time.After(20 * time.Millisecond):
	}
	send(t, p, 10, 2)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(prompt):
		t.Fatal("Commit did not wake Next")
	}
	if slept, woke := counts(); slept != 1 || woke != 1 {
		t.Fatalf("a consumer asleep after two messages taken: %d sleeps, %d wake-ups; want 1 and 1", slept, woke)
	}
	c.Release()
	if h := atomic.LoadUint32(p.e.head); h != p.tail {
		t.Fatalf("head %d after Release, want tail %d", h, p.tail)
	}
}

// TestBatchPadding: a padding record that Next passes with a message
// already taken is released with the batch, not at once: head stays until
// Release, then passes the padding and the message after it. Passed with
// no message taken, it is released at once.
func TestBatchPadding(t *testing.T) {
	for _, held := range []bool{true, false} {
		p, c := pair(t, 256)
		send(t, p, 96, 0) // a record of 112
		receive(t, c, 96, 0)
		send(t, p, 64, 1) // 80, to 192
		send(t, p, 50, 2) // 64 bytes left: padding, then 80 at 256, together
		if held {
			take(t, c, 64, 1)
		} else {
			receive(t, c, 64, 1)
		}
		take(t, c, 50, 2)
		want := uint32(256) // past the padding, released at once
		if held {
			want = 112 // nothing released
		}
		if h := atomic.LoadUint32(p.e.head); h != want {
			t.Fatalf("message 1 held: %v; head %d after Next passed the padding, want %d", held, h, want)
		}
		c.Release()
		if h := atomic.LoadUint32(p.e.head); h != 256+80 {
			t.Fatalf("head %d after Release, want %d", h, 256+80)
		}
	}
}

// TestReleasePanics: Release panics with no message taken: before any
// Next, after a Release, after a Next that failed, and after a Next that
// passed a padding record alone and then found nothing.
func TestReleasePanics(t *testing.T) {
	p, c := pair(t, 256)
	mustPanic := func(when string) {
		t.Helper()
		if err := noPanic(c.Release); err == nil {
			t.Fatalf("Release %s did not panic", when)
		}
	}
	mustPanic("before any Next")
	send(t, p, 200, 0)
	take(t, c, 200, 0)
	c.Release()
	mustPanic("after a Release")
	if _, err := c.Next(ended()); err != context.Canceled {
		t.Fatalf("Next of an empty ring: %v", err)
	}
	mustPanic("after a Next that failed")
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { // passes the padding, then waits
		_, err := c.Next(ctx)
		got <- err
	}()
	if _, err := p.Reserve(context.Background(), 256-recordHead); err != nil { // padding alone, then the whole ring
		t.Fatal(err)
	}
	p.Abort()
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next: %v", err)
	}
	mustPanic("after a Next that passed a padding record alone")
}

// TestBatchCorrupt: with messages taken and not released, the consumer's
// checks hold at the position after them: tail passed an unstamped record
// there, or a tail further than the capacity from it, is ErrCorrupt; a tail
// behind it by up to the capacity (a commit whose stamps it took) is not.
// A stamped record that would overlap the messages taken, a lap on, is
// ErrCorrupt too, not a message.
func TestBatchCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(p *Producer, next uint32) // next: the position after the taken messages
		want   error
	}{
		{"unstamped-before-tail", func(p *Producer, next uint32) {
			send(t, p, 10, 9)
			*word(p.e.buf, int(next&p.e.mask)+4) = 0
		}, ErrCorrupt},
		{"tail-behind-by-more-than-capacity", func(p *Producer, next uint32) {
			atomic.StoreUint32(p.e.tail, next-256-recordAlign)
		}, ErrCorrupt},
		{"tail-behind-by-capacity", func(p *Producer, next uint32) {
			atomic.StoreUint32(p.e.tail, next-256)
		}, context.Canceled},
		{"tail-ahead-by-more-than-capacity", func(p *Producer, next uint32) {
			atomic.StoreUint32(p.e.tail, next+256+recordAlign)
		}, ErrCorrupt},
		{"overlap-taken", func(p *Producer, next uint32) {
			// Head is at 0: padding to the end, then a message at 256,
			// whose record ends past 256.
			putHead(p.e.buf, int(next), uint32(256-next-recordHead), stampOf(next)|kindPadding)
			putHead(p.e.buf, 0, 0, stampOf(256)|kindMessage)
		}, ErrCorrupt},
		{"up-to-capacity", func(p *Producer, next uint32) { // a message that ends at 256
			putHead(p.e.buf, int(next), uint32(256-next-recordHead), stampOf(next)|kindMessage)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			p, c := pair(t, 256)
			send(t, p, 96, 0) // records of 112
			send(t, p, 96, 1)
			take(t, c, 96, 0)
			take(t, c, 96, 1)
			tc.damage(p, 224)
			if m, err := c.Next(ended()); !errors.Is(err, tc.want) {
				t.Fatalf("Next: %d bytes, %v; want %v", len(m), err, tc.want)
			}
		})
	}
}
