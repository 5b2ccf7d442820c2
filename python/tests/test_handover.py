"""send_segment and receive_segment: Go's message (one byte, one
descriptor), and every message that is not one refused without a leak."""

import array
import errno
import os
import socket
import unittest

import shmmap

from ._segtest import SegTestCase, held
from .test_segment import within


class TestHandover(SegTestCase):

    def pair(self, typ=socket.SOCK_STREAM):
        a, b = socket.socketpair(socket.AF_UNIX, typ)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        return a, b

    def anon(self, size):
        seg = shmmap.create_anonymous(size)
        self.addCleanup(seg.close)
        return seg

    def receive(self, sock):
        fd = shmmap.receive_segment(sock)
        self.addCleanup(os.close, fd)
        return fd

    def send_fds(self, sock, fds, data=b"\0"):
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else [])

    def test_send_waiting_holds_up_no_close(self):
        """A send_segment that waits on a full socket holds up no close of
        the Segment in another thread; the send completes after it."""
        import threading
        a, b = self.pair()
        a.setblocking(False)
        try:
            while True:  # fill the socket's buffer
                a.send(b"x" * 65536)
        except BlockingIOError:
            pass
        a.setblocking(True)
        seg = shmmap.create_anonymous(4096)
        sent = threading.Thread(target=shmmap.send_segment, args=(a, seg))
        sent.start()
        within(self, 10)
        import time
        time.sleep(0.1)  # the send waits on the full socket
        t0 = time.monotonic()
        seg.close()
        self.assertLess(time.monotonic() - t0, 1, "close waited for the send")
        b.setblocking(False)
        while sent.is_alive():  # drain, so that the send ends
            try:
                data, fds, _, _ = socket.recv_fds(b, 1 << 16, 4)
                for fd in fds:
                    os.close(fd)
            except BlockingIOError:
                time.sleep(0.01)
        sent.join()

    def test_round_trip(self):
        for typ in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET, socket.SOCK_DGRAM):
            a, b = self.pair(typ)
            seg = self.anon(8192)
            seg.buf[:5] = b"hello"
            shmmap.send_segment(a, seg)
            fd = self.receive(b)
            self.assertFalse(os.get_inheritable(fd), "close-on-exec from the start")
            self.assertEqual(os.readlink("/proc/self/fd/%d" % fd), "/memfd:shmmap (deleted)")
            got = shmmap.map_fd(fd, require_sealed=True)
            self.addCleanup(got.close)
            self.assertTrue(got.sealed)
            self.assertEqual(bytes(got.buf[:5]), b"hello")
            got.buf[5] = ord("!")
            self.assertEqual(bytes(seg.buf[:6]), b"hello!")
            # By descriptor, and by an object with fileno().
            shmmap.send_segment(a, seg.fileno())
            self.assertEqual(os.fstat(self.receive(b)).st_ino, os.fstat(fd).st_ino)

    def test_python_wire_format(self):
        """What socket.send_fds and recv_fds exchange, as Go's side does."""
        a, b = self.pair()
        seg = self.anon(4096)
        socket.send_fds(a, [b"\0"], [seg.fileno()])
        self.receive(b)
        shmmap.send_segment(a, seg)
        data, fds, _, _ = socket.recv_fds(b, 1, 1)
        for fd in fds:
            os.close(fd)
        self.assertEqual((data, len(fds)), (b"\0", 1))

    def test_bad_messages(self):
        """BadMessage for no descriptor, several, more than there is room
        for, and an empty message; every descriptor that came is closed."""
        seg = self.anon(4096)
        fd = seg.fileno()
        cases = [
            (socket.SOCK_STREAM, [], b"x"),
            (socket.SOCK_STREAM, [fd, fd], b"\0"),
            (socket.SOCK_STREAM, [fd] * 40, b"\0"),
            (socket.SOCK_SEQPACKET, [], b""),
            (socket.SOCK_DGRAM, [], b""),
            (socket.SOCK_SEQPACKET, [fd] * 3, b""),
        ]
        for typ, fds, data in cases:
            a, b = self.pair(typ)
            self.send_fds(a, fds, data)
            before = held()
            with self.assertRaises(shmmap.BadMessage, msg=(typ, len(fds), data)) as cm:
                shmmap.receive_segment(b)
            self.assertIsInstance(cm.exception, OSError)
            self.assertEqual(held(), before, (typ, len(fds), data))
        # The connection stays usable after a bad message.
        a, b = self.pair(socket.SOCK_SEQPACKET)
        self.send_fds(a, [], b"")
        shmmap.send_segment(a, seg)
        with self.assertRaises(shmmap.BadMessage):
            shmmap.receive_segment(b)
        self.receive(b)

    def test_not_segment_received(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        a, b = self.pair()
        self.send_fds(a, [r])
        before = held()
        with self.assertRaises(shmmap.NotSegment):
            shmmap.receive_segment(b)
        self.assertEqual(held(), before)

    def test_end_of_stream(self):
        for typ in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET):
            a, b = self.pair(typ)
            a.close()
            with self.assertRaises(EOFError, msg=typ):
                shmmap.receive_segment(b)

    def test_timeout(self):
        a, b = self.pair()
        b.settimeout(0.05)
        with self.assertRaises(TimeoutError):
            shmmap.receive_segment(b)
        b.setblocking(False)
        with self.assertRaises(BlockingIOError):
            shmmap.receive_segment(b)

    def test_credentials(self):
        """A receiver that asks for the sender's credentials (and pidfd,
        where the kernel has it) still gets the segment, and no pidfd
        leaks."""
        a, b = self.pair()
        b.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            b.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PASSPIDFD", 76), 1)
        except OSError:
            pass  # before Linux 6.5
        seg = self.anon(4096)
        shmmap.send_segment(a, seg)
        before = held()
        fd = shmmap.receive_segment(b)
        after = held()
        os.close(fd)
        self.assertEqual(after[0], before[0] + 1, "one fd more: the segment's, and no pidfd")

    def test_send_refused(self):
        a, b = self.pair()
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        with self.assertRaises(shmmap.NotSegment):
            shmmap.send_segment(a, r)
        with self.assertRaises(shmmap.NotSegment):
            shmmap.send_segment(a, a)
        seg = shmmap.create_anonymous(4096)
        seg.close()
        with self.assertRaises(shmmap.Closed):
            shmmap.send_segment(a, seg)
        seg = self.anon(4096)
        b.close()
        with self.assertRaises(BrokenPipeError):
            shmmap.send_segment(a, seg)
        a.close()
        with self.assertRaises(OSError) as cm:
            shmmap.send_segment(a, seg)
        self.assertEqual(cm.exception.errno, errno.EBADF)


if __name__ == "__main__":
    unittest.main()
