package ring

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"unsafe"
)

// A hostile peer shares the segment and may write anything there at any
// moment: these tests write the positions and records that once made an
// end panic or write past its buffer, and expect ErrCorrupt instead.

// slackLen is how many bytes past a segment's end slack watches: a ring of
// capacity 4096 ends 512 bytes into its last page, so they are mapped.
const slackLen = 64

// slack returns the slackLen bytes that follow segment seg in its last
// page, filled with a pattern.
func slack(seg []byte) []byte {
	s := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(seg)), len(seg))), slackLen)
	for i := range s {
		s[i] = byte(0xA5 ^ i)
	}
	return s
}

// unchanged returns a check that s still holds what it holds now.
func unchanged(t *testing.T, s []byte) func() {
	was := string(s)
	return func() {
		t.Helper()
		for i := range s {
			if s[i] != was[i] {
				t.Errorf("written past the segment: byte %d after its end is %#x, was %#x", i, s[i], was[i])
			}
		}
	}
}

// noPanic runs f and returns its panic as an error.
func noPanic(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	f()
	return nil
}

// ended is a context that has ended: a call given it never waits.
func ended() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestCorruptPositionsAtOpen: tail and head that are not multiples of 16, or
// whose distance is not from 0 to the capacity, make Open fail with
// ErrCorrupt; a full ring opens. Each corrupt case once made the opened end
// panic or write past the segment's end when used.
func TestCorruptPositionsAtOpen(t *testing.T) {
	// sends reserves and commits each size in turn: Reserve may fail with
	// the ring full, never panic or write outside.
	sends := func(sizes ...int) func(p *Producer) {
		return func(p *Producer) {
			for _, n := range sizes {
				if b, err := p.Reserve(ended(), n); err == nil {
					fill(b, 0)
					p.Commit(len(b))
				}
			}
		}
	}
	for _, tc := range []struct {
		name       string
		tail, head uint32
		damage     func(buf, slack []byte) // the hostile creator's records
		produce    func(*Producer)         // the opened producer's calls
		opens      bool                    // the positions are sound
	}{
		// The consumer's head straddles the buffer's end with a stamp there.
		{name: "consumer-head-4090", tail: 4106, head: 4090, damage: func(buf, slack []byte) {
			putHead(buf, 4088, 0, 0)
			buf[4094], buf[4095], slack[0], slack[1] = 0xFE, 0x0F, 0, 0 // the stamp of 4090
		}},
		{name: "consumer-head-4092", tail: 4092, head: 4092},
		{name: "consumer-tail-4", tail: 4, head: 0},
		{name: "consumer-tail-past-capacity", tail: 4096 + 16, head: 0},
		{name: "consumer-tail-behind-head", tail: 0, head: 16},
		{name: "consumer-full", tail: 4096 + 16, head: 16, opens: true},
		{name: "producer-4", tail: 4, head: 4, produce: sends(4080)},
		{name: "producer-4094", tail: 4094, head: 4094, produce: sends(0, 100, 4080)},
		{name: "producer-4092", tail: 4092, head: 4092, produce: sends(0, 100, 4080)},
		{name: "producer-minus-4", tail: 0xFFFFFFFC, head: 0xFFFFFFFC, produce: sends(0, 100, 4080)},
		{name: "producer-2", tail: 2, head: 2, produce: sends(4080, 0)},
		{name: "producer-head-4", tail: 16, head: 4, produce: sends(4080)},
		{name: "producer-tail-past-capacity", tail: 4096 + 16, head: 0, produce: sends(100)},
		{name: "producer-tail-behind-head", tail: 0, head: 16, produce: sends(100)},
		{name: "producer-full", tail: 0, head: 1<<32 - 4096, produce: sends(100), opens: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			var creator interface{ Close() error }
			var e *end
			if tc.produce != nil {
				c, err := CreateConsumer(4096)
				if err != nil {
					t.Fatal(err)
				}
				creator, e = c, c.e
			} else {
				p, err := CreateProducer(4096)
				if err != nil {
					t.Fatal(err)
				}
				creator, e = p, p.e
			}
			defer creator.Close()
			s := slack(e.seg)
			atomic.StoreUint32(e.tail, tc.tail)
			atomic.StoreUint32(e.head, tc.head)
			if tc.damage != nil {
				tc.damage(e.buf, s)
			}
			intact := unchanged(t, s)
			var err error
			if tc.produce != nil {
				var p *Producer
				if p, err = OpenProducer(e.key); err == nil {
					defer p.Close()
					if perr := noPanic(func() { tc.produce(p) }); perr != nil {
						t.Error(perr)
					}
				}
			} else {
				var c *Consumer
				if c, err = OpenConsumer(e.key); err == nil {
					defer c.Close()
					if perr := noPanic(func() { c.Next(ended()) }); perr != nil {
						t.Error(perr)
					}
				}
			}
			if tc.opens && err != nil {
				t.Errorf("Open with tail %d, head %d: %v", tc.tail, tc.head, err)
			} else if !tc.opens && !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open with tail %d, head %d: %v; want ErrCorrupt", tc.tail, tc.head, err)
			}
			intact()
		})
	}
}

// TestCorruptHeadSeen: a head that the producer loads while it waits for
// room, not a multiple of 16, past its tail or more than the capacity
// behind it, is ErrCorrupt from Reserve; a head that moves as a consumer's
// does makes room.
func TestCorruptHeadSeen(t *testing.T) {
	tail := uint32(224) // after one message of 200 bytes: 32 bytes free
	for _, tc := range []struct {
		name string
		head uint32
		want error
	}{
		{"unaligned", 4, ErrCorrupt},
		{"past-tail", tail + 16, ErrCorrupt},
		{"behind-by-more-than-capacity", tail - 256 - 16, ErrCorrupt},
		{"behind-by-capacity", tail - 256, context.Canceled},
		{"at-tail", tail, nil},
		{"unmoved", 0, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			p, _ := pair(t, 256)
			send(t, p, 200, 0)
			atomic.StoreUint32(p.e.head, tc.head)
			b, err := p.Reserve(ended(), 200)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Reserve with head %d, tail %d: %v; want %v", tc.head, tail, err, tc.want)
			}
			if err == nil {
				fill(b, 1)
				p.Commit(len(b))
			}
		})
	}
}

// TestCorruptTailSeen: a tail that the consumer loads while it waits, not a
// multiple of 16, or further than the capacity from its head either way, is
// ErrCorrupt from Next. Behind head by up to the capacity it is not: a
// consumer that takes records by their stamps may be ahead of tail.
func TestCorruptTailSeen(t *testing.T) {
	head := uint32(32) // after one message of 10 bytes
	for _, tc := range []struct {
		name string
		tail uint32
		want error
	}{
		{"unaligned-behind", head - 3, ErrCorrupt},
		{"unaligned-ahead", head + 3, ErrCorrupt},
		{"behind-by-more-than-capacity", head - 256 - 16, ErrCorrupt},
		{"ahead-by-more-than-capacity", head + 256 + 16, ErrCorrupt},
		{"behind-by-capacity", head - 256, context.Canceled},
		{"behind", head - 16, context.Canceled},
		{"at-head", head, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			p, c := pair(t, 256)
			send(t, p, 10, 0)
			receive(t, c, 10, 0)
			atomic.StoreUint32(p.e.tail, tc.tail)
			if m, err := c.Next(ended()); !errors.Is(err, tc.want) {
				t.Fatalf("Next with tail %d, head %d: %d bytes, %v; want %v", tc.tail, head, len(m), err, tc.want)
			}
		})
	}
}
