#!/usr/bin/env python3
"""Python messaging: the shmmap ring against what a Python user picks instead.

Measures, as ../shared/peers measures its peers (python/msg.py, c/msg.c):
    pingpong  the parent sends message i, the child receives and checks every
              byte of it and sends message i back, the parent checks it: one
              round trip; reported one way (round trip / 2), median.
    stream    the parent sends as fast as the child receives and checks:
              32 messages of warm-up, acknowledged; then the clock runs while
              the parent sends until 1 GiB or the target time, and stops when
              the child reports it has read all.
between a parent and a child process, for each implementation:
    py-ring         shmmap.ring, Python on both ends (send; next, release)
    py-ring-spin    the same, with both ends spinning up to SPIN before they
                    sleep (set_spin), as Go's go-shmmap-spin
    py-go-ring      shmmap.ring, this Python process and a Go child
                    (cmd/shmbench --ring-child, sending with Producer.Send)
    py-pipe         multiprocessing.Pipe (send_bytes, recv_bytes)
    py-queue        multiprocessing.Queue (put, get)
    py-uds          a Unix stream socket pair (sendall; recv_into a buffer)

Prints one JSON line per measurement, in the peers' format.
    msgbench.py [--quick] [--ops pingpong,stream] [--impls a,b]
                [--shmbench PATH]   (py-go-ring needs cmd/shmbench built)
SHMMAP_PEERS_PIN=same puts parent and child on the first CPU this process may
use, =split the parent on the first and the child on the second.
"""
import argparse
import json
import multiprocessing as mp
import os
import socket
import struct
import subprocess
import sys
import time

PINGPONG_SIZES = (64, 1 << 20)
STREAM_SIZES = (64 << 10, 1 << 20)
IMPLS = ("py-ring", "py-ring-spin", "py-go-ring", "py-pipe", "py-queue", "py-uds")
MAX_SAMPLES = 200_000
STREAM_BYTES = 1 << 30
SPIN = 100e-6  # seconds: py-ring-spin's set_spin, bench/compare's --spin for Go
WARM = 32
K = 0x9E3779B97F4A7C15  # bench/ringbench: the last 8 bytes hold i*K
now = time.perf_counter_ns


def pattern(size):
    """The payload of bench/ringbench (fillPattern): byte j is j*7+1."""
    return bytearray((j * 7 + 1) & 0xFF for j in range(size))


def stamp(buf, i):
    """Message i: the pattern with i in its first 8 bytes and i*K in its last
    8, as bench/ringbench stamps it, so that a Go child checks it."""
    buf[:8] = i.to_bytes(8, "little")
    buf[-8:] = ((i * K) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")


def check(got, want, i, who):
    # bytearray == buffer is one memcmp; memoryview == bytearray would
    # compare element by element, a hundred times slower.
    if not want == got:
        raise RuntimeError(f"{who}: message {i} is not what was sent")


def ring_capacity(size, op):
    # As cmd/shmbench: ping-pong rings hold one message (or a page), stream
    # rings 8 messages' worth (7 messages with their record heads).
    return max(size + 16, 4096) if op == "pingpong" else 8 * size


# Children. Each receives message after message until the end, checks each,
# and (pingpong) answers it; a stream child prints "warm" after WARM messages
# and "done N" at the end.


def ring_child(op, size, spin, in_key, out_key):
    from shmmap import ring
    buf = pattern(size)
    with ring.open_consumer(in_key) as c:
        out = ring.open_producer(out_key) if op == "pingpong" else None
        c.set_spin(spin)
        if out is not None:
            out.set_spin(spin)
        try:
            i = 0
            while True:
                if op == "stream" and i == WARM:
                    print("warm", flush=True)
                try:
                    m = c.next()
                except EOFError:
                    break
                stamp(buf, i)
                check(m, buf, i, "py-ring child")
                c.release()
                if out is not None:
                    out.send(buf)
                i += 1
        finally:
            if out is not None:
                out.close()
    if op == "stream":
        print("done", i, flush=True)


def conn_child(kind, op, size, a, b, cpu, parent_end):
    """The child of py-pipe (a: a Connection), py-queue (a, b:
    Queues, to the child and back) and py-uds (a: a socket)."""
    # With fork this process also holds the parent's end: close it, so
    # that the parent's close of it ends recv_bytes with EOFError.
    if parent_end is not None:
        parent_end.close()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    buf = pattern(size)
    if kind == "py-uds":
        rview = memoryview(bytearray(size))
    i = 0
    while True:
        if op == "stream" and i == WARM:
            send(kind, a, b, b"warm")
        if kind == "py-pipe":
            try:
                m = a.recv_bytes()
            except EOFError:
                break
            if not m:  # the parent's end: it waits for "done N"
                break
        elif kind == "py-queue":
            m = a.get()
            if m is None:
                break
        else:
            m = recv_frame(a, rview)
            if m is None:
                break
        stamp(buf, i)
        check(m, buf, i, kind + " child")
        if op == "pingpong":
            send(kind, a, b, buf)
        i += 1
    if op == "stream":
        send(kind, a, b, b"done %d" % i)


def send(kind, a, b, buf):
    """A child's message to its parent: a reply, or a stream's report."""
    if kind == "py-pipe":
        a.send_bytes(buf)
    elif kind == "py-queue":
        b.put(bytes(buf))
    else:
        send_frame(a, buf)


def send_frame(s, buf):
    """py-uds's message: its length (8 bytes), then its bytes."""
    s.sendall(struct.pack("<Q", len(buf)))
    s.sendall(buf)


def recv_frame(s, view):
    """The next message of send_frame from s, read into view (a memoryview
    of a buffer at least as long); None at the end of the stream."""
    if not recv_exact(s, view[:8]):
        return None
    n = struct.unpack("<Q", view[:8])[0]
    recv_exact(s, view[:n])
    return view[:n]


def recv_exact(s, view):
    """Fills view from s; False at the end of the stream before any byte."""
    got = 0
    while got < len(view):
        n = s.recv_into(view[got:])
        if n == 0:
            if got == 0:
                return False
            raise RuntimeError("the peer closed in the middle of a message")
        got += n
    return True


# Parents.


class Conn:
    """The parent's side of py-pipe, py-queue or py-uds."""

    def __init__(self, kind, op, size, cpu):
        self.kind = kind
        ctx = mp.get_context("fork")
        if kind == "py-pipe":
            self.a, child_a = ctx.Pipe()
            args, self.b = (child_a, None), None
        elif kind == "py-queue":
            self.a, self.b = ctx.Queue(), ctx.Queue()  # to the child, back
            args = (self.a, self.b)
        else:
            self.a, child_a = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            args, self.b = (child_a, None), None
        parent_end = self.a if kind != "py-queue" else None
        self.p = ctx.Process(target=conn_child, args=(kind, op, size) + args + (cpu, parent_end), daemon=True)
        self.p.start()
        if kind != "py-queue":
            args[0].close()
        self.rview = memoryview(bytearray(max(size, 64)))

    def send(self, buf):
        if self.kind == "py-pipe":
            self.a.send_bytes(buf)
        elif self.kind == "py-queue":
            self.a.put(bytes(buf))
        else:
            send_frame(self.a, buf)

    def recv(self):
        if self.kind == "py-pipe":
            return self.a.recv_bytes()
        if self.kind == "py-queue":
            return self.b.get()
        m = recv_frame(self.a, self.rview)
        if m is None:
            raise RuntimeError("the child closed the connection")
        return m

    def release(self):
        pass

    def line(self):
        return bytes(self.recv())

    def end(self):
        if self.kind == "py-pipe":
            self.a.send_bytes(b"")
        elif self.kind == "py-queue":
            self.a.put(None)
        else:
            self.a.shutdown(socket.SHUT_WR)

    def close(self):
        self.p.join(10)
        if self.p.is_alive():
            self.p.kill()
            self.p.join()
        if self.kind in ("py-uds", "py-pipe"):
            self.a.close()
        elif self.kind == "py-queue":
            self.a.close()
            self.b.close()
        if self.p.exitcode != 0:
            raise RuntimeError(f"child exited with status {self.p.exitcode}")


class Ring:
    """The parent's side of py-ring, py-ring-spin and py-go-ring: it creates the
    rings (and, for a Go child, the payload segment) and starts the child."""

    def __init__(self, kind, op, size, cpu, shmbench):
        import shmmap
        from shmmap import ring
        self.kind, self.payload = kind, None
        self.out = ring.create_producer(ring_capacity(size, op))
        self.inp = ring.create_consumer(ring_capacity(size, op)) if op == "pingpong" else None
        keys = [self.out.key] + ([self.inp.key] if self.inp else [])
        mode = "echo" if op == "pingpong" else "sink"
        env = dict(os.environ)
        spin = SPIN if kind == "py-ring-spin" else 0
        self.out.set_spin(spin)
        if self.inp is not None:
            self.inp.set_spin(spin)
        if kind != "py-go-ring":
            args = [sys.executable, os.path.abspath(__file__), "--child", op, str(size), str(spin)] + keys
            if cpu is not None:
                args = ["taskset", "-c", str(cpu)] + args
        else:
            self.payload = shmmap.create(size)
            self.payload.buf[:] = pattern(size)
            args = [shmbench, "--send", "send", "--ring-child", mode] + keys + [self.payload.key, str(size)]
            # The Go child pins itself, as SHMMAP_PEERS_PIN says, among the
            # CPUs that this process had before it pinned itself.
            env["SHMMAP_PEERS_PIN_CPUS"] = ",".join(map(str, ALL_CPUS))
        self.child = subprocess.Popen(args, stdout=subprocess.PIPE, env=env)

    def send(self, buf):
        self.out.send(buf)

    def recv(self):
        return self.inp.next()

    def release(self):
        self.inp.release()

    def line(self):
        return self.child.stdout.readline().strip()

    def end(self):
        self.out.close()

    def close(self):
        try:
            if not self.out.closed:
                self.out.close()
            if self.child.wait(10) != 0:
                raise RuntimeError(f"child exited with status {self.child.returncode}")
        finally:
            if self.child.poll() is None:
                self.child.kill()
                self.child.wait()
            if self.inp is not None:
                self.inp.close()
            if self.payload is not None:
                self.payload.unlink()
                self.payload.close()


def pingpong(peer, size, target_ns):
    """Round trips for target/10 untimed (3 at least), then for target each
    timed (10 at least, unless that takes 3 * target)."""
    buf = pattern(size)

    def round_trip(i):
        stamp(buf, i)
        peer.send(buf)
        check(peer.recv(), buf, i, "reply")
        peer.release()

    rtt, i = [], 0
    t = now()
    warm_end = t + target_ns // 10
    while i < 3 or t < warm_end:
        round_trip(i)
        i += 1
        t = now()
    start = t
    while len(rtt) < MAX_SAMPLES and (t - start < target_ns or (len(rtt) < 10 and t - start < 3 * target_ns)):
        round_trip(i)
        i += 1
        t1 = now()
        rtt.append(t1 - t)
        t = t1
    peer.end()
    rtt.sort()
    n = len(rtt)
    med = rtt[n // 2] / 2
    return {"iters": n, "ns_per_op": round(med, 1), "gbps": round(size / med, 3),
            "min_ns": round(rtt[0] / 2, 1), "p99_ns": round(rtt[n * 99 // 100] / 2, 1)}


def stream(peer, size, target_ns):
    buf = pattern(size)
    i = 0
    for i in range(WARM):
        stamp(buf, i)
        peer.send(buf)
    i = WARM
    if peer.line() != b"warm":
        raise RuntimeError("the child did not acknowledge the warm-up")
    start = now()
    sent = 0
    while sent < STREAM_BYTES and now() - start < target_ns:
        stamp(buf, i)
        peer.send(buf)
        i += 1
        sent += size
    peer.end()
    done = peer.line()
    t = now() - start
    if done != b"done %d" % i:
        raise RuntimeError(f"the child reported {done!r}, want done {i}")
    msgs = i - WARM
    return {"iters": msgs, "ns_per_op": round(t / msgs, 1), "gbps": round(sent / t, 3), "bytes": sent}


class NotRun(Exception):
    """A measurement that this setup does not make (its line's error)."""


def measure(impl, op, size, target_ns, child_cpu, shmbench):
    if impl == "py-ring-spin" and os.environ.get("SHMMAP_PEERS_PIN") == "same":
        raise NotRun("not run: SHMMAP_PEERS_PIN=same leaves one CPU to two spinners")
    if impl in ("py-ring", "py-ring-spin", "py-go-ring"):
        peer = Ring(impl, op, size, child_cpu, shmbench)
    else:
        peer = Conn(impl, op, size, child_cpu)
    try:
        return (pingpong if op == "pingpong" else stream)(peer, size, target_ns)
    finally:
        peer.close()


ALL_CPUS = sorted(os.sched_getaffinity(0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ops", default="pingpong,stream")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--shmbench", default="")
    ap.add_argument("--child", nargs="+")
    a = ap.parse_args()
    if a.child:
        op, size, spin, *keys = a.child
        ring_child(op, int(size), float(spin), keys[0], keys[1] if len(keys) > 1 else None)
        return
    target = 10**8 if a.quick else 10**9
    pin = os.environ.get("SHMMAP_PEERS_PIN", "")
    cpus = ALL_CPUS[:2]
    if pin not in ("", "same", "split") or (pin == "split" and len(cpus) < 2):
        sys.exit("msgbench.py: SHMMAP_PEERS_PIN must be same or split (split needs 2 CPUs)")
    child_cpu = None
    if pin:
        os.sched_setaffinity(0, {cpus[0]})
        child_cpu = cpus[0] if pin == "same" else cpus[1]
    impls = [i for i in a.impls.split(",") if i]
    for impl in impls:
        if impl not in IMPLS:
            sys.exit(f"msgbench.py: unknown implementation {impl!r}")
    if "py-go-ring" in impls and not a.shmbench:
        sys.exit("msgbench.py: py-go-ring needs --shmbench PATH")
    for op in [o for o in a.ops.split(",") if o]:
        sizes = {"pingpong": PINGPONG_SIZES, "stream": STREAM_SIZES}.get(op)
        if sizes is None:
            sys.exit(f"msgbench.py: unknown op {op!r}")
        for size in sizes:
            for impl in impls:
                line = {"impl": impl, "op": op, "size": size}
                try:
                    line.update(measure(impl, op, size, target, child_cpu, a.shmbench))
                    if pin:
                        line["pin"] = pin
                except Exception as e:  # noqa: BLE001 - reported as the measurement's error
                    line["error"] = str(e) or type(e).__name__
                print(json.dumps(line, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
