package ring

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
	"unsafe"
)

// A Consumer is the reading end of a ring. Its methods must be called from
// one goroutine at a time.
type Consumer struct {
	e         *end
	head      uint32 // = *e.head, which only this end writes
	next      uint32 // the position after the records taken: head, or past it
	consSleep *uint32
	prodSleep *uint32
}

// CreateConsumer makes a new ring whose buffer holds capacity bytes,
// rounded up to a power of two (at least 64, at most 1 GiB), and returns
// its consuming end; another process takes the producing end with
// OpenProducer(c.Key()). The ring lives until both ends have closed.
//
// The error wraps shmmap.ErrInvalidSize for a capacity out of range, below
// 1 or above 1 GiB, and ErrTooLarge too for one above; or is one of
// shmmap.Create's (an *fs.PathError).
func CreateConsumer(capacity int) (*Consumer, error) {
	e, err := create(capacity, endConsumer)
	if err != nil {
		return nil, err
	}
	return newConsumer(e), nil
}

// OpenConsumer maps the ring key, which a producer created with
// CreateProducer, and returns its consuming end.
//
// The error is an *fs.PathError wrapping ErrCorrupt, ErrVersion, ErrBusy
// (the creator is the consumer, or another process has opened the ring),
// ErrPeerGone (the creator has closed or died), shmmap.ErrInvalidKey, or an
// error of opening and mapping the segment, such as fs.ErrNotExist.
func OpenConsumer(key string) (*Consumer, error) {
	e, err := open(key, endConsumer)
	if err != nil {
		return nil, err
	}
	return newConsumer(e), nil
}

func newConsumer(e *end) *Consumer {
	return &Consumer{
		e:         e,
		head:      e.startHead,
		next:      e.startHead,
		consSleep: word(e.seg, offConsSleep),
		prodSleep: word(e.seg, offProdSleep),
	}
}

// SetSpin makes the waits of Next watch the ring for up to d (at most
// 10 ms) before they sleep, and d <= 0 (the default) not at all; see
// Spinning in the package documentation. A context that ends ends the spin
// too. Call it between calls of the end's other methods.
func (c *Consumer) SetSpin(d time.Duration) { c.e.setSpin(d) }

// Key returns the ring's key, for OpenProducer in another process.
func (c *Consumer) Key() string { return c.e.key }

// MaxMessage returns the length of the longest message the ring can take:
// its capacity minus 16.
func (c *Consumer) MaxMessage() int { return len(c.e.buf) - recordHead }

// Next takes the next message, waiting while the ring has none, and
// returns it. The slice points into the shared segment: read it in place
// (the producer does not touch it). A Next after a Next without Release
// takes the message after: a consumer may take several and free them all
// with one Release. Every slice that Next returned stays valid until the
// Release that frees it, or Close. Messages taken and not released keep
// their room in the ring: a producer that needs it waits, and a Next that
// waits for a message that only that room can hold waits until ctx ends.
// A Next that fails takes nothing.
//
// The error is io.EOF once the producer has closed and every message has
// been taken; ctx.Err() if ctx ends while Next waits (with an ended ctx,
// Next takes a message that is there and never waits); wraps ErrPeerGone if
// the producer's process died (after every message it committed has been
// taken), ErrCorrupt if a record does not fit the ring (it runs past the
// buffer's end, or with the records taken more than the capacity past
// head), a padding record does not end at the buffer's end or starts at
// its start, tail has passed a record without a stamp, or tail is not a
// multiple of 16 or further than the capacity from the position after the
// records taken (see Layout); and is ErrClosed after Close.
func (c *Consumer) Next(ctx context.Context) ([]byte, error) {
	e := c.e
	if e.closed {
		return nil, ErrClosed
	}
	for {
		off := int(c.next & e.mask)
		h := (*[2]uint32)(unsafe.Pointer(&e.buf[off]))
		st := atomic.LoadUint32(&h[1])
		if !stamped(st, c.next) {
			if err := c.wait(ctx, &h[1], st); err != nil {
				return nil, err
			}
			continue
		}
		n32 := h[0]                                  // once: a corrupt peer may change it
		if n32 > uint32(len(e.buf)-off-recordHead) { // as uint32: an int may be 32 bits
			return nil, fmt.Errorf("%w: record of %d bytes at %d", ErrCorrupt, n32, off)
		}
		n := int(n32)
		rec := uint32(recordHead + align(n))
		if c.next+rec-c.head > uint32(len(e.buf)) { // with those taken, more than a lap
			return nil, fmt.Errorf("%w: record of %d bytes at %d, more than the capacity past head %d", ErrCorrupt, n32, c.next, c.head)
		}
		if st&stampKind == kindPadding && (off == 0 || n != len(e.buf)-off-recordHead) {
			// The producer pads only to the buffer's end, and never from
			// its start: any other padding is a peer's, which could keep
			// this loop going without a wait that looks at ctx.
			return nil, fmt.Errorf("%w: padding of %d bytes at %d", ErrCorrupt, n32, off)
		}
		at := c.next
		c.next += rec
		if st&stampKind == kindPadding {
			if at == c.head {
				// Given back at once when no message is taken: a producer
				// may wait for the consumer to pass a padding record that
				// it published alone. Else with the messages, by Release.
				c.publish()
			}
			continue
		}
		return e.buf[off+recordHead : off+recordHead+n : off+recordHead+n], nil
	}
}

// Release gives back to the producer the bytes of every message taken
// since the last Release (by one Next or several), in one store, and
// wakes the producer if it waits for room: the slices that those Nexts
// returned are invalid from then on. It panics if there is no message
// taken (no Next that returned one since the last Release) or the end is
// closed.
func (c *Consumer) Release() {
	if c.next == c.head || c.e.closed {
		panic("ring: Release without Next")
	}
	c.publish()
}

// Close closes the consuming end: a producer waiting for room, or waiting
// later, gets an error wrapping ErrPeerGone. It unmaps the segment (every
// slice Next returned becomes invalid) and, in the ring's creator, removes
// its name. Close must not run while another call on c runs. A second
// Close returns ErrClosed; other errors are of unmapping or closing the
// segment.
func (c *Consumer) Close() error { return c.e.close() }

// wait waits while the stamp word of the record at next, sw, holds old,
// which is no stamp of that record: it watches sw while it spins, and
// sleeps on tail, which the producer stores after its stamps.
func (c *Consumer) wait(ctx context.Context, sw *uint32, old uint32) error {
	e := c.e
	if e.spin > 0 && spinWhile(ctx, sw, old, e.spin) {
		return nil
	}
	for {
		closed := atomic.LoadUint32(e.state)&stateProdClosed != 0
		t := atomic.LoadUint32(e.tail)
		// tail may be behind next, by the records of the commit whose
		// stamps this end has taken, but by no more than the capacity;
		// nor ahead of it by more, since tail is at most the capacity
		// ahead of head, which next never is behind.
		if capacity := uint32(len(e.buf)); t%recordAlign != 0 || t-c.next+capacity > 2*capacity {
			return badPositions(t, c.next)
		}
		if int32(t-c.next) > 0 {
			// Committed, so stamped: the stamp came before tail.
			if st := atomic.LoadUint32(sw); !stamped(st, c.next) {
				return fmt.Errorf("%w: no record at %d, before tail %d (stamp %#x)", ErrCorrupt, c.next, t, st)
			}
			return nil
		}
		if atomic.LoadUint32(sw) != old {
			return nil
		}
		if closed {
			return io.EOF
		}
		switch err := e.await(ctx, e.tail, t, c.consSleep, stateProdClosed); err {
		case nil, errPeerClosed:
		default:
			if atomic.LoadUint32(sw) != old {
				return nil // stamped, by a producer that died before it stored tail
			}
			return err
		}
	}
}

// publish stores next as the new head, releasing every record taken, and
// wakes a sleeping producer.
func (c *Consumer) publish() {
	c.head = c.next
	atomic.StoreUint32(c.e.head, c.next)
	if atomic.LoadUint32(c.prodSleep) != 0 {
		wakePeer(c.e.head)
	}
}
