#!/usr/bin/env python3
"""Turns bench/compare's raw output into tables, BENCHMARKS.md and charts.

usage: report.py OUTDIR BENCHMARKS.md CHART.svg

OUTDIR is what bench/compare leaves: round-R.jsonl (the segment workloads,
one file per round), msg-R-MODE.jsonl (messaging, per round and pin mode),
gobench.txt and strace-IMPL-OP.txt. CHART.svg is the segment chart;
messaging.svg and messaging-vs-c.svg are written beside it. The tables are
printed as well, and BENCHMARKS.md.in, the hand-written part of
BENCHMARKS.md, is appended to it.
"""
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

try:
    import matplotlib
except ImportError:
    sys.exit("report.py: needs matplotlib (on Debian: apt-get install python3-matplotlib)")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

# The same numbers make the same SVG: no date (see save), fixed ids, and
# text drawn as paths, so that it looks alike whatever fonts a viewer has.
plt.rcParams.update({"svg.hashsalt": "shmmap", "svg.fonttype": "path", "font.size": 9})

# The C variants that make the calls of each Go workload, the one to judge
# by first. bench/c/lockbench.c's create_release_lock (O_TMPFILE, OFD lock,
# fchmod, fallocate, mmap, linkat) and attach_release_nonblock (O_NONBLOCK
# open, fstat, mmap, close) are the library's Create and Read/ReadWrite on
# Linux as rewritten; ../shared/peers' create_release_reserve (shm_open,
# ftruncate, fallocate, mmap) and attach_release_fstat (shm_open, fstat,
# mmap) those before. A Go row is compared with each variant measured, in
# rows of its own; the first one measured is the one charted.
FLOORS_FOR_GO = {
    "create_release": ["create_release_lock", "create_release_reserve"],
    "attach_release": ["attach_release_nonblock", "attach_release_fstat"],
    "first_touch": ["first_touch_reserve"],
    "first_touch_populate": ["first_touch_populate"],
    "cross_process": ["cross_process"],
    "cross_process_populate": ["cross_process_populate"],
    "create_release_anon": ["create_release_anon"],
}
ROWS = [
    ("create_release", 4096), ("create_release", 1 << 20),
    ("create_release_anon", 4096), ("create_release_anon", 1 << 20),
    ("attach_release", 4096), ("attach_release", 1 << 20),
    ("first_touch", 256 << 20), ("first_touch_populate", 256 << 20),
    ("cross_process", 256 << 20), ("cross_process_populate", 256 << 20),
]
IMPLS = ["go-shmmap", "c-posix", "python-shared_memory", "node-shmmap", "node-shm-typed-array"]
SEGMENT_COLORS = {"go-shmmap": "#00add8", "python-shared_memory": "#f2c230",
                  "node-shmmap": "#3c873a", "node-shm-typed-array": "#8cc84b"}

# Messaging: the workloads, the pin modes (SHMMAP_PEERS_PIN), and what runs
# them. GO_SETUPS are cmd/shmbench as bench/compare runs it, by the impl
# name it prints, in the tables' order; go-shmmap-taskset is the older name
# of go-shmmap-gomaxprocs1.
MSG_ROWS = [("pingpong", n) for n in (64, 4096, 64 << 10, 1 << 20, 4 << 20)] + \
    [("stream", n) for n in (64 << 10, 1 << 20)]
PINS = {"same": "one CPU", "split": "two CPUs"}
SPIN = "go-shmmap-spin"
GO_SETUPS = {
    "go-shmmap": "tuned",
    "go-shmmap-send": "Send",
    "go-shmmap-copy": "plain copy()",
    "go-shmmap-gomaxprocs1": "GOMAXPROCS=1",
    SPIN: "spin 100 µs",
}
RENAMED = {"go-shmmap-taskset": "go-shmmap-gomaxprocs1"}
# How the charts draw each setup and peer: Go's solid, the peers' dashed.
SERIES = {
    "go-shmmap": ("Go, tuned", "#00add8", "-", "o"),
    "go-shmmap-send": ("Go, Send", "#0b3d91", "-", "s"),
    "go-shmmap-copy": ("Go, plain copy()", "#2ca02c", "-", "^"),
    "go-shmmap-gomaxprocs1": ("Go, GOMAXPROCS=1", "#d62728", "-", "D"),
    SPIN: ("Go, spin 100 µs", "#ff7f0e", "-", "v"),
    "c-futex-shm": ("C futex ring", "#000000", "--", "o"),
    "c-spin-shm": ("C spinning ring", "#7f7f7f", "--", "v"),
    "c-pipe": ("C pipe", "#8c564b", "--", "x"),
    "c-uds": ("Unix socket (C)", "#9467bd", "--", "+"),
    "python-pipe": ("Python multiprocessing.Pipe", "#bcbd22", ":", "*"),
}

# Python (bench/python/msgbench.py): the ring from Python against what a
# Python user picks instead, and Go <-> Python against Go <-> Go (cmd/shmbench
# sending with Send), in the workloads of issue 20; its targets: the ring at
# least PY_MIN_1MIB times faster than multiprocessing.Pipe at 1 MiB, and
# faster at 64 B.
PY_ROWS = [("pingpong", 64), ("pingpong", 1 << 20), ("stream", 64 << 10), ("stream", 1 << 20)]
PY_IMPLS = {
    "py-ring": "Python ring",
    "py-ring-spin": "Python ring, spin 100 µs",
    "py-go-ring": "Python ↔ Go ring",
    "go-shmmap-send": "Go ↔ Go ring",
    "py-pipe": "multiprocessing.Pipe",
    "py-queue": "multiprocessing.Queue",
    "py-uds": "Unix socket",
}
PY_MIN_1MIB = 5.0

# The targets of issue 19, judged in the messaging tables.
PINGPONG_MAX = 1.3  # blocking ping-pong: Go's time over the C futex ring's
STREAM_MIN = 0.8  # stream: Go's throughput over the C futex ring's
SPIN_MAX = 2.0  # spinning ping-pong at 64 B: Go's time over the C spinning ring's
SOCKET_SHARE = 0.9  # ping-pong at 1 and 4 MiB: Go's lead on a Unix socket over the C futex ring's


def measurements(paths):
    """The JSON lines of the files at paths: (results, error lines)."""
    results, failed = [], []
    for path in paths:
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                (failed if "error" in d else results).append(d)
    return results, failed


def human_size(n):
    if n < 1024:
        return f"{n} B"
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def markdown_row(cells):
    return "| " + " | ".join(cells) + " |"


# Segments: create, attach, touch, across processes.

def segment_samples(out):
    """(impl, op, size) -> [(ns, gbps)] over the rounds, and the number of rounds."""
    samples = defaultdict(list)
    rounds = sorted(glob.glob(os.path.join(out, "round-*.jsonl")))
    for d in measurements(rounds)[0]:
        samples[(d["impl"], d["op"], d["size"])].append((d["ns_per_op"], d.get("gbps")))
    return samples, len(rounds)


def med(samples, impl, op, size):
    """The median (ns, GB/s) of a workload, or None."""
    s = samples.get((impl, op, size))
    if not s:
        return None
    g = [x[1] for x in s if x[1] is not None]
    return statistics.median(x[0] for x in s), (statistics.median(g) if g else None)


def cost(op, m):
    """The number a workload is judged by, and whether larger is better."""
    ns, gbps = m
    if op.startswith("first_touch") or op.startswith("cross_process"):
        return gbps, True
    return ns, False


def floor_ratio(op, m, f):
    """m's cost over the C floor f's, above 1 when slower than C; or None."""
    if f is None:
        return None
    v, higher = cost(op, m)
    fv, _ = cost(op, f)
    if not (v and fv):
        return None
    return fv / v if higher else v / fv


def segment_rows(samples):
    """One row per (workload, impl, C variant compared with): (op, size,
    impl, median, C variant, its median, ratio to it, number of samples)."""
    rows = []
    for op, size in ROWS:
        for impl in IMPLS:
            m = med(samples, impl, op, size)
            if impl == "c-posix" or m is None:
                continue
            # Go is compared with the C variants doing its work; Python and
            # node (no reservation, no fstat) with plain C.
            fops = FLOORS_FOR_GO[op] if impl == "go-shmmap" else [op]
            measured = [fop for fop in fops if med(samples, "c-posix", fop, size)] or fops[:1]
            n = len(samples[(impl, op, size)])
            for fop in measured:
                f = med(samples, "c-posix", fop, size)
                rows.append((op, size, impl, m, fop, f, floor_ratio(op, m, f), n))
    return rows


def fmt_m(op, m):
    ns, gbps = m
    if op.startswith("first_touch") or op.startswith("cross_process"):
        return f"{gbps:.3f} GB/s"
    return f"{ns / 1000:.1f} µs"


def segment_table(rows):
    table = ["| workload | size | impl | median | C floor (variant) | ratio to C | n |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for op, size, impl, m, fop, f, ratio, n in rows:
        table.append(f"| {op} | {human_size(size)} | {impl} | {fmt_m(op, m)} | "
                     f"{fmt_m(op, f) if f else 'n/a'} ({fop}) | "
                     f"{'%.2fx' % ratio if ratio else 'n/a'} | {n} |")
    return table


def ceiling(samples):
    """memset and memcpy of 256 MiB already faulted, in C."""
    ceil = []
    for op in ("memset", "memcpy"):
        m = med(samples, "c-posix", op, 256 << 20)
        if m:
            ceil.append(f"{op} {m[1]:.2f} GB/s")
    return ceil


def segment_chart(rows, path):
    """A bar from 1 to each implementation's ratio to its first C variant,
    per workload, on a log scale."""
    ratios = {}
    for op, size, impl, _, _, _, ratio, _ in rows:
        ratios.setdefault((op, size, impl), ratio)
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    series = [([ratios.get((op, size, impl)) for op, size in ROWS], impl, color)
              for impl, color in SEGMENT_COLORS.items()]
    grouped_bars(ax, [f"{op.replace('_', ' ')} {human_size(size)}" for op, size in ROWS], series)
    ax.tick_params(axis="x", labelrotation=30)
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.set_yscale("log")
    ratio_axis(ax, "time relative to C")
    lo, hi = ax.get_ylim()
    ax.set_yticks([t for t in (0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200) if lo <= t <= hi])
    ax.set_title("Time relative to the C floor doing the same work (lower is better; log scale)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    save(fig, path)


# go test -bench: allocations and scaling, medians over -count.

def gobench(path):
    """Benchmark name -> [{unit: value}], one per run. A benchmark of a
    package other than the root one is named with its path
    (ring/BenchmarkPingPong/64B)."""
    gob = defaultdict(list)
    prefix = ""
    for line in open(path):
        p = re.match(r"^pkg: github\.com/shmmap-go/shmmap(/\S+)?$", line.strip())
        if p:
            prefix = (p.group(1) or "/")[1:] + ("/" if p.group(1) else "")
            continue
        m = re.match(r"^(Benchmark\S+)-\d+\s+\d+\s+(.*)$", line)
        if m:
            fields = m.group(2).split()
            vals = {fields[i + 1]: float(fields[i]) for i in range(0, len(fields) - 1, 2)}
            gob[prefix + m.group(1)].append(vals)
    return gob


def gobench_table(gob):
    if not gob:
        print("report: no go test -bench results", file=sys.stderr)
        return ["No results: `go test -bench` failed (its output is in bench/out/gobench.txt)."]

    def gomed(name, unit):
        v = [x[unit] for x in gob[name] if unit in x]
        return statistics.median(v) if v else None

    rows = ["| benchmark | ns/op | allocs/op | B/op |", "| --- | --- | --- | --- |"]
    for name in sorted(gob):
        ns, al, b = gomed(name, "ns/op"), gomed(name, "allocs/op"), gomed(name, "B/op")
        rows.append(f"| {name} | {ns:.0f} | {al if al is not None else ''} | {b if b is not None else ''} |")
    return rows


# Syscalls per op, from strace.

def syscalls(out, impl, op):
    """Syscall name -> calls per op in strace-IMPL-OP.txt, or None."""
    path = os.path.join(out, f"strace-{impl}-{op}.txt")
    if not os.path.exists(path):
        return None
    counts = defaultdict(int)
    opens = 0
    for line in open(path):
        m = re.match(r"^\d+\s+(\w+)\((.*)", line)
        if not m:
            continue
        name = m.group(1)
        # An op opens /dev/shm/NAME, or /dev/shm itself with O_TMPFILE, or
        # (create_release_anon) makes a memfd.
        if name in ("openat", "open") and re.match(r'(AT_FDCWD, )?"/dev/shm(/[^"]*)?"', m.group(2)):
            opens += 1
        elif name == "memfd_create":
            opens += 1
        counts[name] += 1
    if not opens:
        return None
    # Count only calls on the op's path: those at least as many as the opens
    # (start-up calls such as the runtime's own mmaps round to 0).
    per = {k: v / opens for k, v in counts.items()}
    return {k: v for k, v in per.items() if v >= 0.5}


# Which C variant bench/compare traced as "c" (../shared/peers) and "c-lock"
# (bench/c/lockbench.c).
TRACED = {"c": {"create_release": "create_release_reserve", "attach_release": "attach_release_fstat"},
          "c-lock": {"create_release": "create_release_lock", "attach_release": "attach_release_nonblock",
                     "create_release_anon": "create_release_anon"}}


def syscall_table(out):
    rows = ["| op | impl | syscalls per op |", "| --- | --- | --- |"]
    for op in ("create_release", "attach_release", "create_release_anon"):
        for impl in ("c-lock", "c", "go"):
            s = syscalls(out, impl, op)
            if s:
                total = sum(round(v) for v in s.values())
                detail = ", ".join(f"{k} {v:.0f}" for k, v in sorted(s.items()))
                label = f"c-posix ({TRACED[impl][op]})" if impl in TRACED else "go-shmmap"
                rows.append(f"| {op} | {label} | {total}: {detail} |")
    return rows


def machine():
    """The CPU, the kernel, and the versions of Go and of the peers' Python and node."""
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(*cmd):
        if not shutil.which(cmd[0]):
            return "none"
        r = subprocess.run(cmd, capture_output=True, text=True)
        return (r.stdout or r.stderr).strip()
    # The peers run the python3 and node in PATH, which need not be the
    # python3 that runs this report.
    py = version("python3", "--version").removeprefix("Python ")
    return (f"{cpu}, {os.cpu_count()} cpus; Linux {platform.release()}; {version('go', 'version')}; "
            f"Python {py}; node {version('node', '--version')}")


# Messaging: ping-pong and stream between two processes, pinned.

class Messaging:
    """bench/compare's pinned runs, msg-R-MODE.jsonl, one file per round and
    pin mode. Each workload is judged by one number: pingpong by its median
    one-way time in ns, stream by its GB/s."""

    def __init__(self, out):
        self.runs = defaultdict(lambda: defaultdict(list))  # (pin, impl, op, size) -> {round: [value]}
        self.not_run = {}  # (pin, impl) -> why, as the run said
        self.rounds = set()
        for path in sorted(glob.glob(os.path.join(out, "msg-*-*.jsonl"))):
            m = re.match(r"msg-(\d+)-(\w+)\.jsonl$", os.path.basename(path))
            if not m or m.group(2) not in PINS:
                continue
            rnd, pin = m.groups()
            self.rounds.add(rnd)
            results, failed = measurements([path])
            for d in results:
                if d.get("op") in ("pingpong", "stream"):
                    v = d["ns_per_op"] if d["op"] == "pingpong" else d["gbps"]
                    self.runs[(pin, self.impl(d), d["op"], d["size"])][rnd].append(v)
            for d in failed:
                self.not_run.setdefault((pin, self.impl(d)), d["error"])
        self.ran = {(pin, impl) for pin, impl, _, _ in self.runs}
        self.pins = [pin for pin in PINS if any(p == pin for p, _ in self.ran)]

    @staticmethod
    def impl(d):
        return RENAMED.get(d["impl"], d["impl"])

    def value(self, pin, impl, op, size):
        """The median over every round, or None."""
        by_round = self.runs.get((pin, impl, op, size))
        if not by_round:
            return None
        return statistics.median(v for vs in by_round.values() for v in vs)

    def ratio(self, pin, a, b, op, size):
        """a's number over b's, and whether it is the median of the per-round
        ratios (both ran in the same rounds) rather than the ratio of the
        medians. (None, True) if either did not run."""
        ra, rb = self.runs.get((pin, a, op, size)), self.runs.get((pin, b, op, size))
        if not ra or not rb:
            return None, True
        if ra.keys() == rb.keys():
            med = statistics.median
            return med(med(ra[r]) / med(rb[r]) for r in ra), True
        return self.value(pin, a, op, size) / self.value(pin, b, op, size), False


def msg_cell(op, v):
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} µs" if op == "pingpong" else f"{v:.2f} GB/s"


def ratio_cell(r, holds=None, note=""):
    """A ratio, † if of the medians, then note, then ✓ or ✗ if holds says
    whether its target holds."""
    value, per_round = r
    if value is None:
        return "n/a"
    cell = f"{value:.2f}x" + ("" if per_round else "†") + note
    if holds is None:
        return cell
    return cell + (" ✓" if holds(value) else " ✗")


def setup_cells(msg, pin, impl, op, size, missed):
    """The cells of one Go setup's row, from Go on: its number and its
    ratios to the C rings and the Unix socket, judged where a target holds.
    Each target missed is added to missed."""
    where = f"{PINS[pin]}, {op} {human_size(size)}, {GO_SETUPS[impl]}"

    def judged(what, r, holds, note=""):
        cell = ratio_cell(r, holds, note)
        if cell.endswith("✗"):
            missed.append(f"{where}: {what} {cell}")
        return cell

    def value(impl):
        return msg_cell(op, msg.value(pin, impl, op, size))

    blocking = impl != SPIN
    futex = msg.ratio(pin, impl, "c-futex-shm", op, size)
    if not blocking:
        vs_futex = ratio_cell(futex)
    elif op == "pingpong":
        vs_futex = judged("Go / C futex", futex, lambda r: r <= PINGPONG_MAX)
    else:
        vs_futex = judged("Go / C futex", futex, lambda r: r >= STREAM_MIN)

    vs_spin = ""
    if not blocking:
        spin = msg.ratio(pin, impl, "c-spin-shm", op, size)
        if (op, size) == ("pingpong", 64):
            vs_spin = judged("Go / C spinning", spin, lambda r: r <= SPIN_MAX)
        else:
            vs_spin = ratio_cell(spin)

    # How many times faster than the socket Go is: the socket's time over
    # Go's, or Go's throughput over the socket's. At 1 and 4 MiB, judged by
    # the C futex ring's lead on the socket.
    if op == "stream":
        vs_socket = ratio_cell(msg.ratio(pin, impl, "c-uds", op, size))
    else:
        socket = msg.ratio(pin, "c-uds", impl, op, size)
        lead = msg.ratio(pin, "c-uds", "c-futex-shm", op, size)
        if blocking and size >= 1 << 20 and lead[0]:
            vs_socket = judged("Go vs socket", socket, lambda r: r >= SOCKET_SHARE * lead[0],
                               f" (C {ratio_cell(lead)})")
        else:
            vs_socket = ratio_cell(socket)

    return [value(impl), value("c-futex-shm"), vs_futex, value("c-spin-shm"), vs_spin,
            value("c-uds"), vs_socket]


def messaging_table(msg, pin, missed):
    """The Go setups that ran in pin mode beside the C rings and the Unix
    socket of the same run: one row per (workload, size, setup). The
    spinning ring's columns are left out where neither spinner ran."""
    head = ["workload", "size", "Go setup", "Go", "C futex ring", "Go / C futex",
            "C spinning ring", "Go / C spinning", "Unix socket", "Go vs socket"]
    keep = [True] * len(head)
    if (pin, SPIN) not in msg.ran and (pin, "c-spin-shm") not in msg.ran:
        keep[6] = keep[7] = False
    setups = [impl for impl in GO_SETUPS if (pin, impl) in msg.ran]
    rows = []
    for op, size in MSG_ROWS:
        for impl in setups:
            cells = [op, human_size(size), GO_SETUPS[impl]] + setup_cells(msg, pin, impl, op, size, missed)
            rows.append(cells)
    if not rows:
        return []
    return [markdown_row([c for c, k in zip(cells, keep) if k])
            for cells in [head, ["---"] * len(head)] + rows]


def python_table(msg, pin, missed):
    """The Python workloads in pin mode: one row per (workload, size), each
    implementation's number, and how many times faster than
    multiprocessing.Pipe the Python ring and Python <-> Go are (Pipe's time
    over theirs, or their throughput over Pipe's), judged for the Python
    ring. Each target missed is added to missed."""
    impls = [i for i in PY_IMPLS if (pin, i) in msg.ran]
    if "py-ring" not in impls:
        return []
    spin = "py-ring-spin" in impls
    head = ["workload", "size"] + [PY_IMPLS[i] for i in impls] + \
        ["Python ring vs Pipe"] + (["spinning vs Pipe"] if spin else []) + \
        ["Python ↔ Go vs Pipe", "C futex ring vs Pipe"]
    rows = []
    for op, size in PY_ROWS:
        def faster(impl):
            if op == "pingpong":
                return msg.ratio(pin, "py-pipe", impl, op, size)
            return msg.ratio(pin, impl, "py-pipe", op, size)
        target = PY_MIN_1MIB if size == 1 << 20 else 1.0 if size == 64 else None
        judged = []
        for impl, name in [("py-ring", "Python ring")] + ([("py-ring-spin", "spinning")] if spin else []):
            cell = ratio_cell(faster(impl), None if target is None else (lambda r: r >= target))
            if cell.endswith("✗"):
                missed.append(f"{PINS[pin]}, {op} {human_size(size)}, {name} vs Pipe: {cell}")
            judged.append(cell)
        rows.append([op, human_size(size)] + [msg_cell(op, msg.value(pin, i, op, size)) for i in impls] +
                    judged + [ratio_cell(faster("py-go-ring")), ratio_cell(faster("c-futex-shm"))])
    return [markdown_row(r) for r in [head, ["---"] * len(head)] + rows]


def python_section(msg, missed):
    """The Python part of BENCHMARKS.md, or "" where it did not run."""
    tables = {pin: t for pin in PINS if (t := python_table(msg, pin, missed))}
    if not tables:
        return ""
    s = f"""
## Messaging from Python (bench/python/msgbench.py)

The Python package's ring (`python/`, `shmmap.ring`) between two Python
processes, and between Python and a Go child (cmd/shmbench, sending with
`Producer.Send`), against what a Python user picks instead:
multiprocessing.Pipe (send_bytes, recv_bytes), multiprocessing.Queue (put,
get) and a Unix stream socket (sendall; recv_into a buffer), all run by the
same script on Debian's python3; Go ↔ Go is the Send row above. Measured as
the peers measure (each side compares every byte it receives with what it
expects, one memcmp); pingpong one way, stream GB/s. "vs Pipe" is how many
times faster than multiprocessing.Pipe, the median of per-round ratios;
✓/✗: issue 20's targets, at least {PY_MIN_1MIB}x at 1 MiB and faster at 64 B.
"Python ring, spin 100 µs" is the same ring with `set_spin(100e-6)` on both
ends, as Go's spinning setup, run only with a CPU for each process. "C
futex ring vs Pipe" is the floor's margin in the same rounds, for scale: the
C peers write their pattern rather than copy it, and sum what they read
rather than compare it, so each message moves half the bytes; where that
margin is under {PY_MIN_1MIB}x, no ring reaches the target at 1 MiB.
"""
    for pin, t in tables.items():
        s += f"\n### {PINS[pin]} (SHMMAP_PEERS_PIN={pin})\n\n" + "\n".join(t) + "\n"
        note = not_run_note(msg, pin, PY_IMPLS)
        if note:
            s += "\n" + note + "\n"
    return s


def not_run_note(msg, pin, only=None):
    """Sentences naming the setups and peers that did not run in pin mode, and why."""
    why = defaultdict(list)
    for (p, impl), error in sorted(msg.not_run.items()):
        if (impl not in only) if only is not None else impl.startswith("py-"):
            continue
        if p == pin and (pin, impl) not in msg.ran:
            why[error.removeprefix("not run: ")].append(f"`{impl}`")
    return " ".join(f"{' and '.join(impls)} did not run: {error}." for error, impls in why.items())


def messaging_section(msg, tables, missed):
    """The messaging part of BENCHMARKS.md: what was measured, how, and the
    tables and charts."""
    s = f"""
## Messaging: package ring against the peers ({len(msg.rounds)} rounds per placement; medians)

![ping-pong latency by message size and stream throughput, on one CPU and on two](bench/messaging.svg)

pingpong: median one-way latency (round trip / 2), each side reading every
byte it receives and answering with a message of the same size; stream:
GB/s through a ring of 8 messages' capacity (Go's holds 7: each record has
a 16-byte head). The C peers pin their one thread; the Go setups, all
cmd/shmbench:
- **tuned** (`go-shmmap`): the goroutine that sends and receives is locked
  to its thread and that thread pinned; the Go runtime's other threads keep
  every CPU, and GOMAXPROCS is what Go picks (see bench/ringbench.Pin). It
  copies a message into its reservation in pieces of 256 KiB.
- **Send** (`go-shmmap-send`): the same, sending with the one call
  `Producer.Send(ctx, msg)` from a buffer of its own, as package ring's
  documentation shows first.
- **plain copy()** (`go-shmmap-copy`): the same, with `copy(buf, msg)` into
  a reservation from a buffer of its own, in one piece.
- **GOMAXPROCS=1** (`go-shmmap-gomaxprocs1`; `go-shmmap-taskset` in older
  runs): the whole process pinned to the one CPU, as `taskset -c N` would,
  so that Go picks GOMAXPROCS=1: there sysmon runs beside the worker, and
  every sleep of more than ~20 µs has the runtime take the sleeping
  thread's only P and hand it back, on the worker's CPU.
- **spin 100 µs** (`go-shmmap-spin`): the ring with `SetSpin(100µs)` on
  both ends, beside `c-spin-shm`, which spins without a limit; neither runs
  with both processes on one CPU.

Which rows are yours: a service with CPUs of its own and Go's default
GOMAXPROCS, the tuned and Send rows; a process run under taskset or in a
container given one CPU by cpuset (Go gives one limited by CPU quota at
least two Ps), the GOMAXPROCS=1 row; code that fills a reservation with a
plain copy(), the plain copy() row.

Go / C futex is Go's number over the C futex ring's: for pingpong its time
(target: at most {PINGPONG_MAX}x), for stream its throughput (at least
{STREAM_MIN}x). Go / C spinning, of the spinning setup, is its time or
throughput over the C spinning ring's (at 64 B ping-pong at most
{SPIN_MAX}x). Go vs socket is how many times faster than the Unix socket Go
is; at 1 and 4 MiB ping-pong the target is at least {SOCKET_SHARE} of the
C futex ring's lead on it, in brackets. ✓/✗: those targets, of issue 19.
Each ratio is the median of the per-round ratios, the two numbers taken in
the same round; one marked † is the ratio of the medians, where the two did
not run in the same rounds. The pipes, C's and Python's
multiprocessing.Pipe, are in the chart above.
"""
    for pin, t in tables.items():
        s += f"\n### {PINS[pin]} (SHMMAP_PEERS_PIN={pin})\n\n" + "\n".join(t) + "\n"
        note = not_run_note(msg, pin)
        if note:
            s += "\n" + note + "\n"
    s += "\n![each Go setup's time or throughput over the C ring's](bench/messaging-vs-c.svg)\n"
    if missed:
        s += "\nTargets missed in this run:\n" + "".join(f"- {m}\n" for m in missed)
    return s


# Charts.

def save(fig, path):
    """Writes fig as SVG, cropped to what it draws, with no date in it."""
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


def grouped_bars(ax, groups, series, bottom=0):
    """Bars side by side in each group. series: [(value per group or None,
    label, color)]; a bar goes from bottom to its value."""
    if not series:
        ax.set_axis_off()
        return
    width = 0.8 / len(series)
    for i, (values, label, color) in enumerate(series):
        at = [(g + (i - (len(series) - 1) / 2) * width, v) for g, v in enumerate(values) if v is not None]
        xs, ys = zip(*at) if at else ((), ())
        ax.bar(xs, [y - bottom for y in ys], width, bottom=bottom, label=label, color=color)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlim(-0.5, len(groups) - 0.5)


def ratio_axis(ax, label, marks=()):
    """Readies an axis of bars that go from 1 (as fast as C) to a ratio: a
    line at 1, and a range that also shows marks, the targets."""
    ax.use_sticky_edges = False  # room beyond the bars' ends at 1
    ax.update_datalim([(0, m) for m in marks])
    ax.autoscale_view()
    ax.axhline(1, color="black", linewidth=0.8)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(label)
    ax.grid(axis="y", color="#dddddd")
    ax.set_axisbelow(True)


def legend_below(fig, handles):
    """One legend for every panel, under them."""
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=4, frameon=False)


def series_handle(impl):
    """impl's line in a legend."""
    label, color, style, marker = SERIES[impl]
    return Line2D([], [], color=color, linestyle=style, marker=marker, label=label)


def latency_panel(ax, msg, pin):
    """One-way ping-pong latency against message size, log-log, a line each."""
    sizes = [s for op, s in MSG_ROWS if op == "pingpong"]
    for impl, (label, color, style, marker) in SERIES.items():
        at = [(s, msg.value(pin, impl, "pingpong", s)) for s in sizes]
        at = [(s, v / 1000) for s, v in at if v is not None]
        if at:
            ax.plot(*zip(*at), color=color, linestyle=style, marker=marker, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes, [human_size(s) for s in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("one-way latency, µs")
    ax.set_title(f"{PINS[pin]}: ping-pong (lower is better)")
    ax.grid(color="#dddddd")


def throughput_panel(ax, msg, pin):
    """Stream throughput per message size, a bar each."""
    sizes = [s for op, s in MSG_ROWS if op == "stream"]
    series = [([msg.value(pin, impl, "stream", s) for s in sizes], label, color)
              for impl, (label, color, _, _) in SERIES.items()]
    grouped_bars(ax, [human_size(s) for s in sizes], [s for s in series if any(s[0])])
    ax.set_ylabel("GB/s")
    ax.set_title(f"{PINS[pin]}: stream (higher is better)")
    ax.grid(axis="y", color="#dddddd")
    ax.set_axisbelow(True)


def messaging_chart(msg, path):
    """Which is fastest for a message size, on one CPU or two: latency and
    throughput of every setup and peer."""
    fig, axes = plt.subplots(len(msg.pins), 2, figsize=(11, 4 * len(msg.pins)), squeeze=False,
                             width_ratios=[3, 2], layout="constrained")
    for (lat, thr), pin in zip(axes, msg.pins):
        latency_panel(lat, msg, pin)
        throughput_panel(thr, msg, pin)
    fig.suptitle(f"Messaging between two processes, pinned to one CPU or two "
                 f"(medians of {len(msg.rounds)} rounds)")
    legend_below(fig, [series_handle(impl) for impl in SERIES
                       if any((pin, impl) in msg.ran for pin in PINS)])
    save(fig, path)


def ratio_panel(ax, msg, pin, op):
    """Each Go setup's number over the C ring's, per message size: the C
    futex ring's, or the C spinning ring's for the spinning setup; with the
    targets."""
    sizes = [s for o, s in MSG_ROWS if o == op]
    series = []
    for impl in GO_SETUPS:
        c = "c-spin-shm" if impl == SPIN else "c-futex-shm"
        ratios = [msg.ratio(pin, impl, c, op, s)[0] for s in sizes]
        if any(ratios):
            series.append((ratios, SERIES[impl][0], SERIES[impl][1]))
    if not series:
        ax.set_axis_off()
        return
    grouped_bars(ax, [human_size(s) for s in sizes], series, bottom=1)
    if op == "pingpong":
        target, label, title = PINGPONG_MAX, "Go's time ÷ C's", "ping-pong, time (lower is better)"
    else:
        target, label, title = STREAM_MIN, "Go's GB/s ÷ C's", "stream, throughput (higher is better)"
    ax.axhline(target, color="#cc0000", linestyle="--", linewidth=1)
    marks = [target]
    if op == "pingpong" and (pin, SPIN) in msg.ran:
        ax.hlines(SPIN_MAX, -0.45, 0.45, color=SERIES[SPIN][1], linestyle=":", linewidth=1.5)
        marks.append(SPIN_MAX)
    ratio_axis(ax, label, marks)
    ax.set_title(f"{PINS[pin]}: {title}")


def ratio_chart(msg, path):
    """How far each Go setup is from C, per workload, size and pin mode."""
    fig, axes = plt.subplots(len(msg.pins), 2, figsize=(11, 3.75 * len(msg.pins)), squeeze=False,
                             width_ratios=[5, 2], layout="constrained")
    for row, pin in zip(axes, msg.pins):
        for ax, op in zip(row, ("pingpong", "stream")):
            ratio_panel(ax, msg, pin, op)
    fig.suptitle("How far from C: each Go setup over the C futex ring "
                 "(the spinning setup over the C spinning ring)")
    ran = [impl for impl in GO_SETUPS if any((pin, impl) in msg.ran for pin in PINS)]
    handles = [Patch(color=SERIES[impl][1], label=SERIES[impl][0] + (" ÷ C spinning ring" if impl == SPIN else ""))
               for impl in ran]
    handles += [Line2D([], [], color="black", linewidth=0.8, label="1x: as fast as C"),
                Line2D([], [], color="#cc0000", linestyle="--",
                       label=f"target: ping-pong ≤ {PINGPONG_MAX}x, stream ≥ {STREAM_MIN}x")]
    if SPIN in ran:
        handles.append(Line2D([], [], color=SERIES[SPIN][1], linestyle=":",
                              label=f"target: spinning, 64 B ≤ {SPIN_MAX}x"))
    legend_below(fig, handles)
    save(fig, path)


def main():
    out, md_path, svg_path = sys.argv[1:4]
    samples, rounds = segment_samples(out)
    rows = segment_rows(samples)
    table, ceil = segment_table(rows), ceiling(samples)
    print("\n".join(table))
    if ceil:
        print("ceiling (C, 256 MiB already faulted): " + ", ".join(ceil))
    segment_chart(rows, svg_path)

    msg = Messaging(out)
    missed = []
    tables = {pin: t for pin in PINS if (t := messaging_table(msg, pin, missed))}
    for pin, t in tables.items():
        print(f"\nmessaging, SHMMAP_PEERS_PIN={pin}:")
        print("\n".join(t))
    if missed:
        print("messaging targets missed: " + "; ".join(missed))
    py_missed = []
    py_section = python_section(msg, py_missed)
    if py_missed:
        print("python targets missed: " + "; ".join(py_missed))
    msg_section = ""
    if tables:
        charts = os.path.dirname(svg_path)
        messaging_chart(msg, os.path.join(charts, "messaging.svg"))
        ratio_chart(msg, os.path.join(charts, "messaging-vs-c.svg"))
        msg_section = messaging_section(msg, tables, missed)

    body = f"""# Benchmarks

Produced by `bench/compare` in one run ({rounds} interleaved rounds; medians) on:
{machine()}.

![time relative to the C floor](bench/chart.svg)

Ratios compare each implementation with C doing the same work; the C
variant is named in each row. For Go, the C variants that also make the
calls Go's does: `create_release_lock` and `attach_release_nonblock`
(bench/c/lockbench.c) make the calls of Create and Read/ReadWrite as
rewritten (openat O_TMPFILE of /dev/shm, fcntl F_OFD_SETLK read lock,
fchmod, fallocate, mmap, linkat AT_EMPTY_PATH; then munmap, unlinkat,
close; attach: openat O_NONBLOCK, fstat, mmap, close, munmap); they come
first and are the ones charted. `../shared/peers`' `create_release_reserve`
(shm_open, ftruncate, fallocate, mmap) and `attach_release_fstat` (shm_open,
fstat, mmap) are the calls of the library before, in rows of their own;
`first_touch_reserve` is first_touch with that reservation.
`create_release_anon` is CreateAnonymous and Close (memfd_create, fchmod,
fallocate, fcntl F_ADD_SEALS, mmap; munmap, close), against lockbench's C
making the same calls; only Go and C have it. Python and
node neither reserve nor fstat, so they are compared with plain C. A ratio
below 1 is faster than C. For GB/s workloads the ratio is C's throughput
over the implementation's.

## Peers, side by side

{chr(10).join(table)}

Ceiling: {', '.join(ceil) if ceil else 'n/a'}.

{msg_section}{py_section}
## Syscalls per op (strace)

{chr(10).join(syscall_table(out))}

## go test -bench (medians over {rounds} runs)

{chr(10).join(gobench_table(gobench(os.path.join(out, "gobench.txt"))))}
"""
    hand_written = open(md_path + ".in").read() if os.path.exists(md_path + ".in") else ""
    if hand_written:
        body += "\n" + hand_written
    open(md_path, "w").write(body)


if __name__ == "__main__":
    main()
