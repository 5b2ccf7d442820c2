"""Segments by key: create, attach, close, unlink, and what they refuse."""

import errno
import fcntl
import gc
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import unittest
import warnings
from unittest import mock

import shmmap
from shmmap import _keys, _linux

from ._segtest import SHM, SegTestCase, Victims, exists, mapping_of

try:
    import numpy as np
except ImportError:  # the tests that need it say so
    np = None


class Timeout(Exception):
    pass


def within(case, seconds):
    """Make the calls that follow fail the test with Timeout, rather than
    hang it, if they take more than seconds (SIGALRM; the main thread)."""
    def alarm(signum, frame):
        raise Timeout("took more than %s s" % seconds)
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)

    def restore():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    case.addCleanup(restore)


class TestCreateAttach(SegTestCase):

    def create(self, size):
        seg = shmmap.create(size)
        self.made(seg.key)
        self.addCleanup(seg.close)
        return seg

    def attach(self, key, size=0, readonly=False):
        seg = shmmap.attach(key, size, readonly=readonly)
        self.addCleanup(seg.close)
        return seg

    def test_create(self):
        for size in (1, 4095, 4096, 10000, 1 << 20):
            seg = self.create(size)
            self.assertTrue(_keys.is_create_key(seg.key), seg.key)
            self.assertEqual(len(seg.key), 30)
            self.assertEqual((seg.size, len(seg.buf), seg.readonly, seg.sealed), (size, size, False, False))
            st = os.stat(SHM + seg.key)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
            self.assertEqual(st.st_size, size)
            self.assertGreaterEqual(st.st_blocks * 512, size, "fallocate reserved the memory")
            self.assertEqual(seg.buf.tobytes(), bytes(size))
            self.assertFalse(os.get_inheritable(seg.fileno()))
            seg.close()
            self.assertFalse(exists(seg.key), "the creator's close removes the name")

    def test_attach(self):
        seg = self.create(10000)
        seg.buf[:5] = b"hello"
        for key in (seg.key, seg.key[1:]):
            other = self.attach(key)
            self.assertEqual((other.key, other.size, other.readonly), (seg.key, 10000, False))
            self.assertEqual(bytes(other.buf[:5]), b"hello")
            other.buf[9999] = 7
            self.assertEqual(seg.buf[9999], 7)
        part = self.attach(seg.key, 100)
        self.assertEqual(part.size, 100)
        part.close()
        self.assertTrue(exists(seg.key), "an attacher's close leaves the name")

    def test_context_manager(self):
        with shmmap.create(4096) as seg:
            self.made(seg.key)
            with shmmap.attach(seg.key) as other:
                other.buf[0] = 1
            self.assertTrue(other.closed)
            self.assertTrue(exists(seg.key))
        self.assertTrue(seg.closed)
        self.assertFalse(exists(seg.key))

    def test_creator_lock(self):
        """The creator holds Go's creator lock while it lives: Go's List
        says CreatorAlive, and Sweep would leave the segment alone."""
        seg = self.create(4096)
        fd = _linux.open_name(seg.key, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        self.assertEqual(_linux.creator_holds(fd), (True, True))
        # On the whole file, as Go's: a probe of its last byte alone sees it.
        probe = struct.pack(_linux._FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 4095, 1, 0)
        got = fcntl.fcntl(fd, _linux.F_OFD_GETLK, probe)
        self.assertNotEqual(struct.unpack(_linux._FLOCK, got)[0], fcntl.F_UNLCK)
        other = self.attach(seg.key)
        self.assertEqual(_linux.creator_holds(other.fileno()), (True, True))
        other.close()
        seg.close()
        self.assertEqual(_linux.creator_holds(fd), (False, True), "the lock goes with close")

    def test_named_fallback(self):
        """Where /dev/shm has no O_TMPFILE, create names the file first,
        with mode 0 until it is locked and sized, and still holds the lock."""
        with mock.patch.object(_linux, "no_tmpfile", True):
            seg = self.create(8192)
        self.assertEqual(stat.S_IMODE(os.stat(SHM + seg.key).st_mode), 0o600)
        fd = _linux.open_name(seg.key, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        self.assertEqual(_linux.creator_holds(fd), (True, True))
        seg.close()
        self.assertFalse(exists(seg.key))

    def test_named_fallback_taken(self):
        """Named from the start, a key that someone has is passed over for
        another fresh one."""
        taken = self.own_name("taken")
        fd = os.open(SHM + taken, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.close(fd)
        keys = iter([taken, "/shmmap_" + "T" * 22])
        self.made("/shmmap_" + "T" * 22)
        with mock.patch.object(_linux, "no_tmpfile", True), \
                mock.patch("shmmap.segment.new_key", lambda: next(keys)):
            seg = self.create(4096)
        self.assertEqual(seg.key, "/shmmap_" + "T" * 22)
        seg.close()

    def test_unlink(self):
        seg = self.create(4096)
        other = self.attach(seg.key)
        shmmap.unlink(seg.key)
        self.assertFalse(exists(seg.key))
        other.buf[0] = 9  # mappings stay valid
        self.assertEqual(seg.buf[0], 9)
        with self.assertRaises(FileNotFoundError) as cm:
            shmmap.unlink(seg.key)
        self.assertEqual(cm.exception.filename, seg.key)
        with self.assertRaises(FileNotFoundError):
            shmmap.attach(seg.key)
        # A later file under the same name is not the creator's to remove.
        later = os.open(SHM + seg.key, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.close(later)
        seg.close()
        self.assertTrue(exists(seg.key), "the creator's close removed a later file of its name")
        os.unlink(SHM + seg.key)

    def test_forked_child_is_not_the_creator(self):
        seg = self.create(4096)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                seg.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertTrue(exists(seg.key), "a forked child's close removed the creator's name")
        seg.close()
        self.assertFalse(exists(seg.key))

    def test_segment_unlink(self):
        seg = self.create(4096)
        other = self.attach(seg.key)
        other.unlink()
        self.assertFalse(exists(seg.key))
        seg.close()  # nothing to remove: no error
        other.close()
        with self.assertRaises(shmmap.Closed):
            other.unlink()

    def test_close(self):
        """close is idempotent; afterwards buf, array and fileno raise
        Closed; views taken before stay valid, and the mapping goes with
        the last of them."""
        seg = self.create(8192)
        view = seg.buf[100:200]
        seg.buf[100] = 42
        seg.close()
        seg.close()
        self.assertTrue(seg.closed)
        for call in (lambda: seg.buf, lambda: seg.fileno(), lambda: seg.array("u1")):
            with self.assertRaises(shmmap.Closed):
                call()
        self.assertIsInstance(shmmap.Closed("x"), ValueError)
        self.assertEqual(view[0], 42)  # still mapped: no fault
        view[1] = 1
        address = _address(view)
        self.assertIsNotNone(mapping_of(address))
        view.release()
        del view
        gc.collect()
        self.assertIsNone(mapping_of(address), "the mapping outlived its last view")

    @unittest.skipIf(np is None, "needs NumPy (Debian: python3-numpy)")
    def test_close_under_arrays(self):
        """NumPy arrays hold a reference but no buffer export: close must
        not unmap under them (mmap.close would, and a read would fault)."""
        seg = self.create(8192)
        a = seg.array("f8")
        b = np.frombuffer(seg.buf, dtype=np.float64)
        a[:] = 2.5
        seg.close()
        self.assertEqual(a.sum(), 2.5 * 1024)
        self.assertEqual(b.sum(), 2.5 * 1024)
        address = a.__array_interface__["data"][0]
        del a, b
        gc.collect()
        self.assertIsNone(mapping_of(address))

    def test_readonly(self):
        seg = self.create(4096)
        seg.buf[0] = 5
        ro = self.attach(seg.key, readonly=True)
        self.assertTrue(ro.readonly)
        self.assertTrue(ro.buf.readonly)
        self.assertEqual(ro.buf[0], 5)
        with self.assertRaises(TypeError):
            ro.buf[0] = 1
        self.assertIn(" r--s ", mapping_of(_address(ro.buf)))
        if np is not None:
            a = ro.array("u1")
            self.assertFalse(a.flags.writeable)
            with self.assertRaises(ValueError):
                a[0] = 1
            del a
        self.assertEqual(seg.buf[0], 5)

    def test_bad_sizes(self):
        for size in (0, -1, shmmap.MAX_SIZE + 1, -(1 << 70)):
            with self.assertRaises(shmmap.InvalidSize, msg=size):
                shmmap.create(size)
        for size in (1.0, "1", None):
            with self.assertRaises(TypeError, msg=size):
                shmmap.create(size)
        seg = self.create(4096)
        for size, why in ((-1, "want 0 <= size"), (4097, "the segment has 4096 bytes"),
                          (1 << 40, "the segment has 4096 bytes"), (shmmap.MAX_SIZE + 1, "want 0 <= size")):
            with self.assertRaisesRegex(shmmap.InvalidSize, why, msg=size) as cm:
                shmmap.attach(seg.key, size)
            self.assertIsInstance(cm.exception, ValueError)
        empty = self.own_name("empty")
        os.close(os.open(SHM + empty, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        with self.assertRaises(shmmap.InvalidSize):
            shmmap.attach(empty)

    def test_shrunk_before_mmap(self):
        """A segment that shrinks between fstat and mmap is InvalidSize,
        not a mapping past its end."""
        seg = self.create(8192)
        real = _linux.map_fd

        def shrink_first(fd, size, writable, path):
            os.ftruncate(seg.fileno(), 4096)
            return real(fd, size, writable, path)
        with mock.patch.object(_linux, "map_fd", shrink_first), self.assertRaises(shmmap.InvalidSize):
            shmmap.attach(seg.key)

    def test_bad_keys(self):
        v = Victims(self)
        keys = v.keys + ["", "/", ".", "..", "/.", "/..", "a/b", "/a/b", "a\0b", "/" + "x" * 256,
                         "\ud800", "//x"]
        for key in keys:
            for call in (lambda: shmmap.attach(key), lambda: shmmap.attach(key, readonly=True),
                         lambda: shmmap.unlink(key)):
                with self.assertRaises(shmmap.InvalidKey, msg=repr(key)) as cm:
                    call()
                self.assertIsInstance(cm.exception, ValueError)
        v.check_intact(self)
        # The longest name there is, is a key.
        longest = "/" + "y" * 255
        with self.assertRaises(FileNotFoundError):
            shmmap.attach(longest)
        for key in (b"/x", 1, None):
            with self.assertRaises(TypeError):
                shmmap.attach(key)

    def test_not_segments(self):
        """A FIFO, directory, symlink or socket planted under a name is
        NotSegment, at once: the open never blocks on a FIFO."""
        fifo = self.own_name("fifo")
        os.mkfifo(SHM + fifo, 0o600)
        directory = self.own_name("dir")
        os.mkdir(SHM + directory, 0o700)
        target = os.path.join(self.temp_dir(), "target")
        with open(target, "wb") as f:
            f.write(b"x" * 4096)
        link = self.own_name("link")
        os.symlink(target, SHM + link)
        sock_name = self.own_name("sock")
        s = socket.socket(socket.AF_UNIX)
        self.addCleanup(s.close)
        s.bind(SHM + sock_name)
        within(self, 5)
        for key in (fifo, directory, link, sock_name):
            for readonly in (True, False):
                with self.assertRaises(shmmap.NotSegment, msg=(key, readonly)) as cm:
                    shmmap.attach(key, readonly=readonly)
                self.assertIsInstance(cm.exception, OSError)
                self.assertEqual(cm.exception.filename, key)
                # The message says why, not OSError's "[Errno None] None".
                self.assertIn("not a shared memory segment", str(cm.exception))
                self.assertNotIn("None", str(cm.exception))
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"x" * 4096)

    def test_create_failure_leaves_nothing(self):
        """A failure at each step leaves no name, fd or mapping."""
        key = "/shmmap_" + "F" * 22
        self.made(key)
        fail = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        for no_tmpfile in (False, True):
            for target in ("os.posix_fallocate", "mmap.mmap", "fcntl.fcntl", "os.fchmod"):
                with mock.patch.object(_linux, "no_tmpfile", no_tmpfile), \
                        mock.patch.object(_keys, "new_key", lambda: key), \
                        mock.patch("shmmap.segment.new_key", lambda: key), \
                        mock.patch(target, side_effect=fail):
                    with self.assertRaises(OSError, msg=target) as cm:
                        shmmap.create(4096)
                self.assertEqual(cm.exception.errno, errno.ENOSPC, target)
                self.assertEqual(cm.exception.filename, key, target)
                self.assertFalse(exists(key), target)

    def test_create_interrupted_leaves_nothing(self):
        """An exception from a signal handler (Ctrl-C) after the segment got
        its name, before create returns, leaves no name, fd or mapping."""
        key = "/shmmap_" + "I" * 22
        self.made(key)
        from shmmap import segment

        def interrupt(*args):
            raise KeyboardInterrupt
        for no_tmpfile in (False, True):
            with mock.patch.object(_linux, "no_tmpfile", no_tmpfile), \
                    mock.patch.object(_keys, "new_key", lambda: key), \
                    mock.patch("shmmap.segment.new_key", lambda: key), \
                    mock.patch.object(segment._creators, "add", side_effect=interrupt):
                with self.assertRaises(KeyboardInterrupt):
                    shmmap.create(4096)
            self.assertFalse(exists(key), no_tmpfile)

    def test_buf_views_independent(self):
        """Each .buf is a view of its own: one released (a with-block) leaves
        the others, and .buf, working."""
        with shmmap.create(4096) as seg:
            self.made(seg.key)
            keep = seg.buf
            with seg.buf as m:
                m[0] = 7
            self.assertEqual((keep[0], seg.buf[0]), (7, 7))
            del keep

    def test_full(self):
        """More than /dev/shm has free is ENOSPC at create, at once."""
        st = os.statvfs(SHM)
        if st.f_blocks == 0:
            self.skipTest("/dev/shm has no size")
        size = st.f_bavail * st.f_frsize + (2 << 30)
        if size > shmmap.MAX_SIZE:
            self.skipTest("/dev/shm is larger than a mapping can be")
        with self.assertRaises(OSError) as cm:
            shmmap.create(size)
        self.assertEqual(cm.exception.errno, errno.ENOSPC)

    def test_unclosed(self):
        """A Segment collected without close warns, closes its fd, and
        leaves a creator's name, which is then no one's (CreatorGone)."""
        seg = shmmap.create(4096)
        key = self.made(seg.key)
        self.addCleanup(lambda: exists(key) and os.unlink(SHM + key))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            del seg
            gc.collect()
        categories = [x.category for x in w]
        del w  # its warning's source is the Segment
        gc.collect()
        self.assertIn(ResourceWarning, categories)
        self.assertTrue(exists(key))
        fd = _linux.open_name(key, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        self.assertEqual(_linux.creator_holds(fd), (False, True))

    def test_no_resource_tracker(self):
        """attach in a process that then exits leaves the segment: nothing
        registers it with multiprocessing's resource tracker, which would
        remove it."""
        seg = self.create(4096)
        code = ("import shmmap, sys\n"
                "s = shmmap.attach(sys.argv[1])\n"
                "s.buf[0] = 1\n"
                "print('multiprocessing' in sys.modules)\n"
                "print(sorted(m for m in sys.modules if m in ('shmmap.ring', 'shmmap._native')))\n")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(shmmap.__file__)))
        out = subprocess.run([sys.executable, "-c", code, seg.key], env=env, capture_output=True,
                             text=True, timeout=60)
        # Nor does importing shmmap load the ring or its C extension.
        self.assertEqual((out.returncode, out.stdout, out.stderr), (0, "False\n[]\n", ""))
        self.assertTrue(exists(seg.key))
        self.assertEqual(seg.buf[0], 1)

    def test_no_numpy(self):
        seg = self.create(4096)
        with mock.patch.dict(sys.modules, {"numpy": None}):
            with self.assertRaisesRegex(ImportError, "needs NumPy"):
                seg.array("f8")


@unittest.skipIf(np is None, "needs NumPy (Debian: python3-numpy)")
class TestArray(SegTestCase):

    def test_shares_memory(self):
        seg = shmmap.create(1 << 20)
        self.made(seg.key)
        self.addCleanup(seg.close)
        other = shmmap.attach(seg.key)
        self.addCleanup(other.close)
        a = seg.array(np.float64)
        self.assertEqual((a.shape, a.dtype), ((1 << 17,), np.float64))
        self.assertTrue(np.shares_memory(a, np.frombuffer(seg.buf, np.uint8)))
        self.assertEqual(a.__array_interface__["data"][0], _address(seg.buf))
        self.assertIn(" rw-s ", mapping_of(a.__array_interface__["data"][0]))
        a[:] = np.arange(a.size) * 0.25
        b = other.array("f8")
        self.assertIn(SHM + seg.key, mapping_of(b.__array_interface__["data"][0]))
        self.assertTrue(np.array_equal(b, np.arange(b.size) * 0.25))
        b *= 2
        self.assertEqual(a[3], 1.5)
        del a, b

    def test_shapes_and_offsets(self):
        seg = shmmap.create(4096)
        self.made(seg.key)
        self.addCleanup(seg.close)
        self.assertEqual(seg.array("i4", (4, 8)).shape, (4, 8))
        self.assertEqual(seg.array("i4", 10, offset=4056).shape, (10,))
        self.assertEqual(seg.array("f8", offset=8).shape, (511,))
        self.assertEqual(seg.array("f8", offset=4).shape, (511,))  # unaligned, as NumPy allows
        self.assertEqual(seg.array("S3").shape, (1365,))  # whole items only
        self.assertEqual(seg.array("u1", offset=4096).shape, (0,))
        for shape, offset in ((1025, 0), ((2, 513), 0), (11, 4056), (None, 4097), (1, -1), ((-1, 2), 0)):
            with self.assertRaises(shmmap.InvalidSize, msg=(shape, offset)):
                seg.array("i4", shape, offset)
        with self.assertRaises(TypeError):
            seg.array(object)
        with self.assertRaises(TypeError):
            seg.array([("a", "i4"), ("b", "O")])


def _address(view):
    """The address of a memoryview's first byte."""
    if not view.readonly:
        import ctypes
        return ctypes.addressof(ctypes.c_char.from_buffer(view))
    if np is None:
        raise unittest.SkipTest("the address of a read-only view needs NumPy")
    return np.frombuffer(view, np.uint8).__array_interface__["data"][0]


if __name__ == "__main__":
    unittest.main()
