package ring

import (
	"context"
	"errors"
	"testing"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/internal/memcopy"
)

// TestSend: a message sent with Send arrives whole, at every length from
// none to more than memcopy.MovsbMin (which Send copies another way),
// around the buffer's end too.
func TestSend(t *testing.T) {
	checkLeaks(t)
	p, c := pair(t, 8<<20)
	sizes := []int{0, 1, 7, 8, 100, 4096, memcopy.MovsbMin - 8, memcopy.MovsbMin + 13, 3<<20 + 5}
	for i, n := range sizes {
		msg := make([]byte, n)
		fill(msg, uint64(i))
		if err := p.Send(context.Background(), msg); err != nil {
			t.Fatalf("Send(%d bytes): %v", n, err)
		}
		receive(t, c, n, uint64(i))
	}
	noMessage(t, c)

	// Round a small buffer, past its end (after padding) many times.
	p, c = pair(t, 1<<14)
	for i := range 40 {
		n := 3000 + i*17
		msg := make([]byte, n)
		fill(msg, uint64(i))
		if err := p.Send(context.Background(), msg); err != nil {
			t.Fatalf("Send(%d bytes): %v", n, err)
		}
		receive(t, c, n, uint64(i))
	}
}

// TestSendFails: a Send that fails sends nothing and leaves no
// reservation behind (a Commit after it panics): a message too long, a
// context that ends while the ring is full, a closed end.
func TestSendFails(t *testing.T) {
	checkLeaks(t)
	p, c := pair(t, 4096)
	err := p.Send(context.Background(), make([]byte, p.MaxMessage()+1))
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, shmmap.ErrInvalidSize) {
		t.Fatalf("Send of MaxMessage+1 bytes: %v, want ErrTooLarge and shmmap.ErrInvalidSize", err)
	}
	mustPanic(t, "Commit after a failed Send", func() { p.Commit(0) })
	noMessage(t, c)

	full := make([]byte, p.MaxMessage())
	fill(full, 3)
	if err := p.Send(context.Background(), full); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Send(ctx, []byte("no room")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send to a full ring with an ended context: %v, want context.Canceled", err)
	}
	mustPanic(t, "Commit after a failed Send", func() { p.Commit(0) })
	receive(t, c, len(full), 3)
	noMessage(t, c)

	p.Close()
	if err := p.Send(context.Background(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
}

// TestSendDropsReservation: a reservation not committed before Send does
// not reach the consumer; Send's message does.
func TestSendDropsReservation(t *testing.T) {
	checkLeaks(t)
	p, c := pair(t, 4096)
	b, err := p.Reserve(context.Background(), 300)
	if err != nil {
		t.Fatal(err)
	}
	fill(b, 99)
	msg := make([]byte, 40)
	fill(msg, 5)
	if err := p.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	receive(t, c, 40, 5)
	noMessage(t, c)
}

// TestSendAllocs: Send allocates nothing.
func TestSendAllocs(t *testing.T) {
	p, c := pair(t, 1<<16)
	msg := make([]byte, 1000)
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() {
		if err := p.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Next(ctx); err != nil {
			t.Fatal(err)
		}
		c.Release()
	}); n != 0 {
		t.Fatalf("Send, Next and Release: %v allocations, want 0", n)
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	f()
}

// TestPeerHere: the ends of a ring in one process know it, by the pids in
// the header, so that their waits never keep a lone P from the goroutine
// that would wake them (wake.WaitPeer); a peer in another process is not
// here.
func TestPeerHere(t *testing.T) {
	p, c := pair(t, 4096)
	if !p.e.peerHere() || !c.e.peerHere() {
		t.Fatalf("ends in one process: peerHere %v (creator) and %v (opener), want true", p.e.peerHere(), c.e.peerHere())
	}
	*word(p.e.seg, offOpenerPID) = p.e.pid + 1 // as another process would
	if p.e.peerHere() {
		t.Fatal("creator with an opener of another pid: peerHere true")
	}
}
