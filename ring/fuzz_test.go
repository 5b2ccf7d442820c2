package ring

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/shmmap-go/shmmap"
)

// The fuzz targets put one end, consumer or producer, in a ring in a plain
// byte slice with guard bytes on both sides, and let the input play its
// peer: the header's words at open, then a script that calls the end and,
// between its calls, writes anything anywhere in the segment. The end must
// never panic, never change a byte outside the segment, never write the
// segment outside its own words and (for the producer) the buffer, and
// fail only with errors its documentation names for what the input can do
// (no peer dies here, and no call waits).

// fuzzGuard is the number of bytes watched on each side of the segment.
const fuzzGuard = 64

// The script's operations: an opcode byte, then its operands. Those of the
// peer write the segment; the others call the end.
const (
	opWord    = iota // offset uint16, value uint32: a word anywhere in the segment
	opByte           // offset uint16, value byte: a byte anywhere in the segment
	opAddTail        // delta int8: tail += delta (times recordAlign if the opcode's bit 7 is set)
	opAddHead        // delta int8: head += delta (idem)
	opCall           // n uint16: Next, or Reserve of a length made of n
	opDone           // n uint16: Release, or Commit or Abort as n says (see the targets)
	opPeer           // n uint16, flags byte: the peer's own step (see the targets)
	numOps
)

// fuzzMaxOps bounds the operations run per input, so that each is quick.
const fuzzMaxOps = 256

// A fuzzRing is a ring of a fuzz input, in a plain byte slice.
type fuzzRing struct {
	t     *testing.T
	arena []byte // guard, segment, guard
	guard byte   // the guards' every byte
	seg   []byte
	snap  []byte // for writesOnly
	e     *end
	ctx   context.Context // ended: a call never waits
	in    []byte          // the script left to run
}

// newFuzzRing makes a ring of 64 << shift%7 bytes, between guards of
// bytes guard, whose header holds tail, head and state, with the end kind
// at the given side: as the opener, it checks and starts from tail and
// head as Open does, and nil is returned if they are corrupt; as the
// creator it starts at 0, and the header's words are the peer's writes.
func newFuzzRing(t *testing.T, kind uint32, shift, guard uint8, opener bool, tail, head, state uint32, script []byte) *fuzzRing {
	capacity := minCapacity << (shift % 7)
	size := HeaderSize + capacity
	r := &fuzzRing{t: t, arena: make([]byte, fuzzGuard+size+fuzzGuard), guard: guard, ctx: ended(), in: script}
	r.seg = r.arena[fuzzGuard : fuzzGuard+size : fuzzGuard+size]
	r.snap = make([]byte, size)
	for i := range r.arena[:fuzzGuard] {
		r.arena[i], r.arena[fuzzGuard+size+i] = guard, guard
	}
	creatorEnd := uint32(endProducer + endConsumer - kind)
	if !opener {
		creatorEnd = kind
	}
	initHeader(r.seg, capacity, creatorEnd, 1, 0)
	*word(r.seg, offTail), *word(r.seg, offHead), *word(r.seg, offState) = tail, head, state
	var startTail, startHead uint32
	if opener {
		if err := checkPositions(tail, head, capacity); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("checkPositions(%d, %d): %v, want ErrCorrupt", tail, head, err)
			}
			return nil
		}
		startTail, startHead = tail, head
	}
	r.e = newEnd(nil, r.seg, capacity, kind, !opener, watch{}, startTail, startHead)
	return r
}

// u8, u16 and u32 take the script's next number, little-endian, zero
// past its end.
func (r *fuzzRing) u8() uint8   { return uint8(r.take(1)) }
func (r *fuzzRing) u16() uint16 { return uint16(r.take(2)) }
func (r *fuzzRing) u32() uint32 { return r.take(4) }

func (r *fuzzRing) take(n int) (v uint32) {
	for i := range n {
		if i < len(r.in) {
			v |= uint32(r.in[i]) << (8 * i)
		}
	}
	r.in = r.in[min(n, len(r.in)):]
	return v
}

// run runs the script: the peer's writes here, the end's calls and the
// peer's steps by call, done and peer.
func (r *fuzzRing) run(call, done func(n uint16), peer func(n uint16, flags uint8)) {
	for ops := 0; len(r.in) > 0 && ops < fuzzMaxOps; ops++ {
		op := r.u8()
		switch (op &^ 0x80) % numOps {
		case opWord:
			off, v := int(r.u16())%(len(r.seg)/4)*4, r.u32()
			atomic.StoreUint32(word(r.seg, off), v)
		case opByte:
			off, v := int(r.u16())%len(r.seg), r.u8()
			r.seg[off] = v
		case opAddTail, opAddHead:
			d := uint32(int32(int8(r.u8())))
			if op&0x80 != 0 {
				d *= recordAlign
			}
			w := r.e.tail
			if (op&^0x80)%numOps == opAddHead {
				w = r.e.head
			}
			atomic.AddUint32(w, d)
		case opCall:
			call(r.u16())
		case opDone:
			done(r.u16())
		case opPeer:
			peer(r.u16(), r.u8())
		}
	}
}

// checkGuards fails the test if a byte outside the segment changed.
func (r *fuzzRing) checkGuards() {
	r.t.Helper()
	for i, b := range r.arena[:fuzzGuard] {
		if b != r.guard {
			r.t.Fatalf("byte %d before the segment changed", fuzzGuard-i)
		}
	}
	for i, b := range r.arena[fuzzGuard+len(r.seg):] {
		if b != r.guard {
			r.t.Fatalf("byte %d after the segment changed", i)
		}
	}
}

// writesOnly returns a check, for after a call of the end, that the call
// changed no byte outside the segment, and no byte of the segment below
// limit but those of the words at mine, in increasing order.
func (r *fuzzRing) writesOnly(limit int, mine ...int) func(call string) {
	was := r.snap[:limit]
	copy(was, r.seg)
	return func(call string) {
		r.t.Helper()
		r.checkGuards()
		from := 0
		for _, to := range append(mine, limit) {
			if !bytes.Equal(was[from:to], r.seg[from:to]) {
				for i := from; i < to; i++ {
					if was[i] != r.seg[i] {
						r.t.Fatalf("%s wrote byte %d of the segment, not its to write", call, i)
					}
				}
			}
			from = to + 4
		}
	}
}

// within fails the test unless s lies in the ring's buffer.
func (r *fuzzRing) within(call string, s []byte) {
	r.t.Helper()
	base := uintptr(unsafe.Pointer(unsafe.SliceData(r.e.buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	if cap(s) > 0 && (p < base || p+uintptr(cap(s)) > base+uintptr(len(r.e.buf))) {
		r.t.Fatalf("%s returned %d bytes at %d from the buffer's start, outside it", call, cap(s), int(p-base))
	}
}

// expect fails the test unless err is nil or one of want.
func (r *fuzzRing) expect(call string, err error, want ...error) {
	r.t.Helper()
	if err == nil {
		return
	}
	for _, w := range want {
		if errors.Is(err, w) {
			return
		}
	}
	r.t.Fatalf("%s: %v, not an error it documents", call, err)
}

// FuzzConsumer: a consumer in a ring whose producer writes anything. Calls
// of Next without Release take batches of messages; done releases them,
// and with none taken calls Release if n is odd, which must panic. The
// peer's step writes a record at the shared tail: a length made of n, then
// a stamp, its kind and low bits from flags&3; an exact stamp if flags&4,
// and a length that fits if flags&8; and stores the new tail if flags&16.
func FuzzConsumer(f *testing.F) {
	at := func(off uint16) []byte { return binary.LittleEndian.AppendUint16(nil, off) }
	seed := func(shift uint8, opener bool, tail, head uint32, ops ...[]byte) {
		f.Add(shift, uint8(0xA5), opener, tail, head, uint32(stateOpened), bytes.Join(ops, nil))
	}
	next, release := []byte{opCall, 0, 0}, []byte{opDone, 0, 0}
	record := func(n uint16, flags uint8) []byte { return append([]byte{opPeer}, append(at(n), flags)...) }
	// The head that straddled the buffer's end, and its stamp, with zeros
	// after the segment as in a page's slack (issue 17).
	f.Add(uint8(6), uint8(0), true, uint32(4106), uint32(4090), uint32(stateOpened), bytes.Join([][]byte{
		{opByte}, at(HeaderSize + 4094), {0xFE}, {opByte}, at(HeaderSize + 4095), {0x0F}, next}, nil))
	seed(6, true, 4092, 4092, next)
	// A stream of records, through the buffer's end twice.
	var stream [][]byte
	for i := range 12 {
		stream = append(stream, record(uint16(i*37), 4|8|16), next, release)
	}
	seed(2, false, 0, 0, stream...)
	seed(2, true, 1<<32-256, 1<<32-256, stream...)
	// A padding record, a record of the whole ring, a tail far off.
	seed(0, false, 0, 0, record(0, 4|8|16|kindPadding), next, release, record(48, 4|8|16), next, release)
	seed(0, false, 0, 0, record(100, 4|16), next)
	seed(0, false, 0, 0, []byte{opAddTail | 0x80, 100}, next)
	seed(0, false, 0, 0, []byte{opAddTail, 0xFD}, next)
	// Batches: three messages, then one Release; a padding record within a
	// batch; a record forged a lap on, over the batch; a Release of none.
	seed(2, false, 0, 0, record(10, 4|8|16), record(20, 4|8|16), record(30, 4|8|16), next, next, next, release,
		record(40, 4|8|16), next, next, release)
	seed(0, false, 0, 0, record(20, 4|8|16), next, record(0, 4|8|16|kindPadding), record(10, 4|8|16), next, next, release)
	seed(0, false, 0, 0, record(20, 4|8|16), next, record(0, 4|8|16|kindPadding), record(8, 4|8|16), next, release)
	seed(0, false, 0, 0, []byte{opDone, 1, 0}, record(0, 4|8|16), next, release, []byte{opDone, 1, 0})
	f.Fuzz(func(t *testing.T, shift, guard uint8, opener bool, tail, head, state uint32, script []byte) {
		r := newFuzzRing(t, endConsumer, shift, guard, opener, tail, head, state, script)
		if r == nil {
			return
		}
		c := newConsumer(r.e)
		// The consumer writes its head and its sleeper flag, nothing else.
		onlyOwn := func() func(string) { return r.writesOnly(len(r.seg), offConsSleep, offHead) }
		var batch [][]byte // the messages taken since the last Release
		r.run(func(uint16) {
			taken, h := c.next != c.head, atomic.LoadUint32(r.e.head)
			check := onlyOwn()
			m, err := c.Next(r.ctx)
			check("Next")
			r.expect("Next", err, ErrCorrupt, io.EOF, context.Canceled)
			r.within("Next", m)
			if taken && atomic.LoadUint32(r.e.head) != h {
				t.Fatal("Next stored head with messages taken")
			}
			if c.next-c.head > uint32(len(r.e.buf)) {
				t.Fatalf("taken from %d to %d: more than the capacity", c.head, c.next)
			}
			if err == nil && len(m) > 0 {
				addr := func(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
				for _, b := range batch { // the messages of a batch never overlap
					if addr(m) < addr(b)+uintptr(len(b)) && addr(b) < addr(m)+uintptr(len(m)) {
						t.Fatalf("Next returned bytes of a message taken before, not released")
					}
				}
				batch = append(batch, m)
			}
		}, func(n uint16) {
			if c.next != c.head {
				check := onlyOwn()
				c.Release()
				check("Release")
				if h := atomic.LoadUint32(r.e.head); h != c.next {
					t.Fatalf("Release stored head %d, want %d: all that was taken", h, c.next)
				}
				batch = batch[:0]
			} else if n&1 != 0 {
				check := r.writesOnly(len(r.seg))
				if noPanic(c.Release) == nil {
					t.Fatal("Release without a message taken did not panic")
				}
				check("Release without Next")
			}
		}, func(n uint16, flags uint8) {
			pos := atomic.LoadUint32(r.e.tail)
			off := int(pos&r.e.mask) &^ (recordAlign - 1)
			length := uint32(n)
			if flags&8 != 0 {
				length %= uint32(len(r.e.buf) - off - recordHead + 1)
			}
			st := uint32(flags & 3)
			if flags&4 != 0 {
				st |= stampOf(pos)
			}
			putHead(r.e.buf, off, length, st)
			if flags&16 != 0 {
				atomic.StoreUint32(r.e.tail, pos+recordHead+uint32(align(int(length))))
			}
		})
	})
}

// FuzzProducer: a producer in a ring whose consumer writes anything.
// Reserve's length is n mod (capacity + 9), less 1: from -1 to past
// MaxMessage; it writes there the heads that records of this lap would
// have. Done's n: 0 commits the whole reservation; with bit 15 set, a
// length out of range, which must panic (below 0 if bit 14 is set too);
// else n-1 mod (reserved + 2) is the length committed, or reserved + 1
// for Abort; with no reservation, a Commit that must panic if n is odd.
// The peer's step stores head: tail's value, less recordAlign*n if flags&1.
func FuzzProducer(f *testing.F) {
	at := func(n uint16) []byte { return binary.LittleEndian.AppendUint16(nil, n) }
	seed := func(shift uint8, opener bool, tail, head uint32, ops ...[]byte) {
		f.Add(shift, uint8(0xA5), opener, tail, head, uint32(stateOpened), bytes.Join(ops, nil))
	}
	reserve := func(n uint16) []byte { return append([]byte{opCall}, at(n+1)...) }
	commit, consume := []byte{opDone, 0, 0}, []byte{opPeer, 0, 0, 0}
	commitN := func(n uint16) []byte { return append([]byte{opDone}, at(n+1)...) }
	// The positions that made the producer panic or write past the buffer
	// (issue 17), as opener and as creator.
	for _, pos := range []uint32{4, 4094, 4092, 1<<32 - 4, 2} {
		for _, opener := range []bool{true, false} {
			ops := [][]byte{reserve(4080), commit, reserve(0), commit, reserve(100), commit, consume, reserve(4080), commit}
			if !opener {
				ops = append([][]byte{{opWord}, at(offTail / 4), binary.LittleEndian.AppendUint32(nil, pos),
					{opWord}, at(offHead / 4), binary.LittleEndian.AppendUint32(nil, pos)}, ops...)
			}
			seed(6, opener, pos, pos, ops...)
		}
	}
	// A stream through the buffer's end, padding included, and a message
	// that fills the ring after its padding.
	var stream [][]byte
	for i := range 12 {
		stream = append(stream, reserve(uint16(i*37)), commit, consume)
	}
	seed(2, false, 0, 0, stream...)
	seed(0, false, 0, 0, reserve(24), commit, consume, reserve(24), commit, consume, reserve(32), commit)
	// A head past tail, one too far behind, one unaligned.
	seed(0, false, 0, 0, reserve(24), commit, []byte{opAddHead | 0x80, 7}, reserve(24))
	seed(0, false, 0, 0, reserve(24), commit, []byte{opAddHead | 0x80, 0xF0}, reserve(24))
	seed(0, false, 0, 0, reserve(24), commit, []byte{opAddHead, 3}, reserve(24))
	// Commits shorter than the reservation, in the middle and after a
	// padding record that goes with the message; an Abort, and one after
	// a padding record published alone; lengths out of range.
	seed(0, false, 0, 0, reserve(24), commitN(0), reserve(24), commitN(9), reserve(32), commitN(17), consume,
		reserve(24), commitN(1), consume, reserve(30), commitN(30))
	seed(0, false, 0, 0, reserve(24), commitN(25), reserve(8), commitN(9), consume, reserve(24), commitN(25), reserve(0), commit)
	seed(0, false, 0, 0, reserve(24), commit, consume, reserve(16), commit, reserve(32), commitN(33), consume, reserve(32), commit)
	seed(0, false, 0, 0, reserve(10), []byte{opDone, 1, 0x80}, []byte{opDone, 1, 0xC0}, commit, []byte{opDone, 1, 0})
	f.Fuzz(func(t *testing.T, shift, guard uint8, opener bool, tail, head, state uint32, script []byte) {
		r := newFuzzRing(t, endProducer, shift, guard, opener, tail, head, state, script)
		if r == nil {
			return
		}
		p := newProducer(r.e)
		// The producer writes the buffer, its tail and its sleeper flag.
		onlyOwn := func() func(string) { return r.writesOnly(HeaderSize, offTail, offProdSleep) }
		r.run(func(n uint16) {
			check := onlyOwn()
			size := int(n)%(len(r.e.buf)+9) - 1
			b, err := p.Reserve(r.ctx, size)
			check("Reserve")
			r.expect("Reserve", err, ErrCorrupt, shmmap.ErrInvalidSize, ErrPeerGone, context.Canceled)
			if err == nil {
				if len(b) != size {
					t.Fatalf("Reserve(%d): %d bytes", size, len(b))
				}
				r.within("Reserve", b)
				at := p.tail + uint32(p.pad) + recordHead
				for x := 0; x+recordHead <= len(b); x += recordHead {
					putHead(b, x, uint32(n), stampOf(at+uint32(x))|uint32(x/recordHead)&1)
				}
			}
		}, func(n uint16) {
			reserved := p.n
			if reserved < 0 {
				if n&1 != 0 {
					check := r.writesOnly(len(r.seg))
					if noPanic(func() { p.Commit(0) }) == nil {
						t.Fatal("Commit without a reservation did not panic")
					}
					check("Commit without Reserve")
				}
				return
			}
			m := reserved
			switch {
			case n&0x8000 != 0:
				m = reserved + 1 + int(n&0xFF)
				if n&0x4000 != 0 {
					m = -1 - int(n&0xFF)
				}
				check := r.writesOnly(len(r.seg))
				if noPanic(func() { p.Commit(m) }) == nil {
					t.Fatalf("Commit(%d) of a reservation of %d bytes did not panic", m, reserved)
				}
				check("Commit out of range")
				return
			case n != 0:
				m = int(n-1) % (reserved + 2)
			}
			if m > reserved { // Abort, after which Commit panics
				check := r.writesOnly(len(r.seg))
				p.Abort()
				if noPanic(func() { p.Commit(0) }) == nil {
					t.Fatal("Commit after Abort did not panic")
				}
				check("Abort")
				return
			}
			tail, pad := p.tail, p.pad
			check := onlyOwn()
			p.Commit(m)
			check("Commit")
			msg, next := tail+uint32(pad), tail+uint32(pad+recordHead+align(m))
			if got := atomic.LoadUint32(r.e.tail); got != next || p.tail != next {
				t.Fatalf("Commit(%d) at %d, padding %d: tail %d, this end's %d; want %d", m, tail, pad, got, p.tail, next)
			}
			if h := (*[recordHead / 4]uint32)(unsafe.Pointer(&r.e.buf[msg&r.e.mask])); h[0] != uint32(m) || h[1] != stampOf(msg) || h[2]|h[3] != 0 {
				t.Fatalf("Commit(%d) at %d: head %d, %#x, reserved %#x %#x", m, msg, h[0], h[1], h[2], h[3])
			}
			if pad > 0 {
				if h := (*[2]uint32)(unsafe.Pointer(&r.e.buf[tail&r.e.mask])); h[0] != uint32(pad-recordHead) || h[1] != stampOf(tail)|kindPadding {
					t.Fatalf("Commit(%d) at %d: padding head %d, %#x", m, tail, h[0], h[1])
				}
			}
			if uint32(len(r.e.buf))-(next-p.head) >= recordHead && *word(r.e.buf, int(next&r.e.mask)+4) != 0 {
				t.Fatalf("Commit(%d) at %d: the stamp word after it, at %d, is not cleared", m, msg, next)
			}
		}, func(n uint16, flags uint8) {
			h := atomic.LoadUint32(r.e.tail)
			if flags&1 != 0 {
				h -= uint32(n) * recordAlign
			}
			atomic.StoreUint32(r.e.head, h)
		})
	})
}
