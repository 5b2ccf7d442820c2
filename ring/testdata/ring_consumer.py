"""A consumer of a shmmap ring (package ring) written from ring/LAYOUT.md
alone: the proof that another runtime can implement the layout. interop_test.go runs it against a Go producer.

    python3 ring_consumer.py KEY N [close]

opens ring KEY as its consumer, reads N messages, checks message i against
its expected content (length (i * 7919) % 1000, byte j equal to
(i + j) % 256), then expects the end of the stream (the producer has closed
and every message is read) unless "close" is given, closes its end and
prints

    count N bytes B crc32 C

B being the messages' total length and C the zlib CRC-32 of their bytes in
order. Any fault is an exit status of 1 with the reason on stderr.

Linux on x86-64 only. Python has no atomics; what stands in for them:

- A load or store of a shared word is an item of a memoryview cast to "I":
  CPython copies the 4 aligned bytes with one mov, and on x86-64 (TSO) a
  plain mov is what C11 compiles an acquire load and a release store to.
  So a load of a record's stamp orders the loads of its length and bytes
  after it, and the bytes of a record are read before the store of head
  that frees them.
- The layout asks for sequentially consistent accesses because each side
  stores its sleeper flag (or head) and then loads the other side's word:
  x86-64 may let such a load pass the store, which would lose a wake-up. A
  full fence between them is a locked instruction, here the lock cmpxchg of
  an uncontended pthread_mutex_lock (glibc), through ctypes.
- The one read-modify-write, setting a bit of the state word, goes through
  the kernel: FUTEX_WAKE_OP with FUTEX_OP_OR does it atomically.

arm64 is not TSO: a plain load there may pass an earlier plain load, so the
record could be read before the stamp that publishes it. This script refuses
to run elsewhere than x86-64.
"""
import ctypes
import errno
import fcntl
import os
import platform
import struct
import sys
import zlib
from multiprocessing import resource_tracker, shared_memory

# The header (ring/LAYOUT.md, "Header and records").
MAGIC = b"shmring\x00"
VERSION = 3
HEADER_SIZE = 512
ALIGN = 16
RECORD_HEAD = 16  # length, stamp, 8 reserved bytes
END_PRODUCER = 1
OFF_VERSION, OFF_HEADER_SIZE, OFF_CAPACITY, OFF_ALIGN = 8, 12, 16, 20
OFF_CREATOR_END, OFF_STATE, OFF_OPENER_PID = 24, 28, 36
OFF_TAIL, OFF_CONS_SLEEP, OFF_HEAD, OFF_PROD_SLEEP = 128, 132, 256, 260
STATE_OPENED, STATE_PROD_CLOSED, STATE_CONS_CLOSED = 1, 2, 4
KIND_MESSAGE, KIND_PADDING = 0, 1
STAMPED, STAMP_KIND = 4, 1  # a record's stamp: its position | STAMPED | kind

SYS_FUTEX = 202  # x86-64
FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAKE_OP = 0, 1, 5  # no FUTEX_PRIVATE_FLAG: shared
FUTEX_OP_OR = 2
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
POLL = 0.2  # seconds between liveness checks while waiting, as Go's ends


class Gone(Exception):
    pass


def past(a, b):
    """Whether position a is past b: (a - b) mod 2^32, signed, above 0."""
    return 0 < (a - b) & 0xFFFFFFFF < 0x80000000


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
_mutex = ctypes.create_string_buffer(64)  # zeroes: PTHREAD_MUTEX_INITIALIZER


def fence():
    """A full barrier: an uncontended pthread mutex is a locked instruction."""
    libc.pthread_mutex_lock(_mutex)
    libc.pthread_mutex_unlock(_mutex)


def futex(addr, op, val, timeout=None, addr2=0, val3=0):
    """futex(2); returns the result, or -errno."""
    r = libc.syscall(ctypes.c_long(SYS_FUTEX), ctypes.c_void_p(addr), ctypes.c_int(op),
                     ctypes.c_uint32(val), timeout, ctypes.c_void_p(addr2),
                     ctypes.c_uint32(val3))
    return r if r >= 0 else -ctypes.get_errno()


def atomic_or(addr, bits, wake_addr):
    """*addr |= bits atomically (FUTEX_WAKE_OP, FUTEX_OP_OR), waking every
    sleeper on wake_addr. bits must fit the op's 12 bits."""
    op = (FUTEX_OP_OR << 28) | (bits << 12)
    r = futex(wake_addr, FUTEX_WAKE_OP, 0x7FFFFFFF, ctypes.c_void_p(0), addr, op)
    if r < 0:
        raise OSError(-r, "futex FUTEX_WAKE_OP: " + os.strerror(-r))


class Ring:
    def __init__(self, key):
        name = key.lstrip("/")
        # The opener's liveness lock: a shared flock on an fd of the file,
        # held until this end closes or the process dies (Go's watchOf).
        self.fd = os.open("/dev/shm/" + name, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        try:
            self.shm = shared_memory.SharedMemory(name=name, track=False)  # 3.13+
        except TypeError:
            self.shm = shared_memory.SharedMemory(name=name)
            resource_tracker.unregister(self.shm._name, "shared_memory")
        buf = self.shm.buf
        if len(buf) < HEADER_SIZE or bytes(buf[:8]) != MAGIC:
            raise Gone("not a ring: no magic")
        self.w = buf[:HEADER_SIZE].cast("I")  # the header's words
        w = self.w
        if w[OFF_VERSION // 4] != VERSION:
            raise Gone(f"ring version {w[OFF_VERSION // 4]}, this reads {VERSION}")
        cap = w[OFF_CAPACITY // 4]
        if (w[OFF_HEADER_SIZE // 4] != HEADER_SIZE or w[OFF_ALIGN // 4] != ALIGN
                or cap < 64 or cap > 1 << 30 or cap & (cap - 1) or len(buf) < HEADER_SIZE + cap):
            raise Gone("corrupt ring header")
        if w[OFF_CREATOR_END // 4] != END_PRODUCER:
            raise Gone("busy: the creator is the consumer")
        if not self.producer_alive():
            raise Gone("the creator has closed or died")
        self.cap, self.mask = cap, cap - 1
        self.buf = buf[HEADER_SIZE:HEADER_SIZE + cap]
        self.b32 = self.buf.cast("I")  # the buffer's words: record heads
        c = ctypes.c_char.from_buffer(buf)
        self.base = ctypes.addressof(c)  # valid while mapped
        del c  # no export left for shm.close() to trip on
        w[OFF_OPENER_PID // 4] = os.getpid()
        # Go's opener CASes the opened bit in, failing if it is set; the
        # kernel's OR cannot fail, so look first (two Python openers at
        # once could both pass: a race Go's CAS does not have).
        if w[OFF_STATE // 4] & STATE_OPENED:
            raise Gone("busy: the consumer is open in another process")
        atomic_or(self.base + OFF_STATE, STATE_OPENED, self.base + OFF_STATE)
        self.head = w[OFF_HEAD // 4]

    def producer_alive(self):
        """Whether the creator holds its OFD lock (F_OFD_GETLK); an answer
        the kernel does not give counts as alive, as in Go."""
        lk = struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        try:
            lk = fcntl.fcntl(self.fd, F_OFD_GETLK, lk)
        except OSError:
            return True
        return struct.unpack("@hhqqi4x", lk)[0] != fcntl.F_UNLCK

    def publish(self, head):
        """Stores the new head, then wakes the producer if it sleeps."""
        self.head = head
        self.w[OFF_HEAD // 4] = head
        fence()  # the store of head before the load of producer-sleeping
        if self.w[OFF_PROD_SLEEP // 4]:
            futex(self.base + OFF_HEAD, FUTEX_WAKE, 1)

    def stamped(self, off):
        """Whether the record at head (offset off) is stamped: committed."""
        return self.b32[off // 4 + 1] & ~STAMP_KIND == self.head | STAMPED

    def wait(self, off, old):
        """Waits while the stamp word at head (offset off) holds old;
        False at the end of the stream."""
        w = self.w
        while True:
            closed = w[OFF_STATE // 4] & STATE_PROD_CLOSED
            t = w[OFF_TAIL // 4]
            if past(t, self.head):  # committed, so stamped
                if not self.stamped(off):
                    raise Gone(f"corrupt: no record at {self.head}, before tail {t}")
                return True
            if self.b32[off // 4 + 1] != old:
                return True
            if closed:
                return False
            self.await_tail(t, off, old)

    def await_tail(self, t, off, old):
        """One sleep on tail while it holds t (Go's end.await): returns when
        tail may have moved or the producer closed; raises Gone if its
        process died, unless it stamped a last record first."""
        w = self.w
        ts = Timespec(0, int(POLL * 1e9))
        while True:
            w[OFF_CONS_SLEEP // 4] = 1
            fence()  # the store of the flag before the load of tail
            if w[OFF_TAIL // 4] != t or w[OFF_STATE // 4] & STATE_PROD_CLOSED:
                w[OFF_CONS_SLEEP // 4] = 0
                return
            r = futex(self.base + OFF_TAIL, FUTEX_WAIT, t, ctypes.byref(ts))
            w[OFF_CONS_SLEEP // 4] = 0
            if w[OFF_TAIL // 4] != t:
                return
            if r == -errno.ETIMEDOUT and not self.producer_alive():
                if (w[OFF_TAIL // 4] != t or w[OFF_STATE // 4] & STATE_PROD_CLOSED
                        or self.b32[off // 4 + 1] != old):
                    return
                raise Gone("the producer's process died")
            if r < 0 and r not in (-errno.ETIMEDOUT, -errno.EINTR, -errno.EAGAIN):
                raise OSError(-r, "futex FUTEX_WAIT: " + os.strerror(-r))

    def next(self):
        """Returns (offset, length) of the next message in self.buf, or None
        at the end of the stream. The caller releases it."""
        while True:
            # Learn of the record by its stamp: the stamp word first (on
            # x86-64 a plain load is an acquire), then the length.
            off = self.head & self.mask
            st = self.b32[off // 4 + 1]
            if st & ~STAMP_KIND != self.head | STAMPED:
                if not self.wait(off, st):
                    return None
                continue
            n = self.b32[off // 4]
            rec = RECORD_HEAD + ((n + ALIGN - 1) & ~(ALIGN - 1))
            if n > self.cap - off - RECORD_HEAD:
                raise Gone(f"corrupt record: {n} bytes at {off}")
            if st & STAMP_KIND == KIND_PADDING:
                self.publish((self.head + rec) & 0xFFFFFFFF)
                continue
            self.pending = rec
            return off + RECORD_HEAD, n

    def release(self):
        self.publish((self.head + self.pending) & 0xFFFFFFFF)

    def close(self):
        """Sets the consumer-closed bit and wakes a producer sleeping on
        head, then unmaps and drops the flock."""
        atomic_or(self.base + OFF_STATE, STATE_CONS_CLOSED, self.base + OFF_HEAD)
        try:
            self.b32.release()
            self.buf.release()
            self.w.release()
            self.shm.close()
        except BufferError:
            pass  # a view still out, after an error: exit unmaps
        os.close(self.fd)


def main(key, count, eof=True):
    if platform.machine() not in ("x86_64", "AMD64") or sys.platform != "linux":
        sys.exit(f"ring_consumer.py: Linux on x86-64 only, not {sys.platform} {platform.machine()}")
    pattern = bytes(range(256)) * 5
    ring = Ring(key)
    total, crc = 0, 0
    try:
        for i in range(count):
            m = ring.next()
            if m is None:
                raise Gone(f"end of stream after {i} messages, want {count}")
            off, n = m
            want_n = (i * 7919) % 1000
            if n != want_n:
                raise Gone(f"message {i}: {n} bytes, want {want_n}")
            msg = ring.buf[off:off + n]
            if msg != pattern[i % 256:i % 256 + n]:
                raise Gone(f"message {i}: wrong content")
            crc = zlib.crc32(msg, crc)
            total += n
            msg.release()
            ring.release()
        if eof and ring.next() is not None:
            raise Gone(f"a message after the {count} expected")
    finally:
        ring.close()
    print(f"count {count} bytes {total} crc32 {crc}", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1], int(sys.argv[2]), sys.argv[3:] != ["close"])
    except Gone as e:
        sys.exit(f"ring_consumer.py: {e}")
