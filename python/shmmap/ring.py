"""Zero-copy message rings shared with Go's package ring (Linux).

A ring is a segment that holds a header and a buffer of records, laid out
as ring/LAYOUT.md in the Go module says (version 3); this module follows
that text rule by rule and cites it rather than restate it. One process
creates the ring and takes one end; another opens it by key and takes the
other. Either process may be Go or Python::

    # the creating process: the producer here
    with shmmap.ring.create_producer(1 << 20) as p:
        pass_to_the_other_process(p.key)
        p.send(b"hello")              # a copy of the bytes is the next message
        buf = p.reserve(n)            # or: n bytes in the ring, a memoryview,
        m = encode_into(buf)          # written in place,
        p.commit(m)                   # the first m of them sent
    # the consumer gets EOFError once it has read all

    # the other process: the consumer
    with shmmap.ring.open_consumer(key) as c:
        for msg in c:                 # memoryviews into the ring, read-only
            use(msg)                  # valid until the next one (or release)

Messages are byte strings of 0 to max_message bytes (the capacity less 16),
delivered whole and in order, each contiguous in the ring, each starting
16-byte aligned. An end is used by one thread at a time.

Waiting. reserve waits while the ring is full, next while it has no message.
A waiting end sets its sleeper flag and sleeps on the futex, with the GIL
released; the other end makes the wake-up system call only if the flag is
set, so that ends that keep up with each other make no system call. Every
200 ms a waiting end asks the kernel whether its peer lives: a dead peer
(SIGKILL included) is PeerGone about 200 ms after its death, never a part
of a message. A timeout (seconds, None for none) ends a wait with
TimeoutError; timeout=0 takes what is there and never waits. Ctrl-C
interrupts a wait with KeyboardInterrupt.

Spinning. A wake-up costs the sleeper's system calls and the kernel's
hand-over, which is slow when the sleeper's CPU is idle and must be woken
first. set_spin(seconds) makes an end's waits first watch the ring for up
to that long (at most 10 ms), with the GIL released and without a system
call, and sleep only after that: when the peer answers within it, on
another CPU, the hand-over costs only the transfer of cache lines. The
price is a CPU kept busy for up to that long by each wait, so spin only
with a CPU to spare for each end. By default neither end spins (as Go's
SetSpin).

Hostile peers. The peer shares the segment and may write anything there at
any moment. Every position and record this end reads is checked before it
indexes anything (LAYOUT.md, "A record is corrupt" and "The positions are
corrupt"): what does not fit is a Corrupt exception, and no value from the
segment makes this process read or write outside the ring. (A peer that
shrinks the segment's file with ftruncate makes any access to the lost
pages a SIGBUS: no ring can prevent that for a named segment.)

Views and lifetimes. reserve returns a writable memoryview of exactly n
bytes in the ring, valid until commit, abort, the next reserve or close;
next returns a read-only memoryview, valid until the release that frees it
or close. At those points this module calls the view's release(), so that
a later use of it raises ValueError rather than read bytes that the peer
may be rewriting. A view made from one of these (a slice of it, a NumPy
array over it) is not released: it stays readable memory, the mapping stays
until it is gone, but its bytes are the ring's and may change at any moment.

Atomics. The shared words are loaded and stored through shmmap._native, a
small C extension: C11 sequentially consistent atomics (an XCHG store and a
MOV load on x86-64; STLR and LDAR on arm64) and the futex, as LAYOUT.md
asks. The creator's open file description lock is the segments' own
(shmmap.create's, and its F_OFD_GETLK). Its Producer and Consumer
types hold an end's positions and do the per-message work in one call each
(the checks of every record and position included); this module does the
rest: opening, closing, and the waits' deadlines and liveness checks.
"""

import fcntl
import mmap
import os
import sys
import time

from . import _linux, _native, segment
from ._keys import normalize
from .errors import (
    Busy,
    Closed,
    Corrupt,
    InvalidKey,
    InvalidSize,
    PeerGone,
    TooLarge,
    VersionError,
)

__all__ = [
    "Producer",
    "Consumer",
    "create_producer",
    "open_producer",
    "create_consumer",
    "open_consumer",
    "HEADER_SIZE",
]

# The layout (LAYOUT.md, "Header and records"), version 3.
HEADER_SIZE = 512
VERSION = 3
ALIGN = 16  # record alignment; positions are multiples of it
RECORD_HEAD = 16  # length, stamp, 8 reserved bytes
MIN_CAPACITY = 64
MAX_CAPACITY = 1 << 30
MAGIC = b"shmring\x00"

OFF_VERSION = 8
OFF_HEADER_SIZE = 12
OFF_CAPACITY = 16
OFF_ALIGN = 20
OFF_CREATOR_END = 24
OFF_STATE = 28
OFF_CREATOR_PID = 32
OFF_OPENER_PID = 36
OFF_CREATOR_TIME = 40
OFF_OPENER_TIME = 48
OFF_TAIL = 128
OFF_CONS_SLEEP = 132
OFF_HEAD = 256
OFF_PROD_SLEEP = 260

END_PRODUCER = 1
END_CONSUMER = 2

STATE_OPENED = 1
STATE_PROD_CLOSED = 2
STATE_CONS_CLOSED = 4

KIND_MESSAGE = 0
KIND_PADDING = 1
STAMP_KIND = 1
STAMPED = 4

M32 = 0xFFFFFFFF
POLL = 0.2  # seconds between liveness checks of a waiting end, as Go's
MAX_SPIN = 0.01  # seconds: the longest spin set_spin allows, as Go's maxSpin
_WAKE_ALL = 0x7FFFFFFF

# Segments (Go: shmmap.CreateNamed, Map; internal/shm/open_linux.go).
SHM_DIR = "/dev/shm/"


def _bad_positions(tail, head):
    return Corrupt(f"ring: tail {tail} and head {head}")


def _check_positions(tail, head, capacity):
    """Raises Corrupt unless tail and head can be a ring's positions
    (LAYOUT.md, "The positions are corrupt")."""
    if tail % ALIGN or head % ALIGN or (tail - head) & M32 > capacity:
        raise _bad_positions(tail, head)


def _normalize(key):
    """key in its canonical form, "/name", or InvalidKey (Go's normalize),
    also for a key that is not a str."""
    if not isinstance(key, str):
        raise InvalidKey(f"ring: key {key!r} is not a str")
    return normalize(key)


def _capacity(capacity):
    """The capacity rounded up to a power of two, or InvalidSize/TooLarge."""
    if not isinstance(capacity, int) or isinstance(capacity, bool):
        raise TypeError(f"ring: capacity {capacity!r} is not an int")
    if capacity <= 0:
        raise InvalidSize(f"ring: capacity {capacity}, want 1 to {MAX_CAPACITY}")
    if capacity > MAX_CAPACITY:
        raise TooLarge(f"ring: capacity {capacity}, at most {MAX_CAPACITY}")
    return max(MIN_CAPACITY, 1 << (capacity - 1).bit_length())


def _flock(fd, how):
    """flock(2), again after EINTR (Python retries it itself: PEP 475)."""
    fcntl.flock(fd, how)


class _End:
    """What a Producer and a Consumer share: the mapping, the shared words
    and the peer's liveness (Go: ring/end.go)."""

    _kind = 0  # END_PRODUCER or END_CONSUMER

    def __init__(self):
        raise TypeError("use create_producer, open_producer, create_consumer or open_consumer")

    @classmethod
    def _create(cls, capacity):
        c = _capacity(capacity)
        kind = cls._kind

        def init(mm):
            w = _native.Words(mm)
            try:
                mm[0:8] = MAGIC
                w.store(OFF_HEADER_SIZE, HEADER_SIZE)
                w.store(OFF_CAPACITY, c)
                w.store(OFF_ALIGN, ALIGN)
                w.store(OFF_CREATOR_END, kind)
                w.store(OFF_CREATOR_PID, os.getpid() & M32)
                w.store(OFF_VERSION, VERSION)  # last: a header with a version is complete
            finally:
                w.release()

        key, fd, mm = segment._create(HEADER_SIZE + c, init, lambda *made: made)
        self = object.__new__(cls)
        self._setup(key, fd, mm, c, True, 0, 0)
        return self

    @classmethod
    def _open(cls, key):
        kind = cls._kind
        key = _normalize(key)
        fd, st = segment._open(key, key, os.O_RDWR)
        size = st.st_size
        mm = w = None
        try:
            # LAYOUT.md, "Opening, in this order": the liveness lock first.
            _flock(fd, fcntl.LOCK_SH)
            if size < HEADER_SIZE:
                raise Corrupt(f"ring: {key}: segment of {size} bytes, shorter than a ring's header")
            c = int.from_bytes(os.pread(fd, 4, OFF_CAPACITY), sys.byteorder)
            want = HEADER_SIZE + (c if c <= MAX_CAPACITY else 0)
            if size < want:
                raise Corrupt(f"ring: {key}: truncated: {size} bytes, the ring its header describes needs {want}")
            mm = mmap.mmap(fd, want, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            w = _native.Words(mm)
            c, creator_end = _check_header(mm, w, key)
            # Loaded once: the peer may write them again at any moment.
            tail, head = w.load(OFF_TAIL), w.load(OFF_HEAD)
            _check_positions(tail, head, c)
            if creator_end == kind:
                raise Busy(f"ring: {key}: the creator is the {_end_name(kind)}")
            held, ok = _linux.lock_held(fd)
            if ok and not held:
                raise PeerGone(f"ring: {key}: the creator has closed or died")
            w.store(OFF_OPENER_PID, os.getpid() & M32)
            w.store(OFF_OPENER_TIME, 0)
            w.store(OFF_OPENER_TIME + 4, 0)
            while True:
                s = w.load(OFF_STATE)
                if s & STATE_OPENED:
                    raise Busy(f"ring: {key}: the {_end_name(kind)} is open in another process")
                if w.cas(OFF_STATE, s, s | STATE_OPENED):
                    break
            w.release()
        except BaseException:
            if w is not None:
                w.release()
            if mm is not None:
                mm.close()
            os.close(fd)
            raise
        self = object.__new__(cls)
        self._setup(key, fd, mm, c, False, tail, head)
        return self

    def _setup(self, key, fd, mm, capacity, creator, tail, head):
        self._key = key
        self._fd = fd
        self._mm = mm
        self._cap = capacity
        self._creator = creator
        self._closed = False
        self._spin = 0.0
        # The end proper (shmmap._native.Producer or Consumer): the positions
        # and the per-message work, over the mapping it holds until close;
        # the views it hands out are slices of _base, which it releases.
        base = memoryview(mm)
        if self._kind == END_CONSUMER:
            base = base.toreadonly()
        self._base = base
        try:
            end = _native.Producer if self._kind == END_PRODUCER else _native.Consumer
            self._w = end(mm, base, capacity, tail, head, Corrupt)
        except BaseException:
            base.release()
            mm.close()
            if creator:
                self._unlink()
            os.close(fd)
            raise

    def set_spin(self, seconds):
        """Makes this end's waits (reserve's for room, next's for a message)
        first watch the ring for up to seconds before they sleep, and 0
        (the default) not at all; see "Spinning" in the module's doc. Values
        above 10 ms count as 10 ms, below 0 as 0; a wait's timeout ends its
        spin too. Raises TypeError for a non-number, ValueError for NaN."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"ring: spin of {seconds!r}: want seconds, a number")
        if seconds != seconds:
            raise ValueError("ring: spin of NaN seconds")
        self._spin = min(max(float(seconds), 0.0), MAX_SPIN)

    def _spun(self, deadline):
        """Whether a spin of at most set_spin's time, and not past deadline,
        saw the word this end waits on change."""
        spin = self._spin
        if spin <= 0:
            return False
        if deadline is not None:
            spin = min(spin, deadline - time.monotonic())
            if spin <= 0:
                return False
        return self._w.spin(spin)

    @property
    def key(self):
        """The ring's key, for the other end's open_* in another process."""
        return self._key

    @property
    def max_message(self):
        """The length of the longest message the ring takes: its capacity
        less 16."""
        return self._cap - RECORD_HEAD

    @property
    def closed(self):
        """Whether close has run."""
        return self._closed

    def _check_open(self):
        if self._closed:
            raise Closed("ring: use of a closed end")

    def close(self):
        """Closes this end (LAYOUT.md, "Closing"): the peer learns of it
        (a consumer gets EOFError once it has read every message; a producer
        PeerGone); the segment is unmapped, every view this end handed out is
        released and, in the ring's creator, the name is removed. A second
        close does nothing. Must not run while another thread waits in a
        call of this end: then it raises BufferError and closes nothing."""
        if self._closed:
            return
        w = self._w
        if w.waiting:
            raise BufferError("ring: close while another thread waits on this end")
        self._closed = True
        if self._kind == END_PRODUCER:
            bit, word = STATE_PROD_CLOSED, OFF_TAIL
        else:
            bit, word = STATE_CONS_CLOSED, OFF_HEAD
        w.fetch_or(OFF_STATE, bit)
        w.wake(word, _WAKE_ALL)  # the peer sleeps on the word this end writes
        w.drop_views()
        try:
            self._base.release()
        except BufferError:
            pass  # exported (a NumPy array over it): kept alive by it
        w.release()
        try:
            self._mm.close()
        except BufferError:
            pass  # a view derived from ours: the mapping goes with it
        self._mm = None
        try:
            if self._creator:
                self._unlink()
        finally:
            os.close(self._fd)
            self._fd = -1

    def _unlink(self):
        """Removes the ring's name if it still names this end's file."""
        path = SHM_DIR + self._key[1:]
        try:
            st, mine = os.lstat(path), os.fstat(self._fd)
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                os.unlink(path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # A forgotten end: unmap and unlink rather than leak the name.
        if getattr(self, "_closed", True) is False:
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self):
        state = "closed" if self._closed else f"capacity {self._cap}"
        return f"<shmmap.ring.{type(self).__name__} {self._key} {state}>"

    def _peer_alive(self):
        """Whether the other end lives (LAYOUT.md, "Liveness"): asked by the
        creator, the opener's flock; by the opener, the creator's OFD lock.
        An answer the kernel does not give counts as alive."""
        if self._creator:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            except OSError:
                return True
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            return False
        held, ok = _linux.lock_held(self._fd)
        return held or not ok

    def _napped(self, deadline, peer_closed):
        """What a waiting end does when a nap (at most POLL) ran out with
        nothing new (LAYOUT.md, "Waiting, in full"): raises TimeoutError at
        deadline (a time.monotonic value, or None), PeerGone if the peer's
        process died without a last word; else returns, to look again."""
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("ring: timed out")
        w = self._w
        if self._creator and not w.load(OFF_STATE) & STATE_OPENED:
            return  # no peer yet
        # A dead peer's last store may still be there to read first.
        if not self._peer_alive() and not w.moved() and not w.load(OFF_STATE) & peer_closed:
            raise PeerGone("ring: the other end's process has died")


def _nap(deadline):
    """How long the next sleep of a wait may last: POLL, or less to end at
    deadline (0: not at all)."""
    if deadline is None:
        return POLL
    return min(max(deadline - time.monotonic(), 0.0), POLL)


def _end_name(kind):
    return "producer" if kind == END_PRODUCER else "consumer"


def _check_header(mm, w, key):
    """Checks a ring's header (Go's checkHeader) and returns its capacity
    and creator's end; raises Corrupt or VersionError."""
    if len(mm) < HEADER_SIZE:
        raise Corrupt(f"ring: {key}: segment of {len(mm)} bytes, shorter than a ring's header")
    if mm[0:8] != MAGIC:
        raise Corrupt(f"ring: {key}: no ring magic")
    v = w.load(OFF_VERSION)
    if v != VERSION:
        raise VersionError(f"ring: {key}: version {v}, this package reads {VERSION}")
    c = w.load(OFF_CAPACITY)
    if w.load(OFF_HEADER_SIZE) != HEADER_SIZE:
        raise Corrupt(f"ring: {key}: header size {w.load(OFF_HEADER_SIZE)}, want {HEADER_SIZE}")
    if w.load(OFF_ALIGN) != ALIGN:
        raise Corrupt(f"ring: {key}: alignment {w.load(OFF_ALIGN)}, want {ALIGN}")
    if c < MIN_CAPACITY or c > MAX_CAPACITY or c & (c - 1):
        raise Corrupt(f"ring: {key}: capacity {c}")
    if len(mm) < HEADER_SIZE + c:
        raise Corrupt(f"ring: {key}: truncated: {len(mm)} bytes, a ring of capacity {c} needs {HEADER_SIZE + c}")
    e = w.load(OFF_CREATOR_END)
    if e not in (END_PRODUCER, END_CONSUMER):
        raise Corrupt(f"ring: {key}: creator's end {e}")
    return c, e


class Producer(_End):
    """The writing end of a ring (Go: ring.Producer). Make one with
    create_producer or open_producer; use it from one thread at a time."""

    _kind = END_PRODUCER

    def reserve(self, n, timeout=None):
        """Returns n bytes of the ring for the next message, a writable
        memoryview, waiting while the ring is too full (LAYOUT.md, "Header
        and records", for where it goes). Write the message there, then
        commit it, or a prefix of it, or abort. The view is valid until
        commit, abort, the next reserve or close, which release it.

        A message that does not fit before the buffer's end goes at its
        start, after a padding record; when the two do not fit in the free
        space together, the padding is published alone first and reserve
        waits for the consumer to pass it, even on an empty ring.

        Raises InvalidSize for n below 0 or TooLarge above max_message;
        TimeoutError if the wait outlasts timeout seconds; PeerGone if the
        consumer closes or its process dies meanwhile; Corrupt if the
        consumer's head is not a ring position; Closed after close. A
        reserve that fails leaves no reservation."""
        if self._closed:
            raise Closed("ring: use of a closed end")
        v = self._w.reserve(n)  # the previous reservation dropped
        if v is None:
            v = self._reserve_wait(n, timeout)
        return v

    def _reserve_wait(self, n, timeout):
        """reserve when the room is not free now, or n is not a length."""
        if not isinstance(n, int):
            raise TypeError(f"ring: message length {n!r} is not an int")
        if n < 0:
            raise InvalidSize(f"ring: message of {n} bytes")
        if n > self._cap - RECORD_HEAD:
            raise TooLarge(f"ring: message of {n} bytes, at most {self._cap - RECORD_HEAD}")
        deadline = None if timeout is None else time.monotonic() + timeout
        w = self._w
        while True:
            need = w.need(n)
            if need < 0:  # a padding record to go alone first
                self._room(-need, deadline)
                w.pad()
                continue
            self._room(need, deadline)
            v = w.reserve(n)  # the room is there now
            if v is not None:
                return v

    def commit(self, n):
        """Sends the first n bytes of the reserved message as the message
        and wakes the consumer if it sleeps (LAYOUT.md, "Committing"). The
        reservation's view is released. Raises ValueError if there is no
        reservation or n is out of 0 to the reserved length (the
        reservation stays), Closed after close."""
        if self._closed:
            raise Closed("ring: use of a closed end")
        self._w.commit(n)

    def abort(self):
        """Drops the reservation, if any, and releases its view: nothing of
        it reaches the consumer. A padding record that reserve published
        alone stays published. Does nothing on a closed end."""
        if not self._closed:
            self._w.abort()

    def send(self, data, timeout=None):
        """Sends a copy of data (bytes, bytearray, or any contiguous buffer)
        as the next message: reserve, copy, commit. Waits and raises as
        reserve does; on an error nothing is sent."""
        if self._closed:
            raise Closed("ring: use of a closed end")
        if self._w.send(data):  # in one call when the room is free
            return
        src = memoryview(data)
        if src.format != "B" or src.ndim != 1:
            src = src.cast("B")
        v = self.reserve(src.nbytes, timeout)
        try:
            v[:] = src
        except BaseException:
            self.abort()
            raise
        self.commit(src.nbytes)

    def _room(self, rec, deadline):
        """Waits until rec bytes after tail are free."""
        w = self._w
        spin = True  # first, and after each move of head that left too little (Go's room)
        while not w.room(rec):
            if spin and self._spun(deadline):
                continue
            r = w.await_head(_nap(deadline))
            if r == 2:
                raise PeerGone("ring: the consumer has closed")
            spin = r == 1
            if r == 0:
                self._napped(deadline, STATE_CONS_CLOSED)


class Consumer(_End):
    """The reading end of a ring (Go: ring.Consumer). Make one with
    create_consumer or open_consumer; use it from one thread at a time."""

    _kind = END_CONSUMER

    def next(self, timeout=None):
        """Takes the next message, waiting while the ring has none, and
        returns it: a read-only memoryview into the ring, valid until the
        release that frees it, or close. A next after a next without release
        takes the message after; one release frees them all. Messages taken
        and not released keep their room: a producer that needs it waits.
        A next that fails takes nothing.

        Raises EOFError once the producer has closed and every message has
        been taken; TimeoutError if the wait outlasts timeout seconds
        (timeout=0: never wait); PeerGone if the producer's process died
        (after every message it committed has been taken); Corrupt if a
        record or tail breaks LAYOUT.md's rules ("A record is corrupt");
        Closed after close."""
        if self._closed:
            raise Closed("ring: use of a closed end")
        v = self._w.take()
        if v is None:
            v = self._next_wait(timeout)
        return v

    def release(self):
        """Gives back to the producer the bytes of every message taken since
        the last release, in one store, and wakes the producer if it waits:
        the views next returned for them are released. Raises ValueError if
        no message is taken, Closed after close."""
        if self._closed:
            raise Closed("ring: use of a closed end")
        self._w.give(True)

    def __iter__(self):
        return self

    def __next__(self):
        """Iteration: releases the messages taken, if any, then returns the
        next one; stops at the end of the stream (EOFError)."""
        if self._closed:
            raise Closed("ring: use of a closed end")
        w = self._w
        w.give(False)
        v = w.take()
        if v is None:
            try:
                v = self._next_wait(None)
            except EOFError:
                raise StopIteration from None
        return v

    def _next_wait(self, timeout):
        """next when the record at next has no stamp yet: waits on tail,
        which the producer stores after its stamps (LAYOUT.md, "Consuming"
        and "End of stream"), and takes the record once it is there."""
        w = self._w
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._spun(deadline):
            v = w.take()
            if v is not None:
                return v
        while True:
            if w.await_tail(_nap(deadline)):
                v = w.take()
                if v is not None:
                    return v
            else:
                self._napped(deadline, STATE_PROD_CLOSED)


def create_producer(capacity):
    """Makes a new ring whose buffer holds capacity bytes, rounded up to a
    power of two (64 to 1 GiB), and returns its producing end; another
    process takes the consuming end with open_consumer(p.key) (or Go's
    ring.OpenConsumer). The segment is 0600 and its name goes with the
    creator's close. Raises InvalidSize (TooLarge above 1 GiB), or OSError
    from making the segment (ENOSPC for a full /dev/shm)."""
    return Producer._create(capacity)


def create_consumer(capacity):
    """Makes a new ring as create_producer does, and returns its consuming
    end; another process takes the producing end with open_producer(c.key)."""
    return Consumer._create(capacity)


def open_producer(key):
    """Maps ring key, which a consumer created, and returns its producing
    end. Raises InvalidKey, FileNotFoundError, NotSegment, Corrupt,
    VersionError, Busy (the creator is the producer, or another process has
    opened the ring), PeerGone (the creator has closed or died)."""
    return Producer._open(key)


def open_consumer(key):
    """Maps ring key, which a producer created, and returns its consuming
    end; raises as open_producer does."""
    return Consumer._open(key)
