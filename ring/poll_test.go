package ring

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// waitSleeps waits until the count of sleeps reaches n.
func waitSleeps(t *testing.T, n int64) {
	t.Helper()
	for end := time.Now().Add(prompt); sleeps.Load() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d sleeps after %v, want %d", sleeps.Load(), prompt, n)
		}
	}
}

// TestPollWakesEverySleeper: a round of the poller wakes each end that
// sleeps, and each, finding its peer alive, sleeps again.
func TestPollWakesEverySleeper(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	counts()
	var ps []*Producer
	var cs []*Consumer
	done := make(chan error, 2)
	for range 2 {
		p, c := pair(t, 256)
		ps, cs = append(ps, p), append(cs, c)
		go func() {
			b, err := c.Next(context.Background())
			if err == nil && len(b) != 10 {
				t.Errorf("a message of %d bytes, want 10", len(b))
			}
			c.Release()
			done <- err
		}()
	}
	waitSleeps(t, 2)
	for _, c := range cs {
		waitWord(t, word(c.e.seg, offConsSleep), 1)
	}
	for !cs[0].e.asleep.Load() || !cs[1].e.asleep.Load() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // into the futex
	pollRound()
	waitSleeps(t, 4)
	time.Sleep(10 * time.Millisecond)
	if n := sleeps.Load(); n != 4 {
		t.Errorf("%d sleeps after a round, want 4: each end's two", n)
	}
	for _, p := range ps {
		send(t, p, 10, 1)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPollStops: the poller's rounds run while an end sleeps, and stop
// once none does.
func TestPollStops(t *testing.T) {
	checkLeaks(t)
	setPoll(t, 2*time.Millisecond)
	_, c := pair(t, 256)
	counts()
	before := poll.rounds.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Next(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Next on an empty ring: %v, want %v", err, context.DeadlineExceeded)
	}
	if n := poll.rounds.Load() - before; n < 3 {
		t.Errorf("%d rounds in a wait of 50 rounds' time, want several", n)
	}
	if n := sleeps.Load(); n < 3 {
		t.Errorf("%d sleeps in a wait of 50 rounds' time, want one after each round", n)
	}
	for end := time.Now().Add(prompt); poll.running.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the poller still runs %v after the last wait", prompt)
		}
	}
}

// TestPollForgetsClosed: an end that has slept is the poller's until it
// closes, and no longer after.
func TestPollForgetsClosed(t *testing.T) {
	checkLeaks(t)
	p, c := pair(t, 256)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	c.Next(ctx)
	known := func(e *end) bool {
		poll.mu.Lock()
		defer poll.mu.Unlock()
		_, ok := poll.ends[e]
		return ok
	}
	if !known(c.e) {
		t.Fatal("an end that slept is not the poller's")
	}
	if known(p.e) {
		t.Error("an end that never slept is the poller's")
	}
	e := c.e
	c.Close()
	if known(e) {
		t.Error("a closed end is still the poller's: it would wake a word unmapped")
	}
}

// TestPollNoSleeperLeft: an end that starts to sleep while a round is
// ending, which finds no one asleep and stops the poller, is polled all
// the same: once both are done, the poller runs.
func TestPollNoSleeperLeft(t *testing.T) {
	setPoll(t, time.Hour) // rounds come only from this test
	e := &end{kind: endConsumer, tail: new(uint32)}
	defer e.unpoll()
	for i := range 300000 {
		e.sleep() // the poller runs, as after an earlier sleep
		e.asleep.Store(false)
		var gate atomic.Bool
		done := make(chan struct{})
		go func() {
			for !gate.Load() {
			}
			pollRound()
			close(done)
		}()
		gate.Store(true)
		for j := 0; j < i%256; j++ { // land at different moments of the round
			pause()
		}
		e.sleep()
		<-done
		if !poll.running.Load() {
			t.Fatalf("sleep %d: an end sleeps and the poller has stopped", i)
		}
		e.asleep.Store(false)
	}
}
