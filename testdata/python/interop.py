"""The Python side of interop_test.go, beside the README's worker.py, which
the test runs as the README gives it: multiprocessing.shared_memory and NumPy
making a segment for Go, and attaching to Go's as most code does.

    python3 interop.py create N            make a segment, wait, check Go's writes
    python3 interop.py attach-naive KEY    plain SharedMemory(name), then exit
    python3 interop.py recv-fd N           receive an anonymous segment on fd 3, double it
    python3 interop.py send-fd N           send a sealed memfd on fd 3, check Go's writes

recv-fd and send-fd find a connected Unix socket at fd 3 (Go's ExtraFiles)
and pass the segment's fd over it with socket.recv_fds and send_fds, one
byte of data with one fd, as shmmap.SendSegment and ReceiveSegment do.
"""
import errno
import fcntl
import mmap
import os
import socket
import sys

import numpy as np
from multiprocessing import shared_memory


def cmd_attach_naive(key):
    shm = shared_memory.SharedMemory(name=key.lstrip("/"))
    shm.close()


def cmd_create(n):
    n = int(n)
    shm = shared_memory.SharedMemory(create=True, size=n * 8)
    try:
        a = np.ndarray((n,), dtype=np.float64, buffer=shm.buf)
        a[:] = np.arange(n) + 0.5
        print(shm.name, flush=True)
        sys.stdin.read()  # until EOF: the Go process has negated every value
        want = -(np.arange(n) + 0.5)
        if not np.array_equal(a, want):
            bad = int(np.flatnonzero(a != want)[0])
            sys.exit(f"value {bad} is {a[bad]}, want {want[bad]}")
        del a
    finally:
        shm.close()
        shm.unlink()


def cmd_recv_fd(n):
    """Receives a segment of n float64s, prints their sum, doubles them in
    place, and prints what ftruncate of it to 0 does: EPERM on Linux, where
    Go's are sealed; EINVAL on macOS, where a size is set once."""
    n = int(n)
    sock = socket.socket(fileno=3)
    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    (fd,) = fds
    with mmap.mmap(fd, n * 8) as mm:  # MAP_SHARED, read-write
        a = np.ndarray((n,), dtype=np.float64, buffer=mm)
        print(a.sum())
        a *= 2
        del a
    try:
        os.ftruncate(fd, 0)
        print("ftruncate: ok")
    except OSError as e:
        print("ftruncate:", errno.errorcode[e.errno])
    os.close(fd)


def cmd_send_fd(n):
    """Makes a sealed memfd of n float64s (i + 0.5), sends it, waits for Go
    to hang up, and checks that Go negated every value."""
    n = int(n)
    sock = socket.socket(fileno=3)
    fd = os.memfd_create("python", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, n * 8)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    with mmap.mmap(fd, n * 8) as mm:
        a = np.ndarray((n,), dtype=np.float64, buffer=mm)
        a[:] = np.arange(n) + 0.5
        socket.send_fds(sock, [b"\0"], [fd])
        os.close(fd)  # Go has its own now
        if sock.recv(1) != b"":  # until Go has closed its end: done
            sys.exit("Go sent data")
        want = -(np.arange(n) + 0.5)
        if not np.array_equal(a, want):
            bad = int(np.flatnonzero(a != want)[0])
            sys.exit(f"value {bad} is {a[bad]}, want {want[bad]}")
        del a


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "attach-naive": cmd_attach_naive,
        "create": cmd_create,
        "recv-fd": cmd_recv_fd,
        "send-fd": cmd_send_fd,
    }[cmd](*args)
