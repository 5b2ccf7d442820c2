package ring

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/wake"
)

// An end is what a Producer and a Consumer share: the mapping, the shared
// words and the peer's liveness.
type end struct {
	key     string
	m       *shmmap.Mapping // this end's handle on the segment
	seg     []byte          // m's bytes, until close
	buf     []byte          // its buffer, capacity bytes
	mask    uint32
	creator bool
	kind    uint32 // endProducer or endConsumer
	state   *uint32
	tail    *uint32
	head    *uint32
	watch   watch
	closed  bool
	spin    time.Duration // how long a wait watches the word before it sleeps
	pid     uint32        // this process' pid, as the header records it
	polled  bool          // known to the poller (poll.go)
	asleep  atomic.Bool   // sleeping, for the poller

	// tail and head as this end found them, once, when it made or opened
	// the ring, and checked: where it starts.
	startTail, startHead uint32
}

// create makes a new ring with this end as kind.
func create(capacity int, kind uint32) (*end, error) {
	size, c, err := segmentSize(capacity)
	if err != nil {
		return nil, err
	}
	m, err := shmmap.CreateNamed(size)
	if err != nil {
		return nil, err
	}
	pid, start := self()
	initHeader(m.Bytes(), c, kind, pid, start)
	w, err := watchOf(m, true)
	if err != nil {
		m.Close()
		return nil, err
	}
	return newEnd(m, m.Bytes(), c, kind, true, w, 0, 0), nil
}

// open maps ring key and takes its end kind, which must not be the
// creator's.
func open(key string, kind uint32) (*end, error) {
	if !strings.HasPrefix(key, "/") {
		key = "/" + key // the spelling of the creator's Key
	}
	m, err := mapRing(key)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*end, error) {
		m.Close()
		if _, ok := err.(*fs.PathError); ok {
			return nil, err
		}
		return nil, &fs.PathError{Op: "open", Path: key, Err: err}
	}
	w, err := watchOf(m, false)
	if err != nil {
		return fail(err)
	}
	seg := m.Bytes()
	c, creatorEnd, err := checkHeader(seg)
	if err != nil {
		return fail(err)
	}
	// Loaded once: the peer may write them again at any moment, and the
	// end starts from the values checked.
	tail, head := atomic.LoadUint32(word(seg, offTail)), atomic.LoadUint32(word(seg, offHead))
	if err := checkPositions(tail, head, c); err != nil {
		return fail(err)
	}
	if creatorEnd == kind {
		return fail(fmt.Errorf("%w: the creator is the %s", ErrBusy, endName(kind)))
	}
	if !w.peerAlive(seg, false) {
		return fail(fmt.Errorf("%w: the creator has closed or died", ErrPeerGone))
	}
	pid, start := self()
	*word(seg, offOpenerPID) = pid
	*(*uint64)(unsafe.Pointer(&seg[offOpenerTime])) = start
	state := word(seg, offState)
	for {
		s := atomic.LoadUint32(state)
		if s&stateOpened != 0 {
			return fail(fmt.Errorf("%w: the %s is open in another process", ErrBusy, endName(kind)))
		}
		if atomic.CompareAndSwapUint32(state, s, s|stateOpened) {
			break
		}
	}
	return newEnd(m, seg, c, kind, false, w, tail, head), nil
}

// mapRing maps segment key read-write, as much of it as its header says
// the ring takes and no more, whatever size the creator gave the segment:
// the header first, for the capacity, then header and buffer. A segment
// too short for either is ErrCorrupt.
func mapRing(key string) (*shmmap.Mapping, error) {
	h, err := shmmap.MapReadOnly(key, HeaderSize)
	if err != nil {
		return nil, truncated(key, err, "a ring's header")
	}
	size := HeaderSize
	if c := atomic.LoadUint32(word(h.Bytes(), offCapacity)); c <= maxCapacity {
		size += int(c) // else checkHeader will say what is wrong
	}
	h.Close()
	m, err := shmmap.Map(key, size)
	if err != nil {
		return nil, truncated(key, err, "the ring its header describes")
	}
	return m, nil
}

// truncated is err, or ErrCorrupt if err says that the segment is shorter
// than what.
func truncated(key string, err error, what string) error {
	if errors.Is(err, shmmap.ErrInvalidSize) {
		return &fs.PathError{Op: "open", Path: key, Err: fmt.Errorf("%w: segment shorter than %s (%w)", ErrCorrupt, what, err)}
	}
	return err
}

// newEnd makes an end over seg, the bytes of m (nil in tests that build a
// ring in a plain slice).
func newEnd(m *shmmap.Mapping, seg []byte, capacity int, kind uint32, creator bool, w watch, tail, head uint32) *end {
	return &end{
		key:     m.Key(),
		m:       m,
		seg:     seg,
		buf:     seg[HeaderSize : HeaderSize+capacity : HeaderSize+capacity],
		mask:    uint32(capacity - 1),
		creator: creator,
		kind:    kind,
		state:   word(seg, offState),
		tail:    word(seg, offTail),
		head:    word(seg, offHead),
		watch:   w,
		pid:     uint32(os.Getpid()),

		startTail: tail,
		startHead: head,
	}
}

func endName(kind uint32) string {
	if kind == endProducer {
		return "producer"
	}
	return "consumer"
}

// close says that this end has closed, wakes the peer, and unmaps.
func (e *end) close() error {
	if e.closed {
		return ErrClosed
	}
	e.closed = true
	bit, w := uint32(stateProdClosed), e.tail
	if e.kind == endConsumer {
		bit, w = stateConsClosed, e.head
	}
	for {
		s := atomic.LoadUint32(e.state)
		if atomic.CompareAndSwapUint32(e.state, s, s|bit) {
			break
		}
	}
	e.unpoll()
	_, werr := wake.Wake(w, 0) // the peer sleeps on the word this end writes
	err := e.m.Close()         // the creator's also removes the name
	e.seg, e.buf = nil, nil
	return errors.Join(werr, err)
}

// await sleeps while the word w (tail or head, written by the peer) holds
// old. sleeping is this end's sleeper flag, peerClosed the peer's state
// bit. It returns nil when w has moved or may have (the caller looks
// again), errPeerClosed when the peer has closed, or ErrPeerGone, or
// ctx.Err().
func (e *end) await(ctx context.Context, w *uint32, old uint32, sleeping *uint32, peerClosed uint32) error {
	quiet := false // a round of the poller has passed in this wait
	for {
		atomic.StoreUint32(sleeping, 1)
		if atomic.LoadUint32(w) != old {
			atomic.StoreUint32(sleeping, 0)
			return nil
		}
		if atomic.LoadUint32(e.state)&peerClosed != 0 {
			atomic.StoreUint32(sleeping, 0)
			return errPeerClosed
		}
		if err := ctx.Err(); err != nil {
			// No sleep, so nothing for the poller: an end that never
			// closes (a fuzz test's) would stay in poll.ends.
			atomic.StoreUint32(sleeping, 0)
			return err
		}
		sleeps.Add(1)
		waitFor := wake.Wait
		if !quiet && !e.peerHere() {
			// With one P, keeps it for a moment; not once a round has
			// passed: the peer is in no hurry, and the poller woke every
			// sleeping end at once, which would keep the P in turn.
			waitFor = waitPeer
		}
		round := e.sleep()
		err := waitFor(ctx, w, old)
		e.asleep.Store(false)
		atomic.StoreUint32(sleeping, 0)
		if atomic.LoadUint32(w) != old {
			return nil
		}
		if err != nil {
			return err
		}
		if poll.rounds.Load() == round {
			continue // not the poller's wake-up
		}
		quiet = true
		if e.creator && atomic.LoadUint32(e.state)&stateOpened == 0 {
			continue // no peer yet
		}
		if !e.watch.peerAlive(e.seg, e.creator) {
			if atomic.LoadUint32(w) != old {
				return nil // a last word from the peer
			}
			if atomic.LoadUint32(e.state)&peerClosed != 0 {
				return errPeerClosed
			}
			return errPeerDied
		}
	}
}

// peerHere reports whether the peer's end is in this process, by the pid
// it wrote into the header (the creator's at once, the opener's before it
// opens): then its waker is a goroutine of this process, which a wait that
// keeps the process' only P would hold up (wake.WaitPeer). A pid that a
// peer forges costs at most that.
func (e *end) peerHere() bool {
	off := offCreatorPID
	if e.creator {
		off = offOpenerPID
	}
	return atomic.LoadUint32(word(e.seg, off)) == e.pid
}

// waitPeer is wake.WaitPeer with no deadline.
func waitPeer(ctx context.Context, w *uint32, old uint32) error {
	return wake.WaitPeer(ctx, w, old, time.Time{})
}

// sleepWord is the word this end sleeps on, which the peer writes: head
// for the producer, tail for the consumer.
func (e *end) sleepWord() *uint32 {
	if e.kind == endProducer {
		return e.head
	}
	return e.tail
}

// sleeps and wakeups count the waits that went to sleep and the wake-ups
// sent, in this process, for the tests: between ends that keep up with each
// other both stay still.
var sleeps, wakeups atomic.Int64

// wakePeer wakes the peer that sleeps on w.
func wakePeer(w *uint32) {
	wakeups.Add(1)
	wake.Wake(w, 1)
}

// spinWhile watches w while it holds old, for up to d or until ctx ends,
// and reports whether it moved. It pauses between loads (pause) and reads
// the clock and ctx only every spinCheck loads: a read of the clock costs a
// fair part of a load of a word that another CPU writes (BENCHMARKS.md,
// "Figures the code reasons from").
func spinWhile(ctx context.Context, w *uint32, old uint32, d time.Duration) bool {
	var start time.Time // read at the first check: most spins end before
	for i := 1; ; i++ {
		if atomic.LoadUint32(w) != old {
			return true
		}
		pause()
		if i%spinCheck == 0 {
			if i == spinCheck {
				start = time.Now()
			} else if time.Since(start) >= d || ctx.Err() != nil {
				return false
			}
		}
	}
}

const spinCheck = 16

// maxSpin bounds a spin: longer is no use, since a wake-up costs far less
// than that (BENCHMARKS.md), and a spin does not ask whether the peer lives.
// (A variable for tests, which need a spin that outlasts a slow machine's
// pauses.)
var maxSpin = 10 * time.Millisecond

// setSpin sets how long a wait spins: d, at most maxSpin; d <= 0 never
// spins.
func (e *end) setSpin(d time.Duration) { e.spin = min(max(d, 0), maxSpin) }

var (
	errPeerClosed = errors.New("ring: the other end has closed") // mapped by the caller
	errPeerDied   = fmt.Errorf("%w: its process has died", ErrPeerGone)
)
