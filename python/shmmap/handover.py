"""Handing a segment's descriptor to another process over a Unix domain
socket, as Go's shmmap.SendSegment and ReceiveSegment do: one message of
one byte (0, ignored on receipt) carrying one descriptor (SCM_RIGHTS).
Python's socket.send_fds(sock, [b"\\0"], [fd]) and C's sendmsg(2) send the
same message.

    shmmap.send_segment(sock, seg)          # a Segment, or a descriptor
    fd = shmmap.receive_segment(sock)       # the caller's: close it
    try:
        seg = shmmap.map_fd(fd, require_sealed=True)
    finally:
        os.close(fd)

A receiver that does not trust the sender maps with require_sealed=True:
a sender that keeps an unsealed segment can shrink it at any moment, and
an access past the new end kills the receiver with SIGBUS.
"""

import array
import errno
import os
import select
import socket

from . import _linux
from .errors import BadMessage
from .segment import Segment

__all__ = ["send_segment", "receive_segment"]

# How many descriptors receive_segment has room for, beside the control
# messages that the receiver's socket options add: the sender's credentials
# (SO_PASSCRED) and its pidfd (SO_PASSPIDFD, Linux 6.5), which the kernel
# installs only if it fits. The kernel installs no more descriptors than
# fit and drops the rest (MSG_CTRUNC). As Go's ControlSpace.
_ROOM_FDS = 12
_SIZEOF_UCRED = 12
_CONTROL_SPACE = (socket.CMSG_SPACE(_SIZEOF_UCRED) + socket.CMSG_SPACE(4)
                  + socket.CMSG_SPACE(4 * _ROOM_FDS))
_SCM_PIDFD = getattr(socket, "SCM_PIDFD", 0x04)
_MSG_CMSG_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0x40000000)


def send_segment(sock, seg):
    """Send seg, a Segment or the descriptor of a segment (an int, or an
    object with fileno()), over the connected Unix domain socket sock, for
    the process at the other end to receive with receive_segment, Go's
    ReceiveSegment, or recvmsg(2). The receiver gets a descriptor of its
    own for the same segment: seg stays the caller's, and may be closed as
    soon as send_segment returns. It waits until the socket takes the
    message, as long as sock's timeout allows (socket.timeout, a
    TimeoutError, after that).

    seg must be a segment, as for map_fd: anything else (a pipe, a socket,
    a regular file on disk) is NotSegment, a closed Segment Closed. The
    socket's errors are its own: BrokenPipeError once the other end is
    closed, OSError for a closed socket."""
    if isinstance(seg, Segment):
        # A duplicate taken under the Segment's lock, so that no close in
        # another thread can close the descriptor, and another file take
        # its number, before it is sent; sent outside the lock, so that a
        # send that waits on a full socket holds up no close, buf or array.
        with seg._lock:
            seg._check("sendmsg")
            fd = os.dup(seg._fd)
        try:
            _send(sock, fd)
        finally:
            os.close(fd)
        return
    fd = seg if isinstance(seg, int) else seg.fileno()
    _send(sock, fd)


def _send(sock, fd):
    _linux.stat_file(fd, "sendmsg", _linux.fd_name(fd))
    sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def receive_segment(sock):
    """Receive the descriptor of a segment over the Unix domain socket
    sock, as send_segment, Go's SendSegment, or C's sendmsg(2) sends it:
    one message of one byte carrying one descriptor. It waits for the
    message as long as sock's timeout allows (socket.timeout after that;
    BlockingIOError on a non-blocking socket with nothing to read).

    Returns the descriptor, an int, which is the caller's to map with
    map_fd and to close (os.close); it is close-on-exec from the moment it
    arrives (MSG_CMSG_CLOEXEC).

    Raises EOFError once the other end has closed the connection (a
    stream socket, or a SOCK_SEQPACKET one shut down for writing).
    A message that carries no descriptor, several, or more than
    receive_segment has room for (a dozen), and an empty message, are
    BadMessage; a descriptor that is not of a segment (a pipe, socket,
    directory, device, a regular file on disk) is NotSegment. Either way
    every descriptor that came with the message is closed first, so none
    leaks. Credentials (SO_PASSCRED) or a pidfd (SO_PASSPIDFD) that the
    socket asks for do not stand in the way; the pidfd is closed.

    To learn whether the descriptor is of a segment, receive_segment asks
    its filesystem (fstat, fstatfs), which for a file on FUSE or NFS that
    a hostile sender chose can wait on the server, beyond sock's timeout.
    """
    fds = []
    try:
        data, anc, flags, _ = sock.recvmsg(1, _CONTROL_SPACE, _MSG_CMSG_CLOEXEC)
        for level, typ, cdata in anc:
            if level != socket.SOL_SOCKET or typ not in (socket.SCM_RIGHTS, _SCM_PIDFD):
                continue
            got = array.array("i")
            got.frombytes(cdata[:len(cdata) - len(cdata) % got.itemsize])
            if typ == socket.SCM_RIGHTS:
                fds.extend(got)
            else:
                for fd in got:
                    os.close(fd)
        truncated = bool(flags & socket.MSG_CTRUNC)
        if truncated or len(fds) > 1:
            raise BadMessage("recvmsg: message does not carry exactly one file: it carried %d "
                             "descriptors (cut short: %s)" % (len(fds), truncated))
        if not fds:
            if not data and _end_of_stream(sock):
                raise EOFError("recvmsg: the other end closed the connection")
            if not data:
                raise BadMessage("recvmsg: message does not carry exactly one file: an empty message")
            raise BadMessage("recvmsg: message does not carry exactly one file: %d byte of data "
                             "without a descriptor" % len(data))
        fd = fds[0]
        _linux.stat_file(fd, "recvmsg", _linux.fd_name(fd))
        fds = []
        return fd
    finally:
        for fd in fds:
            os.close(fd)


def _end_of_stream(sock):
    """Whether reading nothing, without a descriptor, from sock is the end
    of the connection rather than an empty message (Go's EndOfStream). On
    a stream socket it is. A SOCK_SEQPACKET socket carries empty messages,
    and also reads nothing once the other end has closed or shut down
    writing: there it is the end once the reading side is shut down
    (POLLRDHUP). A datagram socket has no end."""
    if sock.type == socket.SOCK_STREAM:
        return True
    p = select.poll()
    p.register(sock, getattr(select, "POLLRDHUP", 0x2000))
    try:
        ready = p.poll(0)
    except OSError as e:
        if e.errno != errno.EINTR:
            return False
        ready = []
    return any(ev & (getattr(select, "POLLRDHUP", 0x2000) | select.POLLHUP) for _, ev in ready)
