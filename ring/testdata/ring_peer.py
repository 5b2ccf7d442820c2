"""The Python end of python_linux_test.go's runs, through the shmmap
package's ring module (python/shmmap/ring.py), built by internal/peer.

    python3 ring_peer.py consume KEY COUNT CPU
        opens ring KEY's consumer, reads COUNT messages of the stream below,
        checks each one's length, then expects the end of the stream.
    python3 ring_peer.py produce COUNT CPU
        creates a ring of 4096 bytes as its producer, prints its key, sends
        COUNT messages of the stream below, and closes.
    python3 ring_peer.py produce-and-hang KEY COUNT
        opens ring KEY's producer, sends COUNT messages of the stream,
        reserves one more and writes half of it, prints "ready" and sleeps.
    python3 ring_peer.py consume-until-gone KEY COUNT
        opens ring KEY's consumer, reads COUNT messages, prints "waiting",
        and waits for the next: it prints "gone" on PeerGone.
    python3 ring_peer.py fill-until-gone
        creates a ring of 4096 bytes as its producer, prints its key, waits
        for the consumer to open it (a line on stdin), fills the ring, prints
        "waiting" and waits for room: it prints "gone" on PeerGone.

CPU, if not -1, is the CPU this process pins itself to. The stream, as
python_linux_test.go makes it: message i's length is the top bits of an
LCG step modulo max_message + 1 (max_message every 1000th, 0 the next), its
bytes pattern[i % 251 :][:n]. consume and produce print

    count N bytes B crc32 C

B being the messages' total length and C the CRC-32 of their bytes in
order. An exception is an exit status of 1 with its traceback.
"""

import os
import sys
import time
import zlib

from shmmap import ring
from shmmap.errors import PeerGone

M64 = (1 << 64) - 1


def sizes(count, max_message):
    x = 1
    for i in range(count):
        x = (x * 6364136223846793005 + 1442695040888963407) & M64
        if i % 1000 == 0:
            yield max_message
        elif i % 1000 == 1:
            yield 0
        else:
            yield (x >> 33) % (max_message + 1)


def pattern(max_message):
    return bytes((j * 131 + 7) & 255 for j in range(max_message + 251))


def pin(cpu):
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})


def consume(key, count, cpu):
    pin(cpu)
    with ring.open_consumer(key) as c:
        total = crc = 0
        for i, n in enumerate(sizes(count, c.max_message)):
            m = c.next(timeout=60)
            if len(m) != n:
                sys.exit(f"message {i}: {len(m)} bytes, want {n}")
            crc = zlib.crc32(m, crc)
            total += n
            c.release()
        try:
            m = c.next(timeout=60)
            sys.exit(f"a message of {len(m)} bytes after the last")
        except EOFError:
            pass
    print(f"count {count} bytes {total} crc32 {crc}", flush=True)


def produce(count, cpu):
    pin(cpu)
    with ring.create_producer(4096) as p:
        print(p.key, flush=True)
        pat = pattern(p.max_message)
        total = crc = 0
        for i, n in enumerate(sizes(count, p.max_message)):
            v = p.reserve(n, timeout=60)
            s = pat[i % 251 : i % 251 + n]
            v[:] = s
            p.commit(n)
            crc = zlib.crc32(s, crc)
            total += n
    print(f"count {count} bytes {total} crc32 {crc}", flush=True)


def produce_and_hang(key, count):
    p = ring.open_producer(key)
    pat = pattern(p.max_message)
    it = sizes(count + 1, p.max_message)
    for i in range(count):
        n = next(it)
        p.send(pat[i % 251 : i % 251 + n], timeout=60)
    n = next(it)
    v = p.reserve(n, timeout=60)
    v[: n // 2] = pat[count % 251 : count % 251 + n // 2]
    print("ready", flush=True)
    time.sleep(600)


def consume_until_gone(key, count):
    with ring.open_consumer(key) as c:
        for i in range(count):
            m = c.next(timeout=60)
            if len(m) != 100:
                sys.exit(f"message {i}: {len(m)} bytes, want 100")
            c.release()
        print("waiting", flush=True)
        try:
            m = c.next(timeout=60)
            sys.exit(f"a message of {len(m)} bytes after the producer's death")
        except PeerGone:
            print("gone", flush=True)


def fill_until_gone():
    with ring.create_producer(4096) as p:
        print(p.key, flush=True)
        sys.stdin.readline()
        try:
            while True:
                p.send(b"x" * 100, timeout=0)
        except TimeoutError:
            pass
        print("waiting", flush=True)
        try:
            p.reserve(100, timeout=60)
            sys.exit("room after the consumer's death")
        except PeerGone:
            print("gone", flush=True)


def main(args):
    cmd = args[0]
    if cmd == "consume":
        consume(args[1], int(args[2]), int(args[3]))
    elif cmd == "produce":
        produce(int(args[1]), int(args[2]))
    elif cmd == "produce-and-hang":
        produce_and_hang(args[1], int(args[2]))
    elif cmd == "consume-until-gone":
        consume_until_gone(args[1], int(args[2]))
    elif cmd == "fill-until-gone":
        fill_until_gone()
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
