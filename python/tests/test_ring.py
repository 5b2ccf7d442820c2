"""Tests of shmmap.ring: both ends in this process (threads) or in a child
process, against ring/LAYOUT.md (version 3), and against a hostile peer that
writes into the segment. Every test removes what it made, and checks that
no name, fd or mapping of /dev/shm is left."""

import mmap
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
import unittest
import zlib

from shmmap import ring
from shmmap.errors import (
    Busy,
    Closed,
    Corrupt,
    InvalidKey,
    InvalidSize,
    PeerGone,
    ShmmapError,
    TooLarge,
    VersionError,
)

from ._segtest import held

H = ring.HEADER_SIZE


class RingTest(unittest.TestCase):
    def setUp(self):
        self.before = held()
        self.keys = []
        self.addCleanup(self.check_leaks)

    def check_leaks(self):
        import gc

        gc.collect()
        for key in self.keys:
            path = "/dev/shm" + key
            if os.path.lexists(path):
                os.unlink(path)
                self.fail(f"{key} left in /dev/shm")
        self.assertEqual(held(), self.before)

    def later(self, delay, fn, *args):
        """Runs fn(*args) in a thread after delay seconds and returns the
        thread; the test's cleanup waits for it, before the leak check (a
        close there unlinks last)."""
        t = threading.Timer(delay, fn, args)
        t.start()
        self.addCleanup(t.join)
        return t

    def pair(self, capacity=4096, creator="producer"):
        """A ring made by one end and opened by the other, in this process;
        both are closed at cleanup."""
        if creator == "producer":
            p = ring.create_producer(capacity)
            self.keys.append(p.key)
            self.addCleanup(p.close)
            c = ring.open_consumer(p.key)
            self.addCleanup(c.close)
        else:
            c = ring.create_consumer(capacity)
            self.keys.append(c.key)
            self.addCleanup(c.close)
            p = ring.open_producer(c.key)
            self.addCleanup(p.close)
        return p, c

    def segment(self, key):
        """A read-write mapping of ring key's segment, as a hostile peer has
        it."""
        fd = os.open("/dev/shm" + key, os.O_RDWR)
        try:
            mm = mmap.mmap(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        self.addCleanup(mm.close)
        return mm


def put32(mm, off, v):
    struct.pack_into("=I", mm, off, v & 0xFFFFFFFF)


def get32(mm, off):
    return struct.unpack_from("=I", mm, off)[0]


class TestMessages(RingTest):
    def test_order_wrap_and_padding(self):
        # A small ring that wraps and pads many times over; messages of
        # every size from 0 to the maximum, each checked.
        for creator in ("producer", "consumer"):
            p, c = self.pair(256, creator)
            rnd = random.Random(7)
            sizes = [rnd.randint(0, p.max_message) for _ in range(3000)]
            pat = bytes(range(256)) * 3

            def produce():
                for i, n in enumerate(sizes):
                    p.send(pat[i % 256 : i % 256 + n], timeout=10)

            th = threading.Thread(target=produce)
            th.start()
            for i, n in enumerate(sizes):
                m = c.next(timeout=10)
                self.assertEqual(bytes(m), pat[i % 256 : i % 256 + n], f"message {i}")
                c.release()
            th.join()

    def test_layout(self):
        # The records as LAYOUT.md (version 3) has them: 16-byte heads, n
        # at +0, the stamp at +4, zeros at +8, the message at +16.
        p, c = self.pair(128)
        mm = self.segment(p.key)
        self.assertEqual(mm[0:8], b"shmring\x00")
        self.assertEqual([get32(mm, o) for o in (8, 12, 16, 20, 24)], [3, 512, 128, 16, 1])
        p.send(b"abc")
        self.assertEqual(get32(mm, H), 3)
        self.assertEqual(get32(mm, H + 4), 0 | 4)
        self.assertEqual(mm[H + 8 : H + 16], bytes(8))
        self.assertEqual(mm[H + 16 : H + 19], b"abc")
        self.assertEqual(get32(mm, 128), 32)  # tail: 16 + round_up(3, 16)
        self.assertEqual(get32(mm, H + 32 + 4), 0)  # cleared after it
        self.assertEqual(bytes(c.next()), b"abc")
        c.release()
        p.send(b"y" * 33)  # 16 + 48: tail 96
        self.assertEqual(get32(mm, 128), 96)
        self.assertEqual(bytes(c.next()), b"y" * 33)
        c.release()
        # 40 bytes take 64, more than the 32 left before the end: a padding
        # record of 32 - 16 at 96, committed with the message at 0.
        p.send(b"x" * 40)
        self.assertEqual(get32(mm, H + 96), 16)
        self.assertEqual(get32(mm, H + 96 + 4), 96 | 4 | 1)
        self.assertEqual(get32(mm, H + 0), 40)
        self.assertEqual(get32(mm, H + 4), 128 | 4)
        self.assertEqual(get32(mm, 128), 128 + 64)
        self.assertEqual(bytes(c.next()), b"x" * 40)
        c.release()
        self.assertEqual(get32(mm, 256), 192)  # head

    def test_sizes(self):
        p, c = self.pair(4096)
        self.assertEqual(p.max_message, 4096 - 16)
        self.assertEqual(c.max_message, 4096 - 16)
        with self.assertRaises(TooLarge):
            p.reserve(p.max_message + 1)
        with self.assertRaises(InvalidSize):
            p.reserve(-1)
        v = p.reserve(p.max_message)
        self.assertEqual(len(v), p.max_message)
        self.assertFalse(v.readonly)
        v[:] = b"\x5a" * len(v)
        p.commit(len(v))
        m = c.next()
        self.assertTrue(m.readonly)
        self.assertEqual(bytes(m), b"\x5a" * p.max_message)
        c.release()
        p.send(b"")
        self.assertEqual(len(c.next()), 0)
        for bad in (0, -5):
            with self.assertRaises(InvalidSize):
                ring.create_producer(bad)
        with self.assertRaises(TooLarge):
            ring.create_consumer((1 << 30) + 1)
        q = ring.create_producer(100)  # rounded up
        self.keys.append(q.key)
        self.addCleanup(q.close)
        self.assertEqual(q.max_message, 128 - 16)

    def test_commit_prefix_and_abort(self):
        p, c = self.pair(256)
        v = p.reserve(100)
        v[:5] = b"hello"
        v[5:] = b"\xff" * 95
        p.commit(5)
        with self.assertRaises(ValueError):
            v[0]  # released by commit
        with self.assertRaises(ValueError):
            p.commit(1)  # no reservation
        v = p.reserve(10)
        with self.assertRaises(ValueError):
            p.commit(11)
        p.abort()
        with self.assertRaises(ValueError):
            v[0]
        p.send(b"world")
        self.assertEqual(bytes(c.next()), b"hello")
        self.assertEqual(bytes(c.next()), b"world")  # a batch, one release
        c.release()
        with self.assertRaises(ValueError):
            c.release()

    def test_views_released(self):
        p, c = self.pair(256)
        p.send(b"one")
        p.send(b"two")
        a, b = c.next(), c.next()
        c.release()
        for v in (a, b):
            with self.assertRaises(ValueError):
                bytes(v)
        p.send(b"three")
        m = c.next()
        part = m[1:3]  # derived: stays readable memory after close
        c.close()
        with self.assertRaises(ValueError):
            bytes(m)
        self.assertEqual(len(bytes(part)), 2)
        del part

    def test_timeouts(self):
        p, c = self.pair(64)
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            c.next(timeout=0.05)
        self.assertLess(time.monotonic() - t0, 1)
        with self.assertRaises(TimeoutError):
            c.next(timeout=0)
        p.send(b"x" * 40, timeout=0)
        with self.assertRaises(TimeoutError):
            p.reserve(40, timeout=0.05)
        self.assertEqual(len(c.next(timeout=0)), 40)

    def test_eof(self):
        p, c = self.pair(256)
        for i in range(3):
            p.send(bytes([i]) * 10)
        p.close()
        self.assertEqual([bytes(m) for m in c], [bytes([i]) * 10 for i in range(3)])
        with self.assertRaises(EOFError):
            c.next(timeout=0)

    def test_eof_wakes_waiter(self):
        # With liveness checks 5 s apart, only the close's wake-up ends the
        # wait in time.
        p, c = self.pair(256)
        self.addCleanup(setattr, ring, "POLL", ring.POLL)
        ring.POLL = 5.0
        self.later(0.1, p.close)
        t0 = time.monotonic()
        with self.assertRaises(EOFError):
            c.next(timeout=10)
        self.assertLess(time.monotonic() - t0, 2)  # woken, not polled

    def test_consumer_close(self):
        p, c = self.pair(64)
        p.send(b"x" * 40)
        self.later(0.1, c.close)
        with self.assertRaisesRegex(PeerGone, "closed"):
            p.reserve(40, timeout=5)

    def test_closed(self):
        p, c = self.pair(64)
        p.close()
        c.close()
        c.close()  # a second close does nothing
        for call in (lambda: p.reserve(1), lambda: p.send(b""), lambda: p.commit(0), c.next, c.release):
            with self.assertRaises(Closed):
                call()
        p.abort()

    def test_busy_and_keys(self):
        p, c = self.pair(64)
        with self.assertRaises(Busy):
            ring.open_consumer(p.key)  # opened already
        q = ring.create_consumer(64)
        self.keys.append(q.key)
        self.addCleanup(q.close)
        with self.assertRaises(Busy):
            ring.open_consumer(q.key)  # the creator is the consumer
        for bad in ("", "/", "..", "/a/b", "a\x00"):
            with self.assertRaises(InvalidKey):
                ring.open_consumer(bad)
        with self.assertRaises(FileNotFoundError):
            ring.open_consumer("/shmmap_test_no_such_ring")
        self.assertEqual(os.stat("/dev/shm" + p.key).st_mode & 0o777, 0o600)

    def test_sigint_interrupts_wait(self):
        p, c = self.pair(64)

        class Interrupt(Exception):
            pass

        def handler(signum, frame):
            raise Interrupt

        old = signal.signal(signal.SIGALRM, handler)
        self.addCleanup(signal.signal, signal.SIGALRM, old)
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        t0 = time.monotonic()
        with self.assertRaises(Interrupt):
            c.next(timeout=5)
        self.assertLess(time.monotonic() - t0, 1)
        self.assertEqual(c._w.load(ring.OFF_CONS_SLEEP), 0)  # flag cleared

    def test_no_syscalls_when_keeping_up(self):
        # The sleeper-flag rule: with no sleeper, commit and release make
        # no futex call (the ends count their FUTEX_WAKEs) ...
        p, c = self.pair(4096)
        for i in range(100):
            p.send(b"x" * 10)
            c.next()
            c.release()
            v = p.reserve(20)
            p.commit(len(v))
            for m in c:
                break
        self.assertEqual((p._w.wakes, c._w.wakes), (0, 0))
        # ... and with one, one call wakes it.
        self.later(0.1, p.send, b"y")
        c.release()
        self.assertEqual(bytes(c.next(timeout=5)), b"y")
        self.assertEqual((p._w.wakes, c._w.wakes), (1, 0))

    def test_open_after_messages(self):
        # The opener starts where the creator is: a consumer at head, with
        # the messages committed before it opened still to read; a producer
        # at tail.
        p = ring.create_producer(512)
        self.keys.append(p.key)
        self.addCleanup(p.close)
        for i in range(3):
            p.send(bytes([i]) * 100, timeout=1)
        c = ring.open_consumer(p.key)
        self.addCleanup(c.close)
        self.assertEqual([bytes(c.next(timeout=0)) for _ in range(2)], [b"\x00" * 100, b"\x01" * 100])
        c.release()
        self.assertEqual(bytes(c.next(timeout=0)), b"\x02" * 100)
        c.release()
        q = ring.create_consumer(256)
        self.keys.append(q.key)
        self.addCleanup(q.close)
        mm = self.segment(q.key)
        put32(mm, 128, 64)  # as if a producer had sent 64 bytes, taken
        put32(mm, 256, 64)
        r = ring.open_producer(q.key)
        self.addCleanup(r.close)
        r.send(b"z", timeout=1)
        self.assertEqual(get32(mm, 128), 96)
        self.assertEqual(get32(mm, H + 64 + 4), 64 | 4)


CHILD = r"""
import sys, time
from shmmap import ring
mode, key = sys.argv[1], sys.argv[2]
if mode.startswith("create-"):
    end = (ring.create_producer if mode == "create-producer" else ring.create_consumer)(64)
    print(end.key, flush=True)
elif mode == "produce":
    p = ring.open_producer(key)
    p.send(b"a" * 100)
    v = p.reserve(100)
    v[:50] = b"b" * 50
else:
    c = ring.open_consumer(key)
print("ready", flush=True)
time.sleep(60)
"""


class TestSpin(RingTest):
    """set_spin: a wait watches the ring first, and sleeps only after."""

    def long_spins(self):
        # Spins that outlast a slow machine's scheduling, as Go's tests
        # raise maxSpin.
        self.addCleanup(setattr, ring, "MAX_SPIN", ring.MAX_SPIN)
        ring.MAX_SPIN = 1.0

    def test_set_spin_values(self):
        p, c = self.pair(64)
        for given, want in [(0.001, 0.001), (1, 0.01), (float("inf"), 0.01), (-1, 0.0),
                            (float("-inf"), 0.0), (0, 0.0)]:
            c.set_spin(given)
            self.assertEqual(c._spin, want, given)
        for bad in ("1", None, True, b"", 1j):
            with self.assertRaises(TypeError):
                p.set_spin(bad)
        with self.assertRaises(ValueError):
            p.set_spin(float("nan"))
        self.assertEqual(p._spin, 0.0)

    def test_native_spin_bounds(self):
        p, c = self.pair(64)
        for bad in (-0.1, 1.5, float("nan"), float("inf")):
            with self.assertRaises(ValueError):
                c._w.spin(bad)
            with self.assertRaises(ValueError):
                p._w.spin(bad)
        with self.assertRaises(TimeoutError):
            c.next(timeout=0)  # take() found no record: spin watches its stamp
        self.assertFalse(c._w.spin(0.001))
        self.assertFalse(p._w.spin(0.001))

    def test_native_spin_sees_change(self):
        p, c = self.pair(64)
        with self.assertRaises(TimeoutError):
            c.next(timeout=0)
        sender = self.later(0.05, p.send, b"x" * 40)
        self.assertTrue(c._w.spin(1.0))  # the stamp at next changed
        sender.join()
        self.assertFalse(p._w.room(64))
        self.later(0.05, lambda: (c.next(), c.release()))
        self.assertTrue(p._w.spin(1.0))  # head moved

    def test_consumer_spin_takes_without_sleep(self):
        self.long_spins()
        p, c = self.pair(4096)
        c.set_spin(1.0)
        sender = self.later(0.05, p.send, b"spun")
        self.assertEqual(bytes(c.next(timeout=5)), b"spun")
        sender.join()
        # The consumer never set its sleeper flag: the commit made no call.
        self.assertEqual(p._w.wakes, 0)

    def test_producer_spin_gets_room_without_sleep(self):
        self.long_spins()
        p, c = self.pair(64)
        p.send(b"x" * 40)  # the ring is full
        p.set_spin(1.0)

        def drain():
            c.next()
            c.release()

        drainer = self.later(0.05, drain)
        p.send(b"y" * 40, timeout=5)
        drainer.join()
        self.assertEqual(c._w.wakes, 0)  # the producer never slept
        self.assertEqual(bytes(c.next(timeout=5)), b"y" * 40)

    def test_spin_then_sleep(self):
        # A message that comes after the spin still comes: the wait sleeps.
        p, c = self.pair(4096)
        c.set_spin(0.001)
        sender = self.later(0.2, p.send, b"late")
        self.assertEqual(bytes(c.next(timeout=5)), b"late")
        sender.join()
        self.assertEqual(p._w.wakes, 1)

    def test_timeout_ends_spin(self):
        self.long_spins()
        p, c = self.pair(64)
        c.set_spin(1.0)
        p.set_spin(1.0)
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            c.next(timeout=0.05)
        p.send(b"x" * 40)
        with self.assertRaises(TimeoutError):
            p.reserve(40, timeout=0.05)
        self.assertLess(time.monotonic() - t0, 0.9)  # not the full 1 s spins
        with self.assertRaises(TimeoutError):
            p.reserve(40, timeout=0)  # timeout=0: no spin, no wait

    def test_eof_after_spin(self):
        self.long_spins()
        p, c = self.pair(256)
        c.set_spin(0.1)
        self.later(0.02, p.close)
        with self.assertRaises(EOFError):
            c.next(timeout=5)

    def test_close_while_spinning(self):
        # A spin holds the mapping as a futex wait does: close from another
        # thread meanwhile is refused, never an unmap under the spin.
        self.long_spins()
        p, c = self.pair(64)
        c.set_spin(0.5)
        got = []

        def close():
            try:
                c.close()
            except BaseException as e:  # noqa: BLE001 - the test looks at it
                got.append(e)

        closer = self.later(0.05, close)
        with self.assertRaises(TimeoutError):
            c.next(timeout=0.3)
        closer.join()
        self.assertEqual([type(e) for e in got], [BufferError])
        self.assertFalse(c.closed)

    def test_native_spin_after_close(self):
        # The mapping is gone: spin raises, never loads from it.
        p, c = self.pair(64)
        p.close()
        c.close()
        for end in (p, c):
            with self.assertRaisesRegex(ValueError, "released"):
                end._w.spin(0.001)

    def test_spin_lasts_its_time(self):
        p, c = self.pair(64)
        with self.assertRaises(TimeoutError):
            c.next(timeout=0)
        for end in (p, c):
            t0 = time.monotonic()
            self.assertFalse(end._w.spin(0.1))
            d = time.monotonic() - t0
            self.assertGreaterEqual(d, 0.1)
            self.assertLess(d, 0.19)  # not twice its time

    def test_consumer_spin_on_a_stale_stamp(self):
        # A full ring leaves the stamp of the lap before at next (the
        # producer's clear had no room): the spin watches that value; and,
        # with a message taken and not released, it watches next, not head.
        self.long_spins()
        p, c = self.pair(64)
        c.set_spin(1.0)
        p.send(b"x" * 40)  # one record of 64 bytes: the stamp at 0 stays
        c.next()
        c.release()
        for msg in (b"", b"spun"):  # the first taken and kept
            sender = self.later(0.05, p.send, msg)
            self.assertEqual(bytes(c.next(timeout=5)), msg)
            sender.join()
        self.assertEqual(p._w.wakes, 0)

    def test_spin_sees_a_stamp_before_tail(self):
        # A producer that died between its stamp and tail: the spinning
        # consumer takes the message by its stamp alone, as Go's does.
        self.long_spins()
        p, c = self.pair(4096)
        mm = self.segment(p.key)
        c.set_spin(1.0)

        def stamp_only():
            struct.pack_into("=IIII", mm, H, 4, 0, 0, 0)
            mm[H + 16:H + 20] = b"dead"
            put32(mm, H + 4, 0 | ring.STAMPED)

        self.later(0.05, stamp_only)
        t0 = time.monotonic()
        self.assertEqual(bytes(c.next(timeout=5)), b"dead")
        self.assertLess(time.monotonic() - t0, 0.5)  # by the spin, not after it
        self.assertEqual(p._w.wakes, 0)

    def test_hostile_stamp_during_spin(self):
        # A peer writes a value that is no stamp at next while the consumer
        # spins: next goes on waiting (here, to its timeout), never returns
        # None.
        self.long_spins()
        p, c = self.pair(64)
        mm = self.segment(p.key)
        c.set_spin(1.0)
        self.later(0.05, put32, mm, H + 4, 0xDEAD0000)
        with self.assertRaises(TimeoutError):
            c.next(timeout=0.3)

    def test_producer_spin_then_partial_room(self):
        # The spin sees head move, but not far enough for a padding record
        # that must go alone: the producer waits on rather than pad.
        self.long_spins()
        p, c = self.pair(256)
        p.send(b"a" * 192)  # 208 bytes at 0
        c.next()
        c.release()  # head 208
        p.send(b"")  # 16 bytes at 208
        p.send(b"b" * 16)  # 32 bytes at 224
        p.send(b"c" * 48)  # 64 bytes at 256: tail 320, 144 bytes free
        self.assertEqual(p._w.need(192), -192)  # a padding of 192 alone first
        p.set_spin(1.0)
        got = []

        def first():
            c.next()
            c.release()  # head 224: 160 bytes free, not 192

        def rest():
            c.next()
            c.next()
            c.release()  # head 320: the padding fits
            got.append(bytes(c.next(timeout=5)))  # passes it, then the message

        self.later(0.05, first)
        b = self.later(0.3, rest)
        p.send(b"z" * 192, timeout=5)
        b.join()
        self.assertEqual(got, [b"z" * 192])
        self.assertEqual(c._w.wakes, 0)  # it spun again after each move, as Go's

    def test_producer_spins_again_after_a_wake(self):
        # A producer whose spin ran out sleeps; woken by a release that
        # leaves too little room, it spins again (Go's room), so the next
        # release needs no wake-up.
        self.long_spins()
        p, c = self.pair(512)
        for _ in range(8):
            p.send(b"m" * 48)  # 8 records of 64 bytes: full, tail at the end
        p.set_spin(0.5)

        def release_one():
            c.next()
            c.release()

        def drain():
            time.sleep(1.0)  # after the first spin: the producer sleeps
            release_one()  # 64 bytes free: woken, not enough for 128
            time.sleep(0.05)
            release_one()  # 128 free, while it spins again

        drainer = threading.Thread(target=drain)
        drainer.start()
        self.addCleanup(drainer.join)
        p.send(b"z" * 112, timeout=10)
        drainer.join()
        self.assertEqual(c._w.wakes, 1)

class TestDeadPeer(RingTest):
    def child(self, mode, key):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, mode, key], stdout=subprocess.PIPE, env=env
        )
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        if mode.startswith("create-"):
            proc.key = proc.stdout.readline().decode().strip()
        self.assertEqual(proc.stdout.readline(), b"ready\n")
        proc.stdout.close()
        return proc

    def expect_gone(self, proc, call):
        got = []

        def run():
            try:
                call()
                got.append(None)
            except BaseException as e:
                got.append(e)

        th = threading.Thread(target=run)
        th.start()
        th.join(0.3)
        self.assertTrue(th.is_alive(), f"returned {got} while the peer lived")
        proc.kill()
        proc.wait()
        t0 = time.monotonic()
        th.join(5)
        d = time.monotonic() - t0
        self.assertFalse(th.is_alive())
        self.assertIsInstance(got[0], PeerGone)
        self.assertLess(d, 1.0)

    def test_producer_killed(self):
        c = ring.create_consumer(4096)
        self.keys.append(c.key)
        self.addCleanup(c.close)
        proc = self.child("produce", c.key)
        self.assertEqual(bytes(c.next()), b"a" * 100)
        c.release()
        self.expect_gone(proc, lambda: c.next(timeout=5))  # never the half message

    def test_consumer_killed(self):
        p = ring.create_producer(64)
        self.keys.append(p.key)
        self.addCleanup(p.close)
        proc = self.child("consume", p.key)
        p.send(b"x" * 40)
        self.expect_gone(proc, lambda: p.reserve(40, timeout=5))

    def test_creator_killed(self):
        # The opener learns of the creator's death by its OFD lock, both
        # while it waits and when it opens.
        for kind in ("producer", "consumer"):
            proc = self.child("create-" + kind, "-")
            key = proc.key
            self.keys.append(key)
            self.addCleanup(lambda key=key: os.path.lexists("/dev/shm" + key) and os.unlink("/dev/shm" + key))
            if kind == "producer":
                c = ring.open_consumer(key)
                self.addCleanup(c.close)
                self.expect_gone(proc, lambda: c.next(timeout=5))
            else:
                proc.kill()
                proc.wait()
                with self.assertRaises(PeerGone):
                    ring.open_producer(key)
