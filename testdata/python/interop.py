"""The Python side of interop_test.go, beside the README's worker.py, which
the test runs as the README gives it: multiprocessing.shared_memory and NumPy
making a segment for Go, and attaching to Go's as most code does.

    python3 interop.py create N            make a segment, wait, check Go's writes
    python3 interop.py attach-naive KEY    plain SharedMemory(name), then exit
"""
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


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"attach-naive": cmd_attach_naive, "create": cmd_create}[cmd](*args)
