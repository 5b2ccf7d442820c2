// Package ringbench holds what the ring benchmarks of package ring's tests
// and of cmd/shmbench share: the payload the shared peers send (a fixed
// pattern with the message number in its first and last 8 bytes, checked
// by a sum of its 64-bit words), the two loops of the child process, and
// pinning to CPUs as SHMMAP_PEERS_PIN asks. It lives with the benchmarks,
// above package ring, whose benchmarks and cmd/shmbench import it; it is
// no API of the module.
package ringbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unsafe"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/ring"
)

// PinEnv is the variable that asks for pinning, as the peers read it.
const PinEnv = "SHMMAP_PEERS_PIN"

// WholeEnv, set to 1, makes Pin pin every thread of the process, as taskset
// would, rather than the caller's thread alone.
const WholeEnv = "SHMMAP_RINGBENCH_PIN_WHOLE"

// k is the second stamp's factor, as in ../shared/peers/c/msg.c.
const k = 0x9e3779b97f4a7c15

// A Payload is the message of one size, its pattern and the sum its words
// make without the stamps.
type Payload struct {
	pattern []byte
	base    uint64 // sum of the pattern's words but the first and last
	sender  Sender
	private []byte // the message in this process' memory, for PlainCopy and OneCall
}

// A Sender is how Payload.Send puts a message into the ring.
type Sender int

const (
	// Tuned copies the shared pattern into a reservation in pieces of
	// copyChunk (see copyCached), then stamps it in place.
	Tuned Sender = iota
	// PlainCopy stamps a message in this process' memory and copies it
	// into a reservation with copy, as a user who holds a slice writes it
	// first.
	PlainCopy
	// OneCall stamps a message in this process' memory and sends it with
	// Producer.Send.
	OneCall
)

var senderNames = []string{"tuned", "copy", "send"}

func (s Sender) String() string { return senderNames[s] }

// ParseSender returns the Sender of name: "tuned", "copy" or "send".
func ParseSender(name string) (Sender, error) {
	for i, n := range senderNames {
		if n == name {
			return Sender(i), nil
		}
	}
	return 0, fmt.Errorf("ringbench: sender %q: want one of %q", name, senderNames)
}

// Use makes p send its messages as s says, and returns p.
func (p *Payload) Use(s Sender) *Payload {
	p.sender = s
	if s != Tuned && p.private == nil {
		p.private = bytes.Clone(p.pattern)
	}
	return p
}

// NewPayload returns the payload of size bytes, a multiple of 32, in this
// process' memory.
func NewPayload(size int) *Payload {
	b := make([]byte, size)
	fillPattern(b)
	return payloadOf(b)
}

// SharePayload returns the payload of size bytes in a new segment, and its
// key, which the other process of the pair passes to OpenPayload: the two
// then copy their messages from the same memory, as the C peers' parent
// and child do (they fork after making the pattern, so its pages are shared
// copy-on-write, and the stamps, written in place, copy only the first and
// last page), and a pattern costs the caches once, not twice. The caller
// releases the segment with shmmap.Release(key).
func SharePayload(size int) (string, *Payload, error) {
	key, b, err := shmmap.Create(size)
	if err != nil {
		return "", nil, err
	}
	fillPattern(b)
	return key, payloadOf(b), nil
}

// OpenPayload maps, read-only, the payload of size bytes that SharePayload
// made under key; release it with shmmap.Release(key).
func OpenPayload(key string, size int) (*Payload, error) {
	if size <= 0 || size%32 != 0 {
		return nil, fmt.Errorf("ringbench: payload of %d bytes, want a multiple of 32", size)
	}
	b, err := shmmap.Read(key, size)
	if err != nil {
		return nil, err
	}
	return payloadOf(b), nil
}

func fillPattern(b []byte) {
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
}

func payloadOf(pattern []byte) *Payload {
	p := &Payload{pattern: pattern}
	w := words(pattern)
	for _, x := range w[1 : len(w)-1] {
		p.base += x
	}
	return p
}

func words(b []byte) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
}

// PingPongCapacity is the capacity of each ring of a ping-pong of size-byte
// messages: one message, or a page. A message larger than half the ring
// always goes at its start (after a padding record, sent with it), so that
// the data stays in the same cache lines as in the peers' single slot; a
// small one goes round a page, and the producer reads the consumer's head
// (a cache line from the other CPU) only when the page is full, not for
// every message.
func PingPongCapacity(size int) int { return max(size+16, 4096) } // 16: the record's head

// Send sends message i, the pattern with its stamps, as p's Sender says.
func (p *Payload) Send(ctx context.Context, w *ring.Producer, i uint64) error {
	if p.sender == OneCall {
		stamp(p.private, i)
		return w.Send(ctx, p.private)
	}
	b, err := w.Reserve(ctx, len(p.pattern))
	if err != nil {
		return err
	}
	if p.sender == PlainCopy {
		stamp(p.private, i)
		copy(b, p.private)
	} else {
		copyCached(b, p.pattern)
		stamp(b, i)
	}
	w.Commit(len(b))
	return nil
}

// copyChunk bounds the pieces copyCached copies.
const copyChunk = 256 << 10

// copyCached copies src to dst, as copy does, in pieces of copyChunk bytes.
// Go's copy moves 1 MiB or more with non-temporal stores on amd64
// (runtime/memmove_amd64.s: gobble_big_data_fwd), which write the message
// past the cache to memory, just before the other process reads it; glibc's
// memcpy, which the C peers call, keeps stores cached up to a threshold of
// ~3/4 of the L3 cache (sysdeps/x86/dl-cacheinfo.h:
// non_temporal_threshold). In pieces, Go's copy does what theirs does.
func copyCached(dst, src []byte) {
	for len(src) > copyChunk {
		copy(dst[:copyChunk], src)
		dst, src = dst[copyChunk:], src[copyChunk:]
	}
	copy(dst, src)
}

// stamp writes message number i into the first and last 8 bytes of b.
func stamp(b []byte, i uint64) {
	binary.NativeEndian.PutUint64(b, i)
	binary.NativeEndian.PutUint64(b[len(b)-8:], i*k)
}

// Recv reads the next message, checks in place every word of it against
// message i, and releases it. io.EOF is the end of the stream.
func (p *Payload) Recv(ctx context.Context, r *ring.Consumer, i uint64) error {
	b, err := r.Next(ctx)
	if err != nil {
		return err
	}
	if err := p.verify(b, i); err != nil {
		return err
	}
	r.Release()
	return nil
}

// verify checks that b is message i, by its length and the sum of its words.
func (p *Payload) verify(b []byte, i uint64) error {
	if len(b) != len(p.pattern) {
		return fmt.Errorf("message %d: %d bytes, want %d", i, len(b), len(p.pattern))
	}
	if got := sum(b); got != p.base+i+i*k {
		return fmt.Errorf("message %d: sum %#x, want %#x", i, got, p.base+i+i*k)
	}
	return nil
}

// sumGo sums the 64-bit words of b, whose length is a multiple of 32, with
// four accumulators, as the peers' C is written (msg.c: checksum).
func sumGo(b []byte) uint64 {
	w := words(b)
	var a, c, d, e uint64
	for j := 0; j+4 <= len(w); j += 4 {
		q := (*[4]uint64)(w[j : j+4])
		a, c, d, e = a+q[0], c+q[1], d+q[2], e+q[3]
	}
	return a + c + d + e
}

// Echo is the child of ping-pong: it receives each message from in, checks
// it as p, sends p back through out, until in ends.
func Echo(in *ring.Consumer, out *ring.Producer, p *Payload) error {
	ctx := context.Background()
	for i := uint64(0); ; i++ {
		if err := p.Recv(ctx, in, i); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := p.Send(ctx, out, i); err != nil {
			return err
		}
	}
}

// Sink is the child of stream: it receives and checks messages (as p)
// until in ends, calling ack after the first warm ones, and returns their
// count.
func Sink(in *ring.Consumer, p *Payload, warm int, ack func()) (uint64, error) {
	ctx := context.Background()
	for i := uint64(0); ; i++ {
		if i == uint64(warm) {
			ack()
		}
		if err := p.Recv(ctx, in, i); err != nil {
			if errors.Is(err, io.EOF) {
				return i, nil
			}
			return i, err
		}
	}
}

// Child runs the child of a ping-pong or a stream, as its parent's
// arguments ask: "echo IN OUT PAYLOAD SIZE" (Echo from ring IN back
// through ring OUT) or "sink IN PAYLOAD SIZE" (Sink, printing "warm" after
// the first 32 messages and "done N" at the end). It pins itself as
// SHMMAP_PEERS_PIN asks, its ends spin up to spin before they sleep, and an
// echo sends as s says.
func Child(args []string, spin time.Duration, s Sender) error {
	if _, err := Pin(true); err != nil {
		return err
	}
	if len(args) < 4 {
		return fmt.Errorf("ringbench: child arguments %q: want a mode, keys and a size", args)
	}
	size, err := strconv.Atoi(args[len(args)-1])
	if err != nil {
		return err
	}
	payload := args[len(args)-2]
	p, err := OpenPayload(payload, size)
	if err != nil {
		return err
	}
	p.Use(s)
	defer shmmap.Release(payload)
	in, err := ring.OpenConsumer(args[1])
	if err != nil {
		return err
	}
	defer in.Close()
	in.SetSpin(spin)
	if args[0] == "echo" {
		out, err := ring.OpenProducer(args[2])
		if err != nil {
			return err
		}
		defer out.Close()
		out.SetSpin(spin)
		return Echo(in, out, p)
	}
	n, err := Sink(in, p, 32, func() { fmt.Println("warm") })
	if err != nil {
		return err
	}
	fmt.Println("done", n)
	return nil
}
