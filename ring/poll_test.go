package ring

import (
	"context"
	"fmt"
	"runtime"
	"sync"
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

// nextAll starts a Next of a message of size bytes on each of cs, and
// returns the channel of their results. The cleanup of t ends every Next
// still waiting, and waits for it, before the ends close (which unmaps
// them): after a failure, too.
func nextAll(t *testing.T, cs []*Consumer, size int) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	done := make(chan error, len(cs))
	for _, c := range cs {
		wg.Go(func() {
			b, err := c.Next(ctx)
			if err == nil {
				if len(b) != size {
					err = fmt.Errorf("a message of %d bytes, want %d", len(b), size)
				}
				c.Release()
			}
			done <- err
		})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return done
}

// TestPollWakesEverySleeper: a round of the poller wakes each end that
// sleeps, and each, finding its peer alive, sleeps again.
func TestPollWakesEverySleeper(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	counts()
	var ps []*Producer
	var cs []*Consumer
	for range 2 {
		p, c := pair(t, 256)
		ps, cs = append(ps, p), append(cs, c)
	}
	done := nextAll(t, cs, 10)
	waitSleeps(t, 2)
	for _, c := range cs {
		waitWord(t, word(c.e.seg, offConsSleep), 1)
	}
	for !cs[0].e.asleep.Load() || !cs[1].e.asleep.Load() {
		time.Sleep(time.Millisecond)
	}
	for _, c := range cs {
		waitInFutex(t, c.e.tail) // a wake-up before would be lost
	}
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
		t.Errorf("%d rounds in a wait of 25 rounds' time, want several", n)
	}
	if n := sleeps.Load(); n < 3 {
		t.Errorf("%d sleeps in a wait of 25 rounds' time, want one after each round", n)
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
	if !polled(c.e) {
		t.Fatal("an end that slept is not the poller's")
	}
	if polled(p.e) {
		t.Error("an end that never slept is the poller's")
	}
	e := c.e
	c.Close()
	if polled(e) {
		t.Error("a closed end is still the poller's: it would wake a word unmapped")
	}
}

// polled reports whether the poller knows e.
func polled(e *end) bool {
	poll.mu.Lock()
	defer poll.mu.Unlock()
	_, ok := poll.ends[e]
	return ok
}

// TestEndedContextNotPolled: a wait whose context has already ended
// returns ctx.Err() without a sleep, so it leaves nothing with the poller.
// The fuzz tests' rings wait only with ended contexts and are never
// closed: each one that waited stayed in poll.ends, with its arena, for
// the life of the fuzzing process.
func TestEndedContextNotPolled(t *testing.T) {
	const n = 1000
	kept := 0
	for range n {
		r := newFuzzRing(t, endConsumer, 6, 0, false, 0, 0, stateOpened, nil)
		c := newConsumer(r.e)
		if _, err := c.Next(r.ctx); err != context.Canceled {
			t.Fatalf("Next on an empty ring with an ended context: %v, want %v", err, context.Canceled)
		}
		if polled(r.e) {
			kept++
		}
		r.e.unpoll() // nothing to forget if it never slept; else later tests would scan them
	}
	if kept > 0 {
		t.Fatalf("%d of %d fuzz rings (never closed) kept by the poller after a Next with an ended context", kept, n)
	}
}

// TestPollRoundKeepsNoP: with one P, a poller's round that wakes many
// ends whose peers are in other processes does not make each of them keep
// the P for a tick in turn (wake.WaitPeer's held sleep) before the next
// one can ask whether its peer lives: the last would learn of a death
// ends × tick late, and every round.
func TestPollRoundKeepsNoP(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux's WaitPeer keeps the P")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	checkLeaks(t)
	noPoll(t)
	const n = 50
	var ps []*Producer
	var cs []*Consumer
	counts()
	for range n {
		p, c := pair(t, 256)
		// The consumer's producer is in another process, as far as the
		// consumer can tell (peerHere): its sleeps first keep the lone P.
		*word(c.e.seg, offCreatorPID) = c.e.pid + 1
		ps, cs = append(ps, p), append(cs, c)
	}
	done := nextAll(t, cs, 10)
	waitSleeps(t, n)
	time.Sleep(time.Duration(n) * 10 * time.Millisecond) // past every held sleep
	counts()
	start := time.Now()
	pollRound()
	for sleeps.Load() < n {
		if time.Since(start) > prompt {
			t.Fatalf("%d of %d ends slept again %v after a round", sleeps.Load(), n, prompt)
		}
		time.Sleep(time.Millisecond)
	}
	d := time.Since(start)
	t.Logf("%d ends asked about their peers and slept again within %v of a round", n, d)
	if d > 100*time.Millisecond {
		t.Errorf("%d ends asked about their peers only within %v of a round: each kept the lone P in turn", n, d)
	}
	for _, p := range ps {
		send(t, p, 10, 1)
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPollNoSleeperLeft: an end that starts to sleep while a round is
// ending, which finds no one asleep and stops the poller, is polled all
// the same: once both are done, the poller runs. The round runs in a
// goroutine already spinning on another P, so that it overlaps the sleep.
func TestPollNoSleeperLeft(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two Ps")
	}
	setPoll(t, time.Hour)
	e := &end{kind: endConsumer, tail: new(uint32)}
	defer e.unpoll()
	var gen, fin atomic.Uint64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for g := uint64(1); ; g++ {
			for gen.Load() < g {
				select {
				case <-stop:
					return
				default:
				}
			}
			pollRound()
			fin.Store(g)
		}
	}()
	for i := range 200000 {
		e.sleep()
		e.asleep.Store(false)
		g := uint64(i + 1)
		gen.Store(g)
		for j := 0; j < i%64; j++ {
			pause()
		}
		e.sleep()
		for fin.Load() < g {
		}
		if !poll.running.Load() {
			t.Fatalf("sleep %d: an end sleeps and the poller has stopped", i)
		}
		e.asleep.Store(false)
	}
}
