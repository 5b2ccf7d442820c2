// Package ring passes messages from one process to another through a ring
// buffer in one shared memory segment, without copying them: the producer
// writes each message in place, in the segment, and the consumer reads it
// there. One process creates the ring and takes one end, producer or
// consumer; another process opens it by key and takes the other end.
//
//	// the creating process: the producer here
//	p, err := ring.CreateProducer(1 << 20)
//	// pass p.Key() to the other process (argv, environment, a pipe)
//	buf, err := p.Reserve(ctx, n) // n bytes in the ring
//	copy(buf, frame)              // or write them in place
//	p.Commit(len(frame))          // the consumer sees the message now
//	p.Close()                     // the consumer gets io.EOF once it has read all
//
//	// the other process: the consumer
//	c, err := ring.OpenConsumer(key)
//	msg, err := c.Next(ctx) // a slice of the ring
//	use(msg)                // read it in place
//	c.Release()             // its bytes may be written again
//	c.Close()
//
// A ring has one producer and one consumer, each used by one goroutine at a
// time: a Reserve and its Commit, a Next and its Release, come from the same
// end, in turn. Messages are byte strings of any length from 0 to
// MaxMessage (the capacity minus 8), delivered whole, in order, and each one
// contiguous in memory: a message that does not fit before the end of the
// buffer starts again at its beginning. Commit(n) sends the first n bytes of
// what Reserve gave, so that an encoder that learns a message's length as it
// writes can reserve the most it may write; Abort sends nothing. A consumer
// may take several messages, one Next each, and then release them all with
// one Release: one store of its position and at most one wake-up of the
// producer, for the batch.
//
// # Waiting
//
// Reserve waits while the ring is full, Next while it has no message to
// take. A waiting end publishes that it sleeps and sleeps on a word of the
// segment (package wake: the futex on Linux); the other end makes the
// wake-up system call only when the sleeper flag is set, so that two ends
// that keep up with each other make no system call at all. By default
// neither end spins; SetSpin makes an end watch the ring for a while before
// it sleeps (see Spinning). While it waits, an end wakes every 200 ms to ask
// the kernel whether its peer is still alive (see Dead peers); a wait ends
// with ctx.Err() when ctx ends.
//
// # Spinning
//
// A wake-up costs the sleeper's system calls and the kernel's hand-over to
// it: about 2 µs when the two processes share a CPU, 25-35 µs on these
// virtual machines when the sleeper's CPU is idle and must be woken (see
// BENCHMARKS.md). SetSpin(d) makes an end's waits first watch the ring for
// up to d (at most 10 ms), without a system call, and sleep only after that:
// when the peer answers within d, on another CPU, neither side makes a
// system call and the hand-over costs a few cache lines' transfers. A
// spinning consumer watches the stamp of the record it reads next (see
// Layout), which lies on the record's own first line, so that the message
// reaches it with the lines that carry it and no other. The price is a CPU
// kept busy for up to d by each wait, so spin only with a CPU to spare for
// each end: two spinning ends on one CPU take turns at wasting it.
//
// # Performance
//
// An end allocates nothing per message, and ends that keep up with each
// other make no system call. BENCHMARKS.md measures the ring beside the C
// futex and spinning rings, pipes and Unix sockets, with both processes on
// one CPU and on two. Two things about Go itself show there:
//
//   - On amd64, copy moves 1 MiB or more with non-temporal stores
//     (runtime/memmove_amd64.s), past the caches, and the consumer then
//     reads the message from memory: filling a large reservation in pieces
//     of 256 KiB keeps it in the cache (here a 1 MiB copy took 22 µs in
//     pieces and 39 µs in one, and a 1 MiB ping-pong was 1.5x faster).
//   - A wait that sleeps is a blocking system call to the Go runtime. In a
//     process pinned whole to one CPU (taskset; Go then also sets
//     GOMAXPROCS to 1), the runtime's sysmon thread shares that CPU with
//     the waiting thread: after a sleep of more than ~20 µs it may take the
//     thread's P and hand it back, and preempt the woken thread to do so.
//     Pinning only the thread that waits (runtime.LockOSThread, then
//     sched_setaffinity of that thread) leaves the runtime's other threads
//     free and avoids it.
//
// # Dead peers
//
// If the other end's process dies, however it dies (SIGKILL included, in
// the middle of writing a message), a waiting Reserve or Next returns an
// error wrapping ErrPeerGone up to about 200 ms after the death: an end
// asks every 200 ms, and how long it takes depends on where in that
// interval the death lands. Next first delivers every message that was
// committed before the death (stamped: see Layout), never a part of one.
// If the other end closes, Next returns io.EOF once it has delivered
// everything, and Reserve returns an error wrapping ErrPeerGone. Until the
// opening end has opened the ring, the creating end waits for it without a
// limit.
//
// On Linux the kernel vouches for liveness, not a pid: the creating process
// holds the lock that shmmap.CreateNamed takes on every segment (an open file
// description lock, read, on the whole file) until it closes its end or
// dies, and the opening process holds a shared flock(2) lock on the
// segment's file through an fd it keeps until it closes its end or dies.
// Locks belong to open file descriptions, which the kernel closes when the
// process exits however it exits, and a lock is a property of the file,
// which every process that sees the same /dev/shm sees, whatever its pid,
// user or time namespace: each end asks about the other's lock (fcntl
// F_OFD_GETLK for the creator's, flock LOCK_EX|LOCK_NB, dropped at once,
// for the opener's), and the two kinds of lock do not interact on Linux
// (flock(2): "flock() and fcntl(2) locks ... do not interact"), so neither
// end's own lock hides the other's. On macOS, whose shm objects take no
// locks (flock and fcntl locking apply only to vnodes there, and a POSIX
// shm fd is not one), each end records its pid and start time in the
// header and the other asks with kill(pid, 0) and sysctl kern.proc.pid;
// macOS has no pid namespaces, so a pid with its start time names one
// process there.
//
// # Layout
//
// A ring is a segment of HeaderSize + capacity bytes: a header of 512 bytes,
// then the buffer. Every number is in the machine's native byte order.
// Every shared word, the header's and a record's stamp, is a 32-bit word
// accessed atomically (sequentially consistent, as C11's
// atomic_load/atomic_store default and Go's sync/atomic); where less is
// enough, this says so. A plain aligned load or store is atomic on amd64
// and arm64, but not sequentially consistent: on amd64 a store must be an
// XCHG (or be followed by MFENCE) before the next load, as the wake
// protocol below needs, and on arm64 both need their acquire and release
// forms (LDAR, STLR). Offsets in the header:
//
//	0    8 bytes  magic "shmring\x00"
//	8    uint32   version, 2
//	12   uint32   header size, 512: the buffer's offset
//	16   uint32   capacity: the buffer's size, a power of two, 64 to 1<<30
//	20   uint32   record alignment, 8
//	24   uint32   the creator's end: 1 producer, 2 consumer
//	28   uint32   state (atomic): bit 0 the other end has opened,
//	              bit 1 the producer has closed, bit 2 the consumer has closed
//	32   uint32   creator's pid      (macOS liveness; informational on Linux)
//	36   uint32   opener's pid       (idem)
//	40   uint64   creator's start time, µs since 1970 (macOS; 0 on Linux)
//	48   uint64   opener's start time (idem)
//	128  uint32   tail (atomic): bytes the producer has committed, mod 2^32
//	132  uint32   consumer sleeping (atomic): 1 while the consumer may sleep on tail
//	256  uint32   head (atomic): bytes the consumer has released, mod 2^32
//	260  uint32   producer sleeping (atomic): 1 while the producer may sleep on head
//
// Everything else up to 512 is zero. tail and head live on lines of their
// own (128 bytes apart, for CPUs that fetch cache lines in pairs). The
// buffer holds records, each at offset (position mod capacity), 8-aligned:
// a head of two uint32s, the length n and the stamp, then n bytes, then
// zero to 7 bytes to the next multiple of 8. The stamp of the record at
// position p is p | 4 | kind (kind 0 a message, 1 padding): positions are
// multiples of 8, and bit 2 tells a stamp from a cleared or zero-filled
// word. A record never crosses the buffer's end: where a message's record
// does not fit before the end, the producer first writes a padding record
// that covers the rest of the buffer (n = bytes left - 8), then the message
// at offset 0; it commits both at once when both fit in the free space,
// else the padding first. Free space is capacity - (tail - head), computed
// mod 2^32. Positions are compared the same way: a position a is past b
// when (a - b) mod 2^32, read as a signed 32-bit number, is above 0.
//
// Committing. The producer writes a record's bytes; then clears the stamp
// word (stores 0 at offset 4) of the position after the records it commits,
// if those 8 bytes are free; then, for each record, the message's before its
// padding's, stores its length (a plain store) and then its stamp (an atomic
// store, a release at least: it must come after every other store of the
// record and of the clearing); then stores the new tail, and if the
// consumer-sleeping word is 1 calls FUTEX_WAKE (shared) on tail. A record is
// committed once its stamp is stored. The clearing makes a stamp
// trustworthy: the word a consumer finds at next (see Consuming) either is
// the stamp of the record there, or was cleared, or is the stamp of the
// record one lap (capacity bytes) earlier, which differs. The position
// cleared is the one after the records committed, not after the room the
// producer set aside for them: it may have written anything in free room
// that it then did not commit (a message shorter than it reserved, or none),
// stamps of this lap included, and writes nothing at that position until it
// commits the record there.
//
// Consuming. The consumer reads the record at next, a position of its own:
// the position after the records it has taken, which is head, or past it by
// the records it has taken and not yet released. It learns of a record
// either by its stamp or by tail. By its stamp: it loads the stamp word at
// next (an acquire at least); the record is committed when the word, less
// its kind bit, is next | 4, and then its length and bytes are there to read
// (after that load). By tail: every record before tail (tail past next) is
// committed and stamped. While neither says so, it stores 1 in
// consumer-sleeping, loads tail again and, if still the value it saw, calls
// FUTEX_WAIT on tail with that value, then stores 0. A consumer that learns
// by stamps may be ahead of tail for a moment, between a stamp and the store
// of tail. It takes a record by moving next past it, and releases every
// record it has taken by storing next as the new head, in one store, and
// waking the producer the same way through producer-sleeping. Records
// between head and next are the consumer's until it releases them: the
// producer counts free space from head, and does not write them. A padding
// record that it takes with no message taken it releases at once, since the
// producer may wait for the consumer to pass a padding record that it
// committed alone. Because the stores and loads of the shared words are
// sequentially consistent, a sleeper either sees the new value or is seen
// sleeping: no wake-up is lost.
//
// A record is corrupt, and Next's error wraps ErrCorrupt, if its length
// does not fit between its offset + 8 and the buffer's end, if it ends
// more than the capacity past head (it would overlap the records taken
// and not released, a lap earlier), if tail has passed its position and
// it has no stamp, or if it is a padding record that does not cover the
// rest of the buffer exactly or stands at offset 0 (where no record needs
// one). So a consumer meets at most one padding record before a message
// or a wait, whatever a peer writes.
//
// The positions are corrupt, and Open's, Reserve's or Next's error wraps
// ErrCorrupt, if tail or head is not a multiple of 8, or if tail - head, as
// a signed 32-bit number, is below 0 or above the capacity. The opener
// checks both (see Opening), the producer each head it loads, and the
// consumer each tail it loads, which may be behind its next, by the records
// it has taken by their stamps, but by no more than the capacity, and may be
// ahead of next by no more than the capacity. With these checks, no value a
// peer writes into the segment, at any moment, makes an end read or write
// outside the ring.
//
// Opening, in this order. The opener takes its liveness lock (on Linux,
// flock LOCK_SH on an fd of the segment's file, kept until it closes) and
// maps the segment; checks magic, version, header size, alignment,
// capacity, then tail and head, each loaded once (else ErrCorrupt or
// ErrVersion), and that the creator's end is not the one it wants (else
// ErrBusy); checks that the creator is alive, on Linux that its lock is
// held (else ErrPeerGone); writes its pid and start time (offsets 36 and
// 48); and last sets bit 0 of state with a compare-and-swap that fails,
// with ErrBusy, if bit 0 is already set: one opener only. Until bit 0 is
// set, a creator that waits does not ask whether its peer is alive.
//
// Closing. An end that closes sets its bit of state (bit 1 the producer,
// bit 2 the consumer) with a compare-and-swap loop, then wakes every
// sleeper on the word it writes (tail for the producer, head for the
// consumer), then drops its lock and unmaps.
//
// Waiting, in full. A waiting end stores 1 in its sleeping word, loads the
// word it waits on (tail or head) and returns if that moved; loads state
// and returns if the peer's closed bit is set; else sleeps (FUTEX_WAIT on
// the word, with the value it saw, for at most 200 ms), stores 0 in its
// sleeping word, and loops. After a timeout it asks whether the peer is
// alive; a dead peer's last store may still be there to read first: a
// consumer that waits on tail looks at the stamp at next too, since a
// producer may die between a stamp and its store of tail.
//
// End of stream. The consumer loads state, then tail: if tail has passed
// next (or the stamp at next has come) it reads on; only if not, and the
// producer's closed bit was set in the state it loaded first, is it the
// end (io.EOF). In the other order, a producer that committed and closed
// between the two loads would lose its last messages.
//
// The tests exercise this layout with a consumer written in Python from
// this description alone (testdata/ring_consumer.py, ctypes for the futex,
// learning of records by their stamps and sleeping on tail), against a Go
// producer.
//
// # Lifetimes
//
// A slice from Reserve is valid until Commit, Abort or the next Reserve, one
// from Next until the next Release; either end's slices, and the end itself,
// are invalid after Close, which unmaps the segment: touching them then
// faults and kills the process. Close must not run while another call on the
// same end runs. Each end holds the segment through a handle of its own
// (shmmap.CreateNamed, shmmap.Map), so shmmap.Release and ReleaseAll, called
// by any code in the process, never reach it; shmmap.Unlink of the key would
// only keep a peer that has not opened the ring yet from opening it. The
// creator's Close removes the segment's name; the memory goes when both ends
// have closed (or died).
//
// # Errors
//
// Create's and Open's errors wrap package shmmap's (an *fs.PathError) or
// this package's ErrCorrupt (not a ring, or a damaged or truncated one),
// ErrVersion (a ring of another layout version) and ErrBusy (the end asked
// for is taken). A size out of range, a capacity below 1 or a message
// length below 0, is an error wrapping shmmap.ErrInvalidSize; one too
// large, a capacity above 1 GiB or a message longer than MaxMessage, wraps
// ErrTooLarge too. Waiting calls return ctx.Err(), ErrPeerGone or, from
// Next, io.EOF. Reserve and Next wrap ErrCorrupt for a ring whose
// positions or records a peer has damaged. Any call on a closed end
// returns ErrClosed.
package ring

import (
	"errors"
)

// The errors of this package, wrapped by the errors of its functions and
// methods as their documentation says; test them with errors.Is.
var (
	// ErrTooLarge is wrapped by Reserve's error for a message that the ring
	// could never hold, longer than MaxMessage, and by CreateProducer's
	// and CreateConsumer's for a capacity above 1 GiB; both errors wrap
	// shmmap.ErrInvalidSize too.
	ErrTooLarge = errors.New("ring: too large")
	// ErrPeerGone is wrapped by the error of a waiting Reserve or Next when
	// the other end's process has died, and of Reserve when the consumer
	// has closed its end.
	ErrPeerGone = errors.New("ring: the other end is gone")
	// ErrClosed is returned by every call on an end after its Close.
	ErrClosed = errors.New("ring: use of a closed end")
	// ErrCorrupt is wrapped by Open's error for a segment that is not a
	// ring, or whose header is damaged or truncated; by Next's for a
	// record that does not fit the ring; and by Reserve's and Next's for
	// a head or tail that a peer has damaged (see Layout).
	ErrCorrupt = errors.New("ring: not a ring, or a corrupt one")
	// ErrVersion is wrapped by Open's error for a ring of another layout
	// version.
	ErrVersion = errors.New("ring: incompatible ring version")
	// ErrBusy is wrapped by Open's error when the end asked for is the
	// creator's, or another process has opened the ring already.
	ErrBusy = errors.New("ring: that end of the ring is taken")
)
