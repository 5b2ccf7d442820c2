"""The Python side of interop_test.go: multiprocessing.shared_memory and NumPy
against segments the Go package makes, and the other way round.

    python3 interop.py attach KEY N        sum N float64s in KEY, double them
    python3 interop.py attach-naive KEY    attach as most code does, then exit
    python3 interop.py create N            make a segment, wait, check Go's writes

attach() is the function the README shows.
"""
import sys

import numpy as np
from multiprocessing import resource_tracker, shared_memory


def attach(key):
    """Attaches a segment another program owns, such as a Go shmmap key.

    SharedMemory wants the name without its leading slash. Before Python 3.13
    it also registers every segment it opens, even one it did not create,
    with the resource tracker, which unlinks it when this process exits:
    the owner's segment would vanish under it. track=False (3.13+) or
    unregister (before) leaves the segment to its owner.
    """
    name = key.lstrip("/")
    try:
        return shared_memory.SharedMemory(name=name, track=False)  # 3.13+
    except TypeError:
        shm = shared_memory.SharedMemory(name=name)
        resource_tracker.unregister(shm._name, "shared_memory")
        return shm


def cmd_attach(key, n):
    shm = attach(key)
    a = np.ndarray((int(n),), dtype=np.float64, buffer=shm.buf)
    print(repr(float(a.sum())), flush=True)
    a *= 2  # in place: the Go process sees it
    del a  # a view of shm.buf must go before close
    shm.close()


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


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"attach": cmd_attach, "attach-naive": cmd_attach_naive, "create": cmd_create}[cmd](*args)
