"""shmmap.ring against a hostile peer: this test writes into the segment what
a peer may write (LAYOUT.md, "A record is corrupt", "The positions are
corrupt", Opening's checks) and expects an exception of the package, never
a crash, a hang, or an access outside the ring."""

import os
import random
import struct
import unittest

from shmmap import _native, ring
from shmmap.errors import Busy, Corrupt, PeerGone, ShmmapError, VersionError

from .test_ring import H, RingTest, get32, put32


class TestCorruptHeader(RingTest):
    def open_after(self, poke, exc):
        p = ring.create_producer(256)
        self.keys.append(p.key)
        self.addCleanup(p.close)
        mm = self.segment(p.key)
        poke(mm)
        with self.assertRaises(exc):
            c = ring.open_consumer(p.key)
            c.close()

    def test_header(self):
        cases = [
            (lambda mm: mm.__setitem__(slice(0, 8), b"shmrinG\x00"), Corrupt),
            (lambda mm: put32(mm, 8, 2), VersionError),
            (lambda mm: put32(mm, 8, 4), VersionError),
            (lambda mm: put32(mm, 12, 256), Corrupt),
            (lambda mm: put32(mm, 20, 8), Corrupt),
            (lambda mm: put32(mm, 16, 100), Corrupt),  # not a power of two
            (lambda mm: put32(mm, 16, 32), Corrupt),  # below 64
            (lambda mm: put32(mm, 16, 1 << 31), Corrupt),  # above 1 GiB
            (lambda mm: put32(mm, 16, 512), Corrupt),  # more than the segment
            (lambda mm: put32(mm, 24, 3), Corrupt),
            (lambda mm: put32(mm, 24, 2), Busy),  # the creator is the consumer
            (lambda mm: put32(mm, 28, 1), Busy),  # opened already
            (lambda mm: put32(mm, 128, 8), Corrupt),  # tail not a multiple of 16
            (lambda mm: put32(mm, 256, 16), Corrupt),  # head past tail
            (lambda mm: put32(mm, 128, 512), Corrupt),  # tail - head > capacity
        ]
        for poke, exc in cases:
            with self.subTest(exc=exc.__name__):
                self.open_after(poke, exc)

    def test_short_segment(self):
        # A segment shorter than a header, or than its capacity says.
        for size, cap in ((100, None), (H + 64, 128)):
            key = "/shmmap_test_short_%d_%d" % (os.getpid(), size)
            path = "/dev/shm" + key
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            self.addCleanup(os.unlink, path)
            try:
                os.ftruncate(fd, size)
                if cap:
                    os.pwrite(fd, struct.pack("=8sIIIII", b"shmring\x00", 3, 512, cap, 16, 1), 0)
            finally:
                os.close(fd)
            with self.assertRaises(Corrupt):
                ring.open_consumer(key)

    def test_not_a_segment(self):
        key = "/shmmap_test_dir_%d" % os.getpid()
        os.mkdir("/dev/shm" + key)
        self.addCleanup(os.rmdir, "/dev/shm" + key)
        with self.assertRaises(OSError):
            ring.open_consumer(key)


class TestCorruptRecords(RingTest):
    def test_records(self):
        # Each case writes a record head at the consumer's next position
        # (0) and tail past it, and expects Corrupt from next.
        cap = 256
        cases = {
            "length past the end": (cap, 0 | 4, 32),
            "length just past the end": (cap - 15, 0 | 4, 32),
            "padding at offset 0": (cap - 16, 0 | 4 | 1, 32),
            "no stamp before tail": (10, 0, 32),
            "stamp of another lap": (10, 256 | 4, 32),
            "tail not a multiple of 16": (10, 0, 8),
            "tail more than a lap ahead": (10, 0, 3 * cap),
            "tail far behind": (10, 0, -2 * cap),
            "tail behind, not a multiple of 16": (10, 0, -8),
        }
        for name, (n, stamp, tail) in cases.items():
            with self.subTest(name):
                p, c = self.pair(cap)
                mm = self.segment(p.key)
                put32(mm, H, n)
                put32(mm, H + 4, stamp)
                put32(mm, 128, tail)
                with self.assertRaises(Corrupt):
                    c.next(timeout=0)

    def test_record_beyond_head(self):
        # A record that, with those taken and not released, ends more than
        # a lap past head.
        p, c = self.pair(256)
        p.send(b"a" * 100)  # 0 to 128
        c.next()
        c.release()  # head 128
        p.send(b"b" * 112)  # 128 to 256, taken: next 256, at offset 0
        c.next()
        mm = self.segment(p.key)
        put32(mm, H, 120)  # 144 bytes: to 400, more than 256 past head
        put32(mm, H + 4, 256 | 4)
        with self.assertRaises(Corrupt):
            c.next(timeout=0)

    def test_length_past_end(self):
        # A record within a lap of head that runs past the buffer's end.
        p, c = self.pair(256)
        p.send(b"a" * 100)
        c.next()
        c.release()  # head and next 128
        mm = self.segment(p.key)
        put32(mm, H + 128, 128 - 16 + 1)
        put32(mm, H + 128 + 4, 128 | 4)
        with self.assertRaises(Corrupt):
            c.next(timeout=0)

    def test_padding_not_to_end(self):
        p, c = self.pair(256)
        p.send(b"a" * 100)
        c.next()
        c.release()
        mm = self.segment(p.key)
        put32(mm, H + 128, 16)
        put32(mm, H + 128 + 4, 128 | 4 | 1)
        with self.assertRaises(Corrupt):
            c.next(timeout=0)

    def test_uncommitted_room(self):
        # What a producer wrote in room it reserved and did not commit may
        # look like a record; the stamp word after the records it commits
        # is cleared, so the consumer does not take it (LAYOUT.md,
        # "Committing").
        p, c = self.pair(256)
        v = p.reserve(100)
        v[:] = struct.pack("=IIQ", 5, 32 | 4, 0) * 6 + bytes(4)  # a record head each 16 bytes
        p.commit(5)  # the message at 0 to 32; 32 has a fake head
        self.assertEqual(bytes(c.next(timeout=0)), struct.pack("=IIQ", 5, 32 | 4, 0)[:5])
        with self.assertRaises(TimeoutError):
            c.next(timeout=0)

    def test_bad_head(self):
        # The producer checks each head it loads.
        for head in (8, 512, -16 & 0xFFFFFFFF, 0x80000000):
            with self.subTest(head=head):
                p, c = self.pair(64)
                p.send(b"x" * 40)
                mm = self.segment(p.key)
                put32(mm, 256, head)
                with self.assertRaises(Corrupt):
                    p.reserve(40, timeout=0)


class TestFuzz(RingTest):
    def test_garbage(self):
        # Random words written anywhere in the header and the buffer, between
        # calls of both ends: only the package's exceptions, TimeoutError and
        # EOFError may come out, and the process must live.
        rnd = random.Random(int(os.environ.get("SHMMAP_FUZZ_SEED", "1")))
        allowed = (ShmmapError, TimeoutError, EOFError)
        outcomes = {}
        for round_ in range(200):
            p, c = self.pair(256, rnd.choice(("producer", "consumer")))
            mm = self.segment(p.key)
            interesting = [8, 16, 20, 24, 28, 128, 132, 256, 260]
            for step in range(40):
                for _ in range(rnd.randint(0, 3)):
                    if rnd.random() < 0.5:
                        off = rnd.choice(interesting)
                    else:
                        off = H + rnd.randrange(0, 256, 4)
                    v = rnd.choice((0, 4, 16, 0xFFFFFFF0, rnd.getrandbits(32), rnd.randrange(0, 1024, 16) | rnd.choice((0, 4, 5))))
                    put32(mm, off, v)
                try:
                    if rnd.random() < 0.5:
                        p.send(bytes(rnd.randint(0, p.max_message)), timeout=0)
                    else:
                        m = c.next(timeout=0)
                        self.assertLessEqual(len(m), c.max_message)
                        bytes(m)
                        if rnd.random() < 0.5:
                            c.release()
                    outcomes["ok"] = outcomes.get("ok", 0) + 1
                except allowed as e:
                    outcomes[type(e).__name__] = outcomes.get(type(e).__name__, 0) + 1
                except ValueError as e:
                    # release without next after a Corrupt: the API's rule
                    self.assertIn("release", str(e))
            p.close()
            c.close()
            mm.close()
        self.assertIn("Corrupt", outcomes)
        self.assertIn("ok", outcomes)


class TestWords(unittest.TestCase):
    def test_bounds(self):
        buf = bytearray(64)
        w = _native.Words(buf)
        self.addCleanup(w.release)
        w.store(60, 7)
        self.assertEqual(w.load(60), 7)
        for off in (-4, 64, 61, 2, 1 << 62):
            with self.assertRaises(IndexError):
                w.load(off)
            with self.assertRaises(IndexError):
                w.store(off, 1)
        with self.assertRaises(IndexError):
            w.stamp(56, 1, 4)  # a head of 16 bytes does not fit
        with self.assertRaises(IndexError):
            w.stamp(8, 1, 4)  # not 16-aligned
        with self.assertRaises(OverflowError):
            w.store(0, 1 << 32)
        self.assertTrue(w.cas(0, 0, 5))
        self.assertFalse(w.cas(0, 0, 6))
        self.assertEqual(w.fetch_or(0, 2), 5)
        self.assertEqual(w.load(0), 7)
        self.assertFalse(w.wait(0, 7, 0.01))  # timed out
        self.assertTrue(w.wait(0, 8, 1))  # not the value: at once
        with self.assertRaises(ValueError):
            w.wait(0, 7, -1)
        self.assertEqual(w.wake(0, 1), 0)
        with self.assertRaises(BufferError):
            buf.append(0)  # held: cannot resize under the words
        w.release()
        with self.assertRaises(ValueError):
            w.load(0)
        buf.append(0)

    def test_read_only(self):
        with self.assertRaises(BufferError):
            _native.Words(b"x" * 64)


class TestEnds(unittest.TestCase):
    """The C ends (_native.Producer, _native.Consumer) by themselves, over a
    bytearray as the ring's mapping, which the test writes as a peer may."""

    CAP = 256

    def end(self, kind, buf=None, cap=CAP, tail=0, head=0, view=None, corrupt=Corrupt):
        buf = bytearray(H + cap) if buf is None else buf
        view = memoryview(buf) if view is None else view
        e = kind(buf, view, cap, tail, head, corrupt)
        self.addCleanup(e.release)
        self.addCleanup(e.drop_views)
        return e

    def test_one_buffer_ever(self):
        """An end never takes another buffer, whose length its capacity
        would not fit: not through Words.__init__ (before or after release),
        nor a second __init__; and one never initialised refuses Words'."""
        for kind in (_native.Producer, _native.Consumer):
            e = self.end(kind)
            with self.assertRaises((TypeError, ValueError)):
                _native.Words.__init__(e, bytearray(64))
            with self.assertRaises(ValueError):
                kind.__init__(e, bytearray(H + self.CAP), memoryview(bytearray(H + self.CAP)), self.CAP, 0, 0, Corrupt)
            e.release()
            with self.assertRaises((TypeError, ValueError)):
                _native.Words.__init__(e, bytearray(64))
            fresh = kind.__new__(kind)
            with self.assertRaises(TypeError):
                _native.Words.__init__(fresh, bytearray(64))

    def test_refusals(self):
        buf = bytearray(H + 256)
        for cap in (0, 32, 100, 512, 1 << 31):  # not a ring's, or past buf
            with self.assertRaises((ValueError, OverflowError)):
                _native.Consumer(buf, memoryview(buf), cap, 0, 0, Corrupt)
        for tail, head in ((8, 0), (0, 8), (16, 32), (512, 0)):
            with self.assertRaises(ValueError):
                _native.Producer(buf, memoryview(buf), 256, tail, head, Corrupt)
        with self.assertRaises(ValueError):  # a view of other bytes
            _native.Producer(buf, memoryview(bytearray(H + 256)), 256, 0, 0, Corrupt)
        with self.assertRaises(ValueError):
            _native.Producer(buf, memoryview(buf)[1:], 256, 0, 0, Corrupt)
        with self.assertRaises(TypeError):
            _native.Producer(buf, buf, 256, 0, 0, Corrupt)
        with self.assertRaises(TypeError):
            _native.Producer(buf, memoryview(buf), 256, 0, 0, "Corrupt")
        buf.append(0)  # none of them kept the buffer

    def test_released(self):
        # After release (close), every call raises; none touches memory.
        p = self.end(_native.Producer)
        c = self.end(_native.Consumer)
        p.release()
        c.release()
        calls = [lambda: p.reserve(1), lambda: p.send(b"x"), lambda: p.commit(0), lambda: p.room(16),
                 p.pad, lambda: p.need(1), lambda: p.await_head(0), p.moved, c.take, lambda: c.give(True),
                 lambda: c.await_tail(0), c.moved]
        for call in calls:
            with self.assertRaises(ValueError):
                call()
        p.abort()
        p.drop_views()
        c.drop_views()
        q = _native.Producer.__new__(_native.Producer)  # never initialised
        with self.assertRaises(ValueError):
            q.reserve(1)

    def test_arguments(self):
        p = self.end(_native.Producer)
        self.assertIsNone(p.reserve(-1))
        self.assertIsNone(p.reserve(self.CAP - 15))
        self.assertIsNone(p.reserve("1"))
        self.assertIsNone(p.reserve(1 << 70))
        for bad in (-1, 1 << 70, self.CAP - 15, "x"):
            with self.assertRaises((ValueError, TypeError, OverflowError)):
                p.need(bad)
        with self.assertRaises(ValueError):
            p.room(self.CAP + 16)
        with self.assertRaises(ValueError):
            p.commit(0)  # no reservation
        v = p.reserve(10)
        for bad in (11, -1, 1 << 70, "1", 1.0):
            with self.assertRaises(ValueError):
                p.commit(bad)
        p.commit(10)
        with self.assertRaises(ValueError):
            v[0]  # released by commit
        for nap in (-1, 3601, float("nan")):
            with self.assertRaises(ValueError):
                p.await_head(nap)
        self.assertFalse(p.send(object()))  # not a buffer: ring.py says why
        self.assertFalse(p.send(memoryview(b"abcd")[::2]))  # not contiguous
        self.assertEqual(p.need(self.CAP - 16), -(self.CAP - 32))  # padding alone first
        self.assertEqual(p.need(0), 16)
        q = self.end(_native.Producer, tail=256 + 32, head=128)
        with self.assertRaises(ValueError):
            q.pad()  # 224 bytes to the end, 96 free
        self.assertEqual(q.need(220), -224)  # 240 bytes: not before the end, nor with the padding
        with self.assertRaises(Corrupt):
            q.room(224)  # the shared head, 0, is more than a lap behind tail
        self.assertEqual(q.tail, 256 + 32)  # nothing published

    def test_fuzz(self):
        # Random words anywhere in the header and buffer between random calls
        # of both ends, which share the bytearray: only Corrupt, EOFError and
        # the documented None/False/ValueError answers may come out, and
        # views never reach past the buffer.
        rnd = random.Random(int(os.environ.get("SHMMAP_FUZZ_SEED", "2")))
        seen = set()
        for round_ in range(300):
            cap = rnd.choice((64, 128, 256))
            buf = bytearray(H + cap + rnd.choice((0, 16, 4096)))
            mv = memoryview(buf)
            ro = mv.toreadonly()
            p = _native.Producer(buf, mv, cap, 0, 0, Corrupt)
            c = _native.Consumer(buf, ro, cap, 0, 0, Corrupt)
            for step in range(60):
                for _ in range(rnd.randint(0, 2)):
                    off = rnd.choice((28, 128, 132, 256, 260, H + rnd.randrange(0, cap, 4)))
                    v = rnd.choice((0, 4, 5, 16, 0xFFFFFFF0, rnd.getrandbits(32), rnd.randrange(0, 4 * cap, 16) | rnd.choice((0, 4, 5))))
                    struct.pack_into("=I", buf, off, v)
                op = rnd.randrange(6)
                try:
                    if op == 0:
                        r = p.send(bytes(rnd.randint(0, cap)))
                    elif op == 1:
                        r = p.reserve(rnd.randint(0, cap))
                        if r is not None:
                            self.assertLessEqual(len(r), cap - 16)
                            r[:] = b"\x01" * len(r)
                            p.commit(rnd.randint(0, len(r)))
                    elif op == 2:
                        r = c.take()
                        if r is not None:
                            self.assertLessEqual(len(r), cap - 16)
                            bytes(r)
                    elif op == 3:
                        r = c.give(False)
                    elif op == 4:
                        r = c.await_tail(0)
                    else:
                        r = p.room(rnd.randrange(0, cap + 1, 16)) and p.need(rnd.randint(0, cap - 16))
                    seen.add("ok")
                except (Corrupt, EOFError) as e:
                    seen.add(type(e).__name__)
            for e in (p, c):
                e.drop_views()
                e.release()
            ro.release()
            mv.release()
            buf.append(0)  # every view released, the buffer free
        self.assertEqual(seen, {"ok", "Corrupt", "EOFError"})


if __name__ == "__main__":
    unittest.main()
