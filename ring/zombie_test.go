package ring

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
)

// TestZombiePeer: a peer whose process has died but is not yet reaped (a
// zombie: a child whose parent has not waited for it yet, as
// examples/pipeline's worker is until the parent's Reserve fails) is gone.
// A zombie keeps its pid and start time, and kill(pid, 0) succeeds on it
// (POSIX; xnu bsd/kern/kern_sig.c, kill), so macOS asks for its p_stat; its
// files are closed, so its Linux locks are gone. Each case checks that the
// child is still a zombie once the ring has answered, and reaps it only
// then (in cleanup).
func TestZombiePeer(t *testing.T) {
	t.Run("Reserve", func(t *testing.T) { // the creator waits on the opener
		keys := checkLeaks(t)
		p, err := CreateProducer(256)
		if err != nil {
			t.Fatal(err)
		}
		*keys = append(*keys, p.Key())
		defer p.Close()
		c := helpers.Start(t, "open-consumer-and-hang", p.Key())
		if got := c.Line(t); got != "ready" {
			t.Fatalf("child: %q", got)
		}
		send(t, p, 200, 0)
		expectGoneUnreaped(t, c, func(ctx context.Context) error {
			_, err := p.Reserve(ctx, 200)
			return err
		})
	})
	t.Run("Next", func(t *testing.T) { // the opener waits on the creator
		keys := checkLeaks(t)
		c := helpers.Start(t, "create-and-hang", "1")
		key := c.Line(t)
		*keys = append(*keys, key)
		t.Cleanup(func() { shmmap.Unlink(key) })
		if got := c.Line(t); got != "ready" {
			t.Fatalf("child: %q", got)
		}
		cons, err := OpenConsumer(key)
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		receive(t, cons, 100, 0)
		expectGoneUnreaped(t, c, func(ctx context.Context) error {
			b, err := cons.Next(ctx)
			if err == nil {
				return fmt.Errorf("a message of %d bytes", len(b))
			}
			return err
		})
	})
	t.Run("Open", func(t *testing.T) {
		keys := checkLeaks(t)
		c := helpers.Start(t, "create-and-hang", "0")
		key := c.Line(t)
		*keys = append(*keys, key)
		t.Cleanup(func() { shmmap.Unlink(key) })
		if got := c.Line(t); got != "ready" {
			t.Fatalf("child: %q", got)
		}
		c.KillNoWait(t)
		waitZombie(t, c)
		if cons, err := OpenConsumer(key); !errors.Is(err, ErrPeerGone) {
			if err == nil {
				cons.Close()
			}
			t.Fatalf("OpenConsumer of a ring whose creator is a zombie: %v, want ErrPeerGone", err)
		}
	})
}

// expectGoneUnreaped runs call, which must be waiting, kills c's process
// without reaping it, and checks that call returns ErrPeerGone within
// peerGoneWithin, and that the child was not reaped meanwhile. call's
// context ends when this returns, so that a call still waiting after a
// failure returns before the caller closes its end.
func expectGoneUnreaped(t *testing.T, c *child, call func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { got <- call(ctx) }()
	returned := false
	defer func() {
		cancel()
		if !returned {
			<-got
		}
	}()
	time.Sleep(300 * time.Millisecond) // past a liveness check or so
	select {
	case err := <-got:
		returned = true
		t.Fatalf("returned %v while the peer lived", err)
	default:
	}
	c.KillNoWait(t)
	killed := time.Now()
	select {
	case err := <-got:
		returned = true
		d := time.Since(killed)
		t.Logf("ErrPeerGone %v after the kill: %v", d.Round(time.Millisecond), err)
		if !errors.Is(err, ErrPeerGone) {
			t.Fatalf("got %v, want ErrPeerGone", err)
		}
		if d > peerGoneWithin {
			t.Fatalf("ErrPeerGone came %v after the kill, want within %v", d, peerGoneWithin)
		}
	case <-time.After(prompt):
		t.Fatalf("still waiting %v after the peer died (not reaped)", prompt)
	}
	waitZombie(t, c)
}

// waitZombie waits until c's process, killed and not reaped, is a zombie
// (testproc's Zombie: every thread gone). A child that is no longer there
// was reaped: the case tested something else.
func waitZombie(t *testing.T, c *child) {
	t.Helper()
	for end := time.Now().Add(prompt); ; time.Sleep(time.Millisecond) {
		z, err := c.Zombie()
		if err != nil {
			t.Fatalf("the killed child is not a zombie: %v", err)
		}
		if z {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("the killed child is not a zombie after %v", prompt)
		}
	}
}
