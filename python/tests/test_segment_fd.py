"""Anonymous segments and segments by descriptor: create_anonymous and
map_fd, with Go's rules for seals and for what is a segment."""

import errno
import fcntl
import os
import socket
import stat
import unittest
from unittest import mock

import shmmap
from shmmap import _linux

from ._segtest import SHM, SegTestCase

SHRINK, GROW, SEAL = _linux.F_SEAL_SHRINK, _linux.F_SEAL_GROW, _linux.F_SEAL_SEAL


class TestAnonymous(SegTestCase):

    def anon(self, size, **kw):
        seg = shmmap.create_anonymous(size, **kw)
        self.addCleanup(seg.close)
        return seg

    def memfd(self, size, seals=0):
        """A memfd of the test's own, with seals."""
        fd = os.memfd_create("pytest", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        self.addCleanup(os.close, fd)
        os.ftruncate(fd, size)
        if seals:
            fcntl.fcntl(fd, _linux.F_ADD_SEALS, seals)
        return fd

    def map(self, fd, *args, **kw):
        seg = shmmap.map_fd(fd, *args, **kw)
        self.addCleanup(seg.close)
        return seg

    def test_create_anonymous(self):
        for size in (1, 4096, 100000):
            seg = self.anon(size)
            self.assertEqual((seg.key, seg.size, seg.sealed, seg.readonly), (None, size, True, False))
            self.assertEqual(seg.buf.tobytes(), bytes(size))
            fd = seg.fileno()
            self.assertFalse(os.get_inheritable(fd))
            self.assertEqual(os.readlink("/proc/self/fd/%d" % fd), "/memfd:shmmap (deleted)")
            seals = _linux.file_seals(fd)
            self.assertEqual(seals & (SHRINK | GROW | SEAL), SHRINK | GROW | SEAL, _linux.seal_names(seals))
            st = os.fstat(fd)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
            self.assertGreaterEqual(st.st_blocks * 512, size)
            for n in (0, size - 1, size + 4096):
                if n >= 0:
                    with self.assertRaises(PermissionError):
                        os.ftruncate(fd, n)
            with self.assertRaises(shmmap.InvalidKey):
                seg.unlink()
            seg.close()

    def test_create_bad_sizes(self):
        for size in (0, -1, shmmap.MAX_SIZE + 1):
            with self.assertRaises(shmmap.InvalidSize):
                shmmap.create_anonymous(size)

    def test_failure_leaves_nothing(self):
        fail = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        for target in ("os.posix_fallocate", "mmap.mmap", "os.fchmod"):
            with mock.patch(target, side_effect=fail), self.assertRaises(OSError, msg=target) as cm:
                shmmap.create_anonymous(4096)
            self.assertEqual(cm.exception.errno, errno.ENOSPC, target)
            self.assertEqual(cm.exception.filename, "memfd:shmmap", target)

    def test_without_memfd(self):
        """Where memfd_create does not exist: an unnamed file in /dev/shm,
        not sealed; NotSealed with require_sealed."""
        nosys = OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
        with mock.patch("os.memfd_create", side_effect=nosys):
            seg = self.anon(8192)
            self.assertFalse(seg.sealed)
            self.assertEqual(seg.name, SHM + " (O_TMPFILE)")
            self.assertTrue(os.readlink("/proc/self/fd/%d" % seg.fileno()).startswith(SHM + "/#"))
            with self.assertRaises(shmmap.NotSealed):
                shmmap.create_anonymous(8192, require_sealed=True)

    def test_map_fd(self):
        seg = self.anon(8192)
        seg.buf[:3] = b"abc"
        other = self.map(seg.fileno())
        self.assertEqual((other.size, other.sealed, other.key), (8192, True, None))
        self.assertEqual(bytes(other.buf[:3]), b"abc")
        other.buf[3] = ord("d")
        self.assertEqual(bytes(seg.buf[:4]), b"abcd")
        self.assertNotEqual(other.fileno(), seg.fileno(), "map_fd keeps a descriptor of its own")
        self.assertFalse(os.get_inheritable(other.fileno()))
        self.assertEqual(self.map(seg.fileno(), 100).size, 100)
        ro = self.map(seg.fileno(), readonly=True, require_sealed=True)
        with self.assertRaises(TypeError):
            ro.buf[0] = 0
        # Any object with fileno(); the caller's fd may go at once.
        dup = os.dup(seg.fileno())
        with open(dup, "rb", closefd=True, buffering=0) as f:
            mapped = self.map(f)
        self.assertEqual(bytes(mapped.buf[:4]), b"abcd")

    def test_require_sealed(self):
        """Go's RequireSealed rule: F_SEAL_SHRINK, and F_SEAL_GROW too for a
        read-write mapping; the seals decide Segment.sealed."""
        cases = [  # seals, readonly, accepted, sealed
            (0, True, False, False),
            (0, False, False, False),
            (GROW, True, False, False),
            (SHRINK, True, True, True),
            (SHRINK, False, False, True),
            (SHRINK | GROW, False, True, True),
            (SHRINK | GROW | SEAL, False, True, True),
        ]
        for seals, readonly, accepted, sealed in cases:
            fd = self.memfd(4096, seals)
            what = (_linux.seal_names(seals), readonly)
            if accepted:
                seg = self.map(fd, readonly=readonly, require_sealed=True)
                self.assertTrue(seg.sealed, what)
            else:
                with self.assertRaises(shmmap.NotSealed, msg=what) as cm:
                    shmmap.map_fd(fd, readonly=readonly, require_sealed=True)
                self.assertIsInstance(cm.exception, OSError)
            self.assertEqual(self.map(fd, readonly=readonly).sealed, sealed, what)

    def test_require_sealed_hugetlbfs(self):
        """On hugetlbfs a hole punched into the file gives its huge page
        back, so Go's rule there wants a write seal too; a memfd seen as on
        hugetlbfs (fstatfs patched) stands in for a huge page pool."""
        WRITE, FUTURE = _linux.F_SEAL_WRITE, _linux.F_SEAL_FUTURE_WRITE
        cases = [  # seals, readonly, accepted
            (SHRINK, True, False),
            (SHRINK | GROW, False, False),
            (SHRINK | FUTURE, True, True),
            (SHRINK | WRITE, True, True),
            (SHRINK | GROW | FUTURE, True, True),
            (FUTURE, True, False),
        ]
        huge = mock.patch.object(_linux, "fs_type", return_value=_linux.HUGETLBFS_MAGIC)
        for seals, readonly, accepted in cases:
            fd = self.memfd(4096, seals)
            what = (_linux.seal_names(seals), readonly)
            with huge:
                if accepted:
                    self.assertTrue(self.map(fd, readonly=True, require_sealed=True).sealed, what)
                else:
                    with self.assertRaises(shmmap.NotSealed, msg=what):
                        shmmap.map_fd(fd, readonly=readonly, require_sealed=True)
                self.assertEqual(self.map(fd, readonly=True).sealed, accepted, what)
            # The same seals on tmpfs: the write seal is not asked for.
            self.assertEqual(self.map(fd, readonly=True).sealed, bool(seals & SHRINK), what)

    def test_fallocate_in_pieces(self):
        """Memory is reserved in pieces of _BIG bytes, as Go's InitSegment
        reserves it (here _BIG is 8 KiB instead of 1 GiB)."""
        calls = []
        real = os.posix_fallocate

        def record(fd, off, n):
            calls.append((off, n))
            return real(fd, off, n)

        with mock.patch.object(_linux, "_BIG", 8192), mock.patch("os.posix_fallocate", record):
            seg = self.anon(3 * 8192 + 100)
        self.assertEqual(calls, [(0, 8192), (8192, 8192), (16384, 8192), (24576, 100)])
        self.assertEqual(seg.size, 3 * 8192 + 100)
        self.assertEqual(os.fstat(seg.fileno()).st_size, 3 * 8192 + 100)

    def test_more_than_free(self):
        """Above _BIG bytes a size that the filesystem's free space (or, for
        a memfd's hidden tmpfs, memory and swap) cannot hold fails before
        any fallocate, and leaves nothing."""
        calls = []

        class Full:
            f_blocks, f_bavail, f_frsize = 1000, 2, 4096

        class Unbounded:
            f_blocks, f_bavail, f_frsize = 0, 0, 4096

        for statvfs, memory, err in [(Full, None, errno.ENOSPC), (Unbounded, 20000, errno.ENOMEM)]:
            patches = [mock.patch.object(_linux, "_BIG", 8192),
                       mock.patch("os.posix_fallocate", lambda fd, off, n: calls.append(n)),
                       mock.patch("os.fstatvfs", lambda fd: statvfs())]
            if memory is not None:
                patches.append(mock.patch.object(_linux, "_memory_and_swap", return_value=memory))
            for p in patches:
                p.start()
            try:
                with self.assertRaises(OSError) as cm:
                    shmmap.create_anonymous(3 * 8192)
                with self.assertRaises(OSError) as cm2:
                    seg = shmmap.create(3 * 8192)
                    seg.unlink()  # the test failed; leave nothing still
                    seg.close()
            finally:
                for p in reversed(patches):
                    p.stop()
            self.assertEqual((cm.exception.errno, cm2.exception.errno), (err, err))
            self.assertEqual(calls, [])
            # Sizes at most _BIG go straight to fallocate, which decides.
            with mock.patch.object(_linux, "_BIG", 8192), mock.patch("os.fstatvfs", lambda fd: statvfs()):
                self.anon(8192)

    def test_named_segment_never_sealed(self):
        seg = shmmap.create(4096)
        self.made(seg.key)
        self.addCleanup(seg.close)
        self.assertFalse(self.map(seg.fileno()).sealed)
        with self.assertRaises(shmmap.NotSealed):
            shmmap.map_fd(seg.fileno(), readonly=True, require_sealed=True)

    def test_not_segments(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        s1, s2 = socket.socketpair()
        self.addCleanup(s1.close)
        self.addCleanup(s2.close)
        d = os.open(self.temp_dir(), os.O_RDONLY | os.O_DIRECTORY)
        self.addCleanup(os.close, d)
        devnull = os.open("/dev/null", os.O_RDWR)
        self.addCleanup(os.close, devnull)
        bad = {"pipe": r, "socket": s1.fileno(), "directory": d, "device": devnull}
        disk = os.open(__file__, os.O_RDONLY)  # a regular file on disk, if the source tree is
        self.addCleanup(os.close, disk)
        if _linux.fs_type(disk) not in (_linux.TMPFS_MAGIC, _linux.HUGETLBFS_MAGIC):
            bad["regular file on disk"] = disk
        for what, fd in bad.items():
            for readonly in (True, False):
                with self.assertRaises(shmmap.NotSegment, msg=what):
                    shmmap.map_fd(fd, readonly=readonly)

    def test_permissions(self):
        seg = self.anon(4096)
        path = "/proc/self/fd/%d" % seg.fileno()
        ro = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, ro)
        self.assertEqual(self.map(ro, readonly=True).size, 4096)
        with self.assertRaises(PermissionError):
            shmmap.map_fd(ro)
        opath = os.open(path, os.O_PATH)
        self.addCleanup(os.close, opath)
        for readonly in (True, False):
            with self.assertRaises(PermissionError):
                shmmap.map_fd(opath, readonly=readonly)
        fd = self.memfd(4096, _linux.F_SEAL_WRITE)
        self.assertEqual(self.map(fd, readonly=True).size, 4096)
        with self.assertRaises(PermissionError):
            shmmap.map_fd(fd)

    def test_bad_sizes(self):
        seg = self.anon(4096)
        for size in (-1, 4097, shmmap.MAX_SIZE + 1):
            with self.assertRaises(shmmap.InvalidSize, msg=size):
                shmmap.map_fd(seg.fileno(), size)
        empty = self.memfd(0)
        with self.assertRaises(shmmap.InvalidSize):
            shmmap.map_fd(empty)
        with self.assertRaises(TypeError):
            shmmap.map_fd(seg.fileno(), 1.5)
        with self.assertRaises(OSError) as cm:
            shmmap.map_fd(987654)
        self.assertEqual(cm.exception.errno, errno.EBADF)


if __name__ == "__main__":
    unittest.main()
