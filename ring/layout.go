package ring

import (
	"fmt"
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/shmmap-go/shmmap"
)

// HeaderSize is the size of a ring's header, the offset of its buffer.
const HeaderSize = 512

// Layout constants; see the package documentation.
const (
	version     = 3
	recordAlign = 16 // so that a message's bytes start 16-byte aligned
	recordHead  = 16 // a record's length, stamp and 8 reserved bytes
	minCapacity = 64
	maxCapacity = 1 << 30

	offMagic       = 0
	offVersion     = 8
	offHeaderSize  = 12
	offCapacity    = 16
	offAlign       = 20
	offCreatorEnd  = 24
	offState       = 28
	offCreatorPID  = 32
	offOpenerPID   = 36
	offCreatorTime = 40
	offOpenerTime  = 48
	offTail        = 128
	offConsSleep   = 132
	offHead        = 256
	offProdSleep   = 260

	endProducer = 1
	endConsumer = 2

	stateOpened     = 1 << 0
	stateProdClosed = 1 << 1
	stateConsClosed = 1 << 2

	kindMessage = 0
	kindPadding = 1

	// A record's stamp is its position with these bits set: stamped, so
	// that a zeroed word is no stamp, and its kind. A position is a
	// multiple of recordAlign, so its low 4 bits are free.
	stampKind    = 1
	stampStamped = 4
)

var magic = [8]byte{'s', 'h', 'm', 'r', 'i', 'n', 'g', 0}

// word returns the 32-bit word of seg at off.
func word(seg []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&seg[off]))
}

// segmentSize returns the size of a segment for a ring of at least
// capacity bytes, and that capacity rounded up to a power of two.
func segmentSize(capacity int) (size, rounded int, err error) {
	switch {
	case capacity <= 0:
		return 0, 0, fmt.Errorf("ring: capacity %d, want 1 to %d: %w", capacity, maxCapacity, shmmap.ErrInvalidSize)
	case capacity > maxCapacity:
		return 0, 0, fmt.Errorf("%w: capacity %d, at most %d (%w)", ErrTooLarge, capacity, maxCapacity, shmmap.ErrInvalidSize)
	}
	rounded = max(minCapacity, 1<<bits.Len(uint(capacity-1)))
	return HeaderSize + rounded, rounded, nil
}

// initHeader writes a new ring's header into seg, zero-filled; the version
// goes last, so that a header with a version is complete.
func initHeader(seg []byte, capacity int, creatorEnd uint32, pid uint32, start uint64) {
	copy(seg[offMagic:], magic[:])
	*word(seg, offHeaderSize) = HeaderSize
	*word(seg, offCapacity) = uint32(capacity)
	*word(seg, offAlign) = recordAlign
	*word(seg, offCreatorEnd) = creatorEnd
	*word(seg, offCreatorPID) = pid
	*(*uint64)(unsafe.Pointer(&seg[offCreatorTime])) = start
	atomic.StoreUint32(word(seg, offVersion), version)
}

// checkHeader validates the header of seg, a whole segment, and returns the
// ring's capacity and creator's end.
func checkHeader(seg []byte) (capacity int, creatorEnd uint32, err error) {
	if len(seg) < HeaderSize {
		return 0, 0, fmt.Errorf("%w: segment of %d bytes, shorter than a ring's header", ErrCorrupt, len(seg))
	}
	if [8]byte(seg[offMagic:offMagic+8]) != magic {
		return 0, 0, fmt.Errorf("%w: no ring magic", ErrCorrupt)
	}
	if v := atomic.LoadUint32(word(seg, offVersion)); v != version {
		return 0, 0, fmt.Errorf("%w: version %d, this package reads %d", ErrVersion, v, version)
	}
	c := *word(seg, offCapacity)
	switch {
	case *word(seg, offHeaderSize) != HeaderSize:
		err = fmt.Errorf("%w: header size %d, want %d", ErrCorrupt, *word(seg, offHeaderSize), HeaderSize)
	case *word(seg, offAlign) != recordAlign:
		err = fmt.Errorf("%w: alignment %d, want %d", ErrCorrupt, *word(seg, offAlign), recordAlign)
	case c < minCapacity || c > maxCapacity || c&(c-1) != 0:
		err = fmt.Errorf("%w: capacity %d", ErrCorrupt, c)
	case uint64(len(seg)) < HeaderSize+uint64(c):
		err = fmt.Errorf("%w: truncated: %d bytes, a ring of capacity %d needs %d", ErrCorrupt, len(seg), c, HeaderSize+c)
	}
	if err != nil {
		return 0, 0, err
	}
	e := *word(seg, offCreatorEnd)
	if e != endProducer && e != endConsumer {
		return 0, 0, fmt.Errorf("%w: creator's end %d", ErrCorrupt, e)
	}
	return int(c), e, nil
}

// checkPositions returns an error wrapping ErrCorrupt unless tail and head,
// read from a ring of capacity bytes, can be its positions: multiples of
// recordAlign, with tail - head (mod 2^32) from 0 to capacity.
func checkPositions(tail, head uint32, capacity int) error {
	if tail%recordAlign != 0 || head%recordAlign != 0 || tail-head > uint32(capacity) {
		return badPositions(tail, head)
	}
	return nil
}

// badPositions is the error for tail and head that cannot be a ring's.
func badPositions(tail, head uint32) error {
	return fmt.Errorf("%w: tail %d and head %d", ErrCorrupt, tail, head)
}

// stampOf returns the stamp of a record at position pos, without its kind:
// the value that a stamp word with its kind bit cleared holds when the
// record at pos is committed.
func stampOf(pos uint32) uint32 { return pos | stampStamped }

// stamped reports whether st, a stamp word, is the stamp of a committed
// record at position pos, of either kind.
func stamped(st, pos uint32) bool { return st&^stampKind == stampOf(pos) }

// align rounds n up to the record alignment.
func align(n int) int { return (n + recordAlign - 1) &^ (recordAlign - 1) }
