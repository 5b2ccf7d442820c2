"""The Python side of python_linux_test.go: the package shmmap (python/ in
this repository, on PYTHONPATH) against Go's, by key and by descriptor.

    python3 shmmap_peer.py view KEY N         attach, sum N float64s as an ndarray, double them
    python3 shmmap_peer.py create N           create, fill, print the key, check Go's writes
    python3 shmmap_peer.py hold N             create, print the key, wait to be killed
    python3 shmmap_peer.py recv-fd N          receive on fd 3 with require_sealed, double
    python3 shmmap_peer.py recv-unsealed N    receive on fd 3: require_sealed must refuse it
    python3 shmmap_peer.py send-fd N          create_anonymous, fill, send on fd 3, check
    python3 shmmap_peer.py send-unsealed N    send an unsealed memfd on fd 3

Each prints what the test checks and exits 0, or exits with the reason.
"""
import os
import socket
import sys

import numpy as np

import shmmap


def in_mapping(a, seg):
    """Fail unless ndarray a is a view of seg's mapping, not a copy: NumPy
    says it shares memory with seg.buf, and its data pointer lies in a
    shared mapping of the segment's file (its inode) in /proc/self/maps."""
    if not np.shares_memory(a, np.frombuffer(seg.buf, np.uint8)):
        sys.exit("the array does not share memory with the segment")
    p = a.__array_interface__["data"][0]
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= p < hi:
                if fields[1][3] != "s":
                    sys.exit("the array's memory is not a shared mapping: " + line)
                if int(fields[4]) != os.fstat(seg.fileno()).st_ino:
                    sys.exit("the array's memory is not the segment's: " + line)
                return
    sys.exit("the array's memory is in no mapping")


def check_negated(a, n):
    want = -(np.arange(n) + 0.5)
    if not np.array_equal(a, want):
        bad = int(np.flatnonzero(a != want)[0])
        sys.exit("value %d is %r, want %r" % (bad, a[bad], want[bad]))


def cmd_view(key, n):
    n = int(n)
    with shmmap.attach(key) as seg:
        a = seg.array(np.float64)
        if a.shape != (n,):
            sys.exit("shape %s, want (%d,)" % (a.shape, n))
        in_mapping(a, seg)
        print(a.sum(), flush=True)
        a *= 2
        del a
    if "multiprocessing" in sys.modules:
        sys.exit("shmmap imported multiprocessing")


def cmd_create(n):
    n = int(n)
    with shmmap.create(n * 8) as seg:
        a = seg.array(np.float64)
        in_mapping(a, seg)
        a[:] = np.arange(n) + 0.5
        print(seg.key, flush=True)
        sys.stdin.read()  # until EOF: Go has negated every value
        check_negated(a, n)
        del a
    if os.path.exists("/dev/shm" + seg.key):
        sys.exit("close left " + seg.key)


def cmd_hold(n):
    seg = shmmap.create(int(n))
    print(seg.key, flush=True)
    sys.stdin.read()  # killed before EOF
    seg.close()


def cmd_recv_fd(n, unsealed=False):
    n = int(n)
    sock = socket.socket(fileno=3)
    fd = shmmap.receive_segment(sock)
    try:
        if unsealed:
            try:
                shmmap.map_fd(fd, require_sealed=True).close()
            except shmmap.NotSealed as e:
                print("NotSealed:", e)
            with shmmap.map_fd(fd) as seg:
                print("sealed:", seg.sealed)
            return
        seg = shmmap.map_fd(fd, require_sealed=True)
    finally:
        os.close(fd)
    with seg:
        if not seg.sealed:
            sys.exit("map_fd with require_sealed gave a segment that is not sealed")
        a = seg.array("f8")
        in_mapping(a, seg)
        print(a.sum())
        a *= 2
        del a


def cmd_send_fd(n):
    n = int(n)
    sock = socket.socket(fileno=3)
    with shmmap.create_anonymous(n * 8) as seg:
        a = seg.array("f8")
        a[:] = np.arange(n) + 0.5
        shmmap.send_segment(sock, seg)
        if sock.recv(1) != b"":  # until Go has closed its end: done
            sys.exit("Go sent data")
        check_negated(a, n)
        del a


def cmd_send_unsealed(n):
    sock = socket.socket(fileno=3)
    fd = os.memfd_create("unsealed", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, int(n) * 8)
    shmmap.send_segment(sock, fd)
    os.close(fd)
    if sock.recv(1) != b"":
        sys.exit("Go sent data")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "view": cmd_view,
        "create": cmd_create,
        "hold": cmd_hold,
        "recv-fd": cmd_recv_fd,
        "recv-unsealed": lambda n: cmd_recv_fd(n, unsealed=True),
        "send-fd": cmd_send_fd,
        "send-unsealed": cmd_send_unsealed,
    }[cmd](*args)
