package ring

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmmap-go/shmmap/wake"
)

// A waiting end sleeps with no timeout. Instead one poller per process
// wakes, every pollInterval, the ends that sleep, and each then asks
// whether its peer lives (await). A timeout on every sleep cost each wait
// reads of the clock and a kernel timer armed and cancelled, a fair part
// of a small message's hand-over on one CPU (BENCHMARKS.md, "Small
// messages on one CPU"); the poller costs a wait two stores and three
// loads.
//
// The poller runs only while some end sleeps: the first sleeper starts
// its timer, and a round that finds no one asleep stops it.

// pollInterval is how often the poller wakes sleeping ends (tests change
// it, to make a wake-up, not a poll, end a wait, or to poll often).
var pollInterval atomic.Int64

func init() { pollInterval.Store(int64(200 * time.Millisecond)) }

// poll is the process' one poller.
var poll struct {
	running atomic.Bool   // its timer is set, or its round is running
	rounds  atomic.Uint64 // rounds begun

	mu    sync.Mutex
	ends  map[*end]struct{} // ends that have slept and not yet closed
	timer *time.Timer
}

// sleep tells the poller that e is about to sleep, and returns the round
// in progress: a wake-up in a later round may be the poller's. The caller
// stores false in e.asleep when the sleep ends.
func (e *end) sleep() uint64 {
	if !e.polled {
		e.polled = true
		poll.mu.Lock()
		if poll.ends == nil {
			poll.ends = make(map[*end]struct{})
		}
		poll.ends[e] = struct{}{}
		poll.mu.Unlock()
	}
	e.asleep.Store(true)
	// A round stores running false before it looks at asleep, and a
	// sleeper stores asleep before it looks at running: one of the two
	// sees the other's store, so no sleeper is left without a poller.
	if !poll.running.Load() {
		poll.mu.Lock()
		if !poll.running.Load() {
			poll.running.Store(true)
			d := time.Duration(pollInterval.Load())
			if poll.timer == nil {
				poll.timer = time.AfterFunc(d, pollRound)
			} else {
				poll.timer.Reset(d)
			}
		}
		poll.mu.Unlock()
	}
	return poll.rounds.Load()
}

// unpoll forgets e, which is closing: the poller no longer touches its
// words, which are about to be unmapped.
func (e *end) unpoll() {
	if e.polled {
		poll.mu.Lock()
		delete(poll.ends, e)
		poll.mu.Unlock()
	}
}

// pollRound wakes every end that sleeps, and sets the next round if any
// did.
func pollRound() {
	poll.mu.Lock()
	defer poll.mu.Unlock()
	poll.rounds.Add(1)
	poll.running.Store(false)
	woke := false
	for e := range poll.ends {
		if e.asleep.Load() {
			woke = true
			wake.Wake(e.sleepWord(), 0)
		}
	}
	if woke {
		poll.running.Store(true)
		poll.timer.Reset(time.Duration(pollInterval.Load()))
	}
}
