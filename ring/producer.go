package ring

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/internal/memcopy"
)

// A Producer is the writing end of a ring. Its methods must be called from
// one goroutine at a time.
type Producer struct {
	e         *end
	tail      uint32 // = *e.tail, which only this end writes
	head      uint32 // the consumer's head, as last seen
	n         int    // the reserved message's length, or -1: no reservation
	pad       int    // the padding record's size before it, or 0
	consSleep *uint32
	prodSleep *uint32
}

// CreateProducer makes a new ring whose buffer holds capacity bytes,
// rounded up to a power of two (at least 64, at most 1 GiB), and returns
// its producing end; another process takes the consuming end with
// OpenConsumer(p.Key()). The ring lives until both ends have closed.
//
// The error wraps shmmap.ErrInvalidSize for a capacity out of range, below
// 1 or above 1 GiB, and ErrTooLarge too for one above; or is one of
// shmmap.Create's (an *fs.PathError).
func CreateProducer(capacity int) (*Producer, error) {
	e, err := create(capacity, endProducer)
	if err != nil {
		return nil, err
	}
	return newProducer(e), nil
}

// OpenProducer maps the ring key, which a consumer created with
// CreateConsumer, and returns its producing end.
//
// The error is an *fs.PathError wrapping ErrCorrupt, ErrVersion, ErrBusy
// (the creator is the producer, or another process has opened the ring),
// ErrPeerGone (the creator has closed or died), shmmap.ErrInvalidKey, or an
// error of opening and mapping the segment, such as fs.ErrNotExist.
func OpenProducer(key string) (*Producer, error) {
	e, err := open(key, endProducer)
	if err != nil {
		return nil, err
	}
	return newProducer(e), nil
}

func newProducer(e *end) *Producer {
	return &Producer{
		e:         e,
		tail:      e.startTail,
		head:      e.startHead,
		n:         -1,
		consSleep: word(e.seg, offConsSleep),
		prodSleep: word(e.seg, offProdSleep),
	}
}

// SetSpin makes the waits of Reserve watch the ring for up to d (at most
// 10 ms) before they sleep, and d <= 0 (the default) not at all; see
// Spinning in the package documentation. A context that ends ends the spin
// too. Call it between calls of the end's other methods.
func (p *Producer) SetSpin(d time.Duration) { p.e.setSpin(d) }

// Key returns the ring's key, for OpenConsumer in another process.
func (p *Producer) Key() string { return p.e.key }

// MaxMessage returns the length of the longest message the ring can take:
// its capacity minus 16.
func (p *Producer) MaxMessage() int { return len(p.e.buf) - recordHead }

// Reserve returns n bytes of the ring for the next message, waiting while
// the ring is too full to take them, then never again, until Commit. The
// slice points into the shared segment: write the message there, then
// Commit it, or as much of it as was written, or Abort it; the slice is
// valid until Commit, Abort, the next Reserve or Close. A Reserve after a
// Reserve without Commit replaces its reservation (with the same bytes if n
// is the same); a Reserve that fails leaves none, and Commit then panics.
//
// A message that does not fit before the buffer's end goes at its start,
// after a padding record to the end (see Layout). When the padding and the
// message do not fit in the free space together, Reserve publishes the
// padding alone and waits until the consumer has passed it, even on an
// empty ring: a goroutine that sends on a ring and only then receives from
// it can wait there for ever (until ctx ends).
//
// The error wraps shmmap.ErrInvalidSize if n is negative or more than
// MaxMessage, and ErrTooLarge too if it is more; is ctx.Err() if ctx ends
// while Reserve waits; wraps ErrPeerGone if, while it waits, the consumer
// closes its end or its process dies; wraps ErrCorrupt if the consumer's
// head is not a multiple of 16, is past tail or is behind it by more than
// the capacity (see Layout); and is ErrClosed after Close.
func (p *Producer) Reserve(ctx context.Context, n int) ([]byte, error) {
	e := p.e
	if e.closed {
		return nil, ErrClosed
	}
	p.n = -1 // until this one succeeds: it may move tail (padding) or fail
	if n < 0 || n > len(e.buf)-recordHead {
		return nil, messageSizeError(n, len(e.buf)-recordHead)
	}
	rec := recordHead + align(n)
	off := int(p.tail & e.mask)
	pad := 0
	if left := len(e.buf) - off; rec > left {
		// Pad to the end of the buffer, so that the message is contiguous.
		// The padding goes to the consumer with the message, in one store
		// and at most one wake-up, when both fit in the ring; else first,
		// for the consumer to free the start of the buffer.
		if left+rec <= len(e.buf) {
			pad = left
		} else if err := p.room(ctx, left); err != nil {
			return nil, err
		} else {
			p.clearStamp(p.tail + uint32(left))
			p.stamp(p.tail, left-recordHead, kindPadding)
			p.publish(p.tail + uint32(left))
		}
		off = 0
	}
	if err := p.room(ctx, pad+rec); err != nil {
		return nil, err
	}
	p.n, p.pad = n, pad
	return e.buf[off+recordHead : off+recordHead+n : off+recordHead+n], nil
}

// Commit hands the first n bytes of the reserved message to the consumer,
// as the message, and wakes the consumer if it sleeps: an encoder that
// learns the message's length as it writes writes in place, then commits
// what it wrote. The bytes after the first n are not sent, and the
// message takes only the room of n bytes; it stays where Reserve put it,
// after a padding record if the reserved length needed one. Commit panics
// if there is no reservation (no Reserve since the last Commit or Abort,
// or a Reserve that failed), if n is negative or more than the reserved
// length, or if the end is closed.
func (p *Producer) Commit(n int) {
	if p.n < 0 || p.e.closed {
		panic("ring: Commit without Reserve")
	}
	if uint(n) > uint(p.n) {
		panic(fmt.Sprintf("ring: Commit(%d) of a reservation of %d bytes: want 0 to %d", n, p.n, p.n))
	}
	msg := p.tail + uint32(p.pad)
	next := msg + uint32(recordHead+align(n))
	p.clearStamp(next)
	p.stamp(msg, n, kindMessage)
	if p.pad > 0 {
		p.stamp(p.tail, p.pad-recordHead, kindPadding)
	}
	if testHookStamped != nil {
		testHookStamped()
	}
	p.publish(next)
	p.n = -1
}

// Send sends a copy of msg as the next message: Reserve(ctx, len(msg)),
// a copy into the ring and Commit, in one call. It waits and fails as
// Reserve does, with its errors; on an error nothing is sent. A reservation
// that Reserve made and nothing committed is dropped.
//
// Send copies the way C's memcpy does, keeping the message in the cache
// for the consumer to read; on amd64 CPUs other than Intel's with FSRM,
// Go's copy of 1 MiB or more into a reservation does not (see Sending in
// the package documentation). So send a message that is in a slice with
// Send, and write one in place with Reserve and Commit.
func (p *Producer) Send(ctx context.Context, msg []byte) error {
	b, err := p.Reserve(ctx, len(msg))
	if err != nil {
		return err
	}
	memcopy.Copy(b, msg)
	p.Commit(len(msg))
	return nil
}

// Abort drops the reservation: nothing of it reaches the consumer, and the
// next Reserve starts where this one did. A padding record that Reserve
// published alone, before the reservation at the buffer's start, stays
// published (the consumer passes it by), and the next Reserve starts
// after it. Abort without a reservation, or on a closed end, does nothing.
func (p *Producer) Abort() { p.n = -1 }

// Close closes the producing end: the consumer receives io.EOF once it has
// read every committed message; a reserved message is dropped. It unmaps
// the segment (every slice Reserve returned becomes invalid) and, in the
// ring's creator, removes its name. Close must not run while another call
// on p runs. A second Close returns ErrClosed; other errors are of unmapping
// or closing the segment.
func (p *Producer) Close() error { return p.e.close() }

// room waits until rec bytes after the tail are free.
func (p *Producer) room(ctx context.Context, rec int) error {
	e := p.e
	for uint32(len(e.buf))-(p.tail-p.head) < uint32(rec) {
		h := atomic.LoadUint32(e.head)
		if h != p.head {
			// A consumer's head is never past tail, nor behind it by more
			// than the capacity: such a head would count bytes the consumer
			// has not released as free.
			if err := checkPositions(p.tail, h, len(e.buf)); err != nil {
				return err
			}
			p.head = h
			continue
		}
		if e.spin > 0 && spinWhile(ctx, e.head, h, e.spin) {
			continue
		}
		switch err := e.await(ctx, e.head, h, p.prodSleep, stateConsClosed); err {
		case nil:
		case errPeerClosed:
			return fmt.Errorf("%w: the consumer has closed", ErrPeerGone)
		default:
			return err
		}
	}
	return nil
}

// stamp writes the head of the record at pos, n bytes of kind: the
// length and zero reserved bytes, then the stamp, in an atomic store that
// comes after every store of the record's bytes, so that the consumer,
// once it has loaded the stamp, reads them all.
func (p *Producer) stamp(pos uint32, n int, kind uint32) {
	h := (*[recordHead / 4]uint32)(unsafe.Pointer(&p.e.buf[pos&p.e.mask]))
	h[0] = uint32(n)
	*(*uint64)(unsafe.Pointer(&h[2])) = 0
	atomic.StoreUint32(&h[1], stampOf(pos)|kind)
}

// clearStamp clears the stamp word at pos, the position after the records
// about to be stamped, so that the consumer, once there, does not take the
// bytes of an earlier lap for a record: before the stamps that lead to it.
// It clears only if the record head at pos is free (by the head as last seen,
// which is never ahead of the consumer's); when they are not, they are the
// head of the record at pos - capacity, which the consumer has not
// released as far as this end knows, and whose stamp is not pos's.
func (p *Producer) clearStamp(pos uint32) {
	if uint32(len(p.e.buf))-(pos-p.head) >= recordHead {
		*word(p.e.buf, int(pos&p.e.mask)+4) = 0
	}
}

// testHookStamped, if set, runs in Commit between the stamps and the store
// of tail: the tests hold a producer there.
var testHookStamped func()

// publish stores the new tail and wakes a sleeping consumer.
func (p *Producer) publish(tail uint32) {
	p.tail = tail
	atomic.StoreUint32(p.e.tail, tail)
	if atomic.LoadUint32(p.consSleep) != 0 {
		wakePeer(p.e.tail)
	}
}

// messageSizeError is Reserve's error for a message length n out of 0 to
// max.
func messageSizeError(n, max int) error {
	if n < 0 {
		return fmt.Errorf("ring: message of %d bytes: %w", n, shmmap.ErrInvalidSize)
	}
	return fmt.Errorf("%w: message of %d bytes, at most %d (%w)", ErrTooLarge, n, max, shmmap.ErrInvalidSize)
}
