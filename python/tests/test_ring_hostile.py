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


if __name__ == "__main__":
    unittest.main()
