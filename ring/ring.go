// Package ring passes messages from one process to another through a ring
// buffer in one shared memory segment, without copying them: the producer
// writes each message in place, in the segment, and the consumer reads it
// there. One process creates the ring and takes one end, producer or
// consumer; another process opens it by key and takes the other end.
//
//	// the creating process: the producer here
//	p, err := ring.CreateProducer(1 << 20)
//	// pass p.Key() to the other process (argv, environment, a pipe)
//	err = p.Send(ctx, frame)      // a copy of frame is the next message
//	buf, err := p.Reserve(ctx, n) // or: n bytes in the ring,
//	m := encode(buf)              // written in place,
//	p.Commit(m)                   // the first m of them sent
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
// MaxMessage (the capacity minus 16), delivered whole, in order, and each one
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
// that keep up with each other make no system call at all, and allocate
// nothing per message. A waiting end sleeps with no timeout of its own:
// one timer per process, running only while some end sleeps, wakes the
// sleeping ends every 200 ms to ask the kernel whether their peers are
// still alive (see Dead peers). A wait ends with ctx.Err() when ctx ends.
// In a process with one P (GOMAXPROCS=1, as under taskset -c N or a
// one-CPU cpuset) on Linux, a wait for a peer in another process keeps
// the P for its first tick, 1 to 10 ms (wake.WaitPeer), which makes a
// ping-pong of large messages on one CPU about as fast as with more Ps;
// the process' other goroutines wait meanwhile. Ends in one process never
// keep it, nor does a wait that has outlasted a round of the timer.
//
// # Sending
//
// Send sends a message that is in a slice: it reserves room, copies the
// message and commits it, copying as C's memcpy does. A message's bytes
// start 16-byte aligned in the ring, and there Go's copy keeps even a
// large message in the cache on Intel CPUs with FSRM; on other amd64 CPUs
// its copy of 1 MiB or more writes past the cache, to memory, from which
// the consumer must then read it, and a ping-pong of 1 MiB messages copied
// that way takes about twice as long as with Send (BENCHMARKS.md). Reserve
// and Commit are for a message written in place, by an encoder or a
// renderer, with no copy at all.
//
// # Spinning
//
// A wake-up costs the sleeper's system calls and the kernel's hand-over,
// which is slow when the sleeper's CPU is idle and must be woken first.
// SetSpin(d) makes an end's waits first watch the ring for up to d (at
// most 10 ms), without a system call, and sleep only after that: when the
// peer answers within d, on another CPU, the hand-over costs only the
// transfer of the message's cache lines (a spinning consumer watches the
// stamp on the record's own first line). The price is a CPU kept busy for
// up to d by each wait, so spin only with a CPU to spare for each end. By
// default neither end spins. BENCHMARKS.md has the figures.
//
// # Dead peers
//
// If the other end's process dies, however it dies (SIGKILL included, in
// the middle of writing a message), a waiting Reserve or Next returns an
// error wrapping ErrPeerGone up to about 200 ms after the death, or after
// the wait begins if the death came before. Next first delivers every
// message that was committed before the death, never a part of one. If
// the other end closes, Next returns io.EOF once it has delivered
// everything, and Reserve returns an error wrapping ErrPeerGone. Until the
// opening end has opened the ring, the creating end waits for it without
// a limit. On Linux the kernel vouches for liveness (each end asks
// about a lock that the other holds on the segment), in every pid, user or
// time namespace; on macOS a pid and its start time do.
//
// # Layout
//
// The segment's layout, byte for byte, with the protocol of each end and
// what a consumer may trust of a peer's writes, is in ring/LAYOUT.md, for
// programs in other runtimes to join a ring (testdata/ring_consumer.py is
// one, in Python). No value a peer writes makes an end read or write
// outside the ring: what does not fit is ErrCorrupt.
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
