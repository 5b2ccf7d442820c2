package ring

import (
	"context"
	"errors"
	"testing"
	"time"
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
		c, key := startCreator(t, checkLeaks(t), "1")
		cons, err := OpenConsumer(key)
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		receive(t, cons, 100, 0)
		expectGoneUnreaped(t, c, nextError(cons))
	})
	t.Run("Open", func(t *testing.T) {
		c, key := startCreator(t, checkLeaks(t), "0")
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

// expectGoneUnreaped is expectPeerGone with c's process killed and not
// reaped, and checks that it was a zombie all along.
func expectGoneUnreaped(t *testing.T, c *child, call func(context.Context) error) {
	t.Helper()
	expectGone(t, func() { c.KillNoWait(t) }, call)
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
