"""Ping-pong and stream through shmmap.ring, or multiprocessing.Pipe, between
this process and a forked child, printing one JSON line as cmd/shmbench
does:

    python3 tools/ringbench.py [--impl ring|pipe] [--seconds S] pingpong|stream SIZE

pingpong: the parent sends a message of SIZE bytes, the child reads every
byte (a checksum) and answers with one of the same size; the line's
ns_per_op is the median one way, half a round trip. stream: the parent
sends for S seconds (or 1 GiB), the child reads every byte of each; ns_per_op
is the time per message. SHMMAP_PEERS_PIN=same|split pins parent and child
to one CPU or to two, as the Go benchmarks do, and the line carries "pin".
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from shmmap import ring  # noqa: E402


def pin(child):
    mode = os.environ.get("SHMMAP_PEERS_PIN", "").strip()
    if not mode:
        return ""
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "split" and len(cpus) >= 2:
        cpu = cpus[1] if child else cpus[0]
    elif mode == "same":
        cpu = cpus[0]
    else:
        sys.exit("SHMMAP_PEERS_PIN must be same or split (split needs 2 CPUs)")
    os.sched_setaffinity(0, {cpu})
    return mode


def touch(m):
    return zlib.adler32(m)  # reads every byte, at memory speed


def ring_child(op, size, out_key, in_key, cpus):
    os.sched_setaffinity(0, cpus)
    pin(True)
    c = ring.open_consumer(out_key)
    p = ring.open_producer(in_key) if op == "pingpong" else None
    try:
        while True:
            try:
                m = c.next()
            except EOFError:
                break
            touch(m)
            c.release()
            if p is not None:
                v = p.reserve(size)
                v[:] = PAYLOAD[:size]
                p.commit(size)
    finally:
        c.close()
        if p is not None:
            p.close()


def pipe_child(op, size, conn, back, cpus, parents):
    for c in parents:
        c.close()  # the parent's ends, or no EOF would come
    os.sched_setaffinity(0, cpus)
    pin(True)
    while True:
        try:
            m = conn.recv_bytes()
        except EOFError:
            break
        touch(m)
        if op == "pingpong":
            back.send_bytes(PAYLOAD[:size])


PAYLOAD = b""


def main():
    global PAYLOAD
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", default="ring", choices=("ring", "pipe"))
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("op", choices=("pingpong", "stream"))
    ap.add_argument("size", type=int)
    a = ap.parse_args()
    size, op = a.size, a.op
    pattern = bytes((i * 7 + 1) & 255 for i in range(min(size, 4096))) * (size // 4096 + 1)
    PAYLOAD = memoryview(pattern)[:size]  # slices of it copy nothing
    cpus = os.sched_getaffinity(0)
    ctx = mp.get_context("fork")
    if a.impl == "ring":
        cap = max(size + 16, 4096) if op == "pingpong" else 8 * (size + 16)
        out = ring.create_producer(cap)
        back = ring.create_consumer(cap) if op == "pingpong" else None
        child = ctx.Process(target=ring_child, args=(op, size, out.key, back.key if back else None, cpus))
        child.start()
        mode = pin(False)

        def send():
            v = out.reserve(size)
            v[:] = PAYLOAD[:size]
            out.commit(size)

        def recv():
            m = back.next()
            touch(m)
            back.release()

        def close():
            out.close()
            child.join()
            if back is not None:
                back.close()
    else:
        r1, w1 = ctx.Pipe(duplex=False)
        r2, w2 = ctx.Pipe(duplex=False)
        child = ctx.Process(target=pipe_child, args=(op, size, r1, w2, cpus, (w1, r2)))
        child.start()
        mode = pin(False)

        def send():
            w1.send_bytes(PAYLOAD[:size])

        def recv():
            touch(r2.recv_bytes())

        def close():
            w1.close()
            child.join()

    line = {"impl": "python-" + a.impl, "op": op, "size": size}
    if op == "pingpong":
        for _ in range(max(3, 100)):
            send()
            recv()
        rtt = []
        start = time.perf_counter_ns()
        t = start
        while (t - start < a.seconds * 1e9 or len(rtt) < 10) and len(rtt) < 200_000:
            send()
            recv()
            t1 = time.perf_counter_ns()
            rtt.append(t1 - t)
            t = t1
        close()
        rtt.sort()
        med = rtt[len(rtt) // 2] / 2
        line.update(iters=len(rtt), ns_per_op=round(med, 1), gbps=round(size / med, 3),
                    min_ns=round(rtt[0] / 2, 1), p99_ns=round(rtt[len(rtt) * 99 // 100] / 2, 1))
    else:
        for _ in range(32):
            send()
        n = total = 0
        start = time.perf_counter_ns()
        while total < 1 << 30 and time.perf_counter_ns() - start < a.seconds * 1e9:
            send()
            n += 1
            total += size
        close()
        d = time.perf_counter_ns() - start
        line.update(iters=n, ns_per_op=round(d / n, 1), gbps=round(total / d, 3), bytes=total)
    if mode:
        line["pin"] = mode
    print(json.dumps(line, separators=(",", ":")))


if __name__ == "__main__":
    main()
