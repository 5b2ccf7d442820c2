#!/usr/bin/env python3
"""Turns bench/compare's raw output into a table, BENCHMARKS.md and a chart.

usage: report.py OUTDIR BENCHMARKS.md CHART.svg
"""
import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections import defaultdict

out, md_path, svg_path = sys.argv[1:4]

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


samples = defaultdict(list)  # (impl, op, size) -> [(ns, gbps)]
rounds = sorted(glob.glob(os.path.join(out, "round-*.jsonl")))
for d in measurements(rounds)[0]:
    samples[(d["impl"], d["op"], d["size"])].append((d["ns_per_op"], d.get("gbps")))


# Messaging (pingpong, stream): bench/compare's pinned runs, msg-R-MODE.jsonl,
# one per round and SHMMAP_PEERS_PIN mode.
MSG_IMPLS = ["go-shmmap", "c-futex-shm", "go-shmmap-taskset", "go-shmmap-spin", "c-spin-shm", "c-pipe", "c-uds", "python-pipe"]
MSG_ROWS = [("pingpong", n) for n in (64, 4096, 64 << 10, 1 << 20, 4 << 20)] + \
    [("stream", n) for n in (64 << 10, 1 << 20)]
msg = defaultdict(list)  # (pin, impl, op, size) -> [(ns, gbps)]
msg_rounds = sorted(glob.glob(os.path.join(out, "msg-*.jsonl")))
for d in measurements(msg_rounds)[0]:
    if d.get("op") in ("pingpong", "stream") and d.get("pin"):
        msg[(d["pin"], d["impl"], d["op"], d["size"])].append((d["ns_per_op"], d["gbps"]))


def msg_med(pin, impl, op, size):
    s = msg.get((pin, impl, op, size))
    if not s:
        return None
    return statistics.median(x[0] for x in s), statistics.median(x[1] for x in s)


def med(impl, op, size):
    s = samples.get((impl, op, size))
    if not s:
        return None
    ns = statistics.median(x[0] for x in s)
    g = [x[1] for x in s if x[1] is not None]
    return ns, (statistics.median(g) if g else None)


def human_size(n):
    if n < 1024:
        return f"{n} B"
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def cost(op, m):
    """The number a workload is judged by, and whether larger is better."""
    ns, gbps = m
    if op.startswith("first_touch") or op.startswith("cross_process"):
        return gbps, True
    return ns, False


rows = []     # one per (workload, impl, C variant compared with)
charted = []  # the rows the chart shows: one per (workload, impl)
for op, size in ROWS:
    for impl in IMPLS:
        m = med(impl, op, size)
        if impl == "c-posix":
            continue
        if m is None:
            continue
        # Go is compared with the C variants doing its work; Python and node
        # (no reservation, no fstat) with plain C.
        fops = FLOORS_FOR_GO[op] if impl == "go-shmmap" else [op]
        measured = [fop for fop in fops if med("c-posix", fop, size)] or fops[:1]
        for i, fop in enumerate(measured):
            f = med("c-posix", fop, size)
            v, higher = cost(op, m)
            ratio = None
            if f is not None:
                fv, _ = cost(op, f)
                if v and fv:
                    ratio = (fv / v) if higher else (v / fv)  # >1: slower than C
            rows.append((op, size, impl, m, fop, f, ratio, len(samples[(impl, op, size)])))
            if i == 0:
                charted.append(rows[-1])


def fmt_m(op, m):
    ns, gbps = m
    if op.startswith("first_touch") or op.startswith("cross_process"):
        return f"{gbps:.3f} GB/s"
    return f"{ns / 1000:.1f} µs"


# go test -bench: allocations and scaling, medians over -count.
# A benchmark of a package other than the root one is named with its path
# (ring/BenchmarkPingPong/64B).
gob = defaultdict(list)
prefix = ""
for line in open(os.path.join(out, "gobench.txt")):
    p = re.match(r"^pkg: github\.com/shmmap-go/shmmap(/\S+)?$", line.strip())
    if p:
        prefix = (p.group(1) or "/")[1:] + ("/" if p.group(1) else "")
        continue
    m = re.match(r"^(Benchmark\S+)-\d+\s+\d+\s+(.*)$", line)
    if m:
        fields = m.group(2).split()
        vals = {fields[i + 1]: float(fields[i]) for i in range(0, len(fields) - 1, 2)}
        gob[prefix + m.group(1)].append(vals)


def gomed(name, unit):
    v = [x[unit] for x in gob.get(name, []) if unit in x]
    return statistics.median(v) if v else None


# Syscalls per op from strace.
def syscalls(impl, op):
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


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gov = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if shutil_which("node") else "none"
    py = platform.python_version()
    return (f"{cpu}, {os.cpu_count()} cpus; Linux {platform.release()}; {gov}; "
            f"Python {py}; node {node}")


def shutil_which(cmd):
    import shutil
    return shutil.which(cmd)


table = ["| workload | size | impl | median | C floor (variant) | ratio to C | n |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
for op, size, impl, m, fop, f, ratio, n in rows:
    table.append(f"| {op} | {human_size(size)} | {impl} | {fmt_m(op, m)} | "
                 f"{fmt_m(op, f) if f else 'n/a'} ({fop}) | "
                 f"{'%.2fx' % ratio if ratio else 'n/a'} | {n} |")
ceil = []
for op in ("memset", "memcpy"):
    m = med("c-posix", op, 256 << 20)
    if m:
        ceil.append(f"{op} {m[1]:.2f} GB/s")

print("\n".join(table))
if ceil:
    print("ceiling (C, 256 MiB already faulted): " + ", ".join(ceil))

# Which C variant bench/compare traced as "c" (../shared/peers) and "c-lock"
# (bench/c/lockbench.c).
TRACED = {"c": {"create_release": "create_release_reserve", "attach_release": "attach_release_fstat"},
          "c-lock": {"create_release": "create_release_lock", "attach_release": "attach_release_nonblock",
                     "create_release_anon": "create_release_anon"}}
sys_rows = ["| op | impl | syscalls per op |", "| --- | --- | --- |"]
for op in ("create_release", "attach_release", "create_release_anon"):
    for impl in ("c-lock", "c", "go"):
        s = syscalls(impl, op)
        if s:
            total = sum(round(v) for v in s.values())
            detail = ", ".join(f"{k} {v:.0f}" for k, v in sorted(s.items()))
            label = f"c-posix ({TRACED[impl][op]})" if impl in TRACED else "go-shmmap"
            sys_rows.append(f"| {op} | {label} | {total}: {detail} |")

alloc_rows = ["| benchmark | ns/op | allocs/op | B/op |", "| --- | --- | --- | --- |"]
if not gob:
    alloc_rows = ["No results: `go test -bench` failed (its output is in bench/out/gobench.txt)."]
    print("report: no go test -bench results", file=sys.stderr)
for name in sorted(gob):
    ns = gomed(name, "ns/op")
    al = gomed(name, "allocs/op")
    b = gomed(name, "B/op")
    alloc_rows.append(f"| {name} | {ns:.0f} | {al if al is not None else ''} | {b if b is not None else ''} |")

# Messaging tables, one per placement. pingpong: median one-way latency;
# stream: GB/s. Ratios: Go's time over C's (pingpong), Go's throughput over
# C's (stream), the Unix socket's time over Go's.
TARGETS = {"futex": 1.3, "stream": 0.8, "spin": 2.0, "uds": 1.5}


def msg_cell(op, m):
    if m is None:
        return "n/a"
    return f"{m[0] / 1000:.2f} µs" if op == "pingpong" else f"{m[1]:.2f} GB/s"


def msg_ratio(op, go, c):
    """Go against C: time ratio for pingpong, throughput ratio for stream."""
    if go is None or c is None:
        return None
    return go[0] / c[0] if op == "pingpong" else go[1] / c[1]


def judged(r, target, higher):
    if r is None:
        return "n/a"
    ok = r >= target if higher else r <= target
    return f"{r:.2f}x {'✓' if ok else '✗'}"


msg_tables = {}
msg_missed = []
for pin in ("same", "split"):
    t = ["| workload | size | go-shmmap | c-futex-shm | Go/C futex | go-shmmap-taskset | its Go/C | go-shmmap-spin | c-spin-shm | spin Go/C | c-pipe | c-uds | python-pipe | c-uds / Go |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for op, size in MSG_ROWS:
        m = {impl: msg_med(pin, impl, op, size) for impl in MSG_IMPLS}
        if not any(m.values()):
            continue
        r = msg_ratio(op, m["go-shmmap"], m["c-futex-shm"])
        cell = judged(r, TARGETS["stream"], True) if op == "stream" else judged(r, TARGETS["futex"], False)
        rs = msg_ratio(op, m["go-shmmap-spin"], m["c-spin-shm"])
        spin_cell = judged(rs, TARGETS["spin"], False) if (op, size) == ("pingpong", 64) else (f"{rs:.2f}x" if rs else "n/a")
        ru = None
        if m["c-uds"] and m["go-shmmap"]:
            ru = m["c-uds"][0] / m["go-shmmap"][0] if op == "pingpong" else m["go-shmmap"][1] / m["c-uds"][1]
        uds_cell = judged(ru, TARGETS["uds"], True) if op == "pingpong" and size >= 1 << 20 else (f"{ru:.2f}x" if ru else "n/a")
        for label, c in (("Go/C futex", cell), ("spin", spin_cell), ("uds", uds_cell)):
            if c.endswith("✗"):
                msg_missed.append(f"{pin} {op} {human_size(size)} {label} {c}")
        r1 = msg_ratio(op, m["go-shmmap-taskset"], m["c-futex-shm"])
        t.append(f"| {op} | {human_size(size)} | {msg_cell(op, m['go-shmmap'])} | {msg_cell(op, m['c-futex-shm'])} | {cell} | "
                 f"{msg_cell(op, m['go-shmmap-taskset'])} | {f'{r1:.2f}x' if r1 else 'n/a'} | "
                 f"{msg_cell(op, m['go-shmmap-spin'])} | {msg_cell(op, m['c-spin-shm'])} | {spin_cell} | "
                 f"{msg_cell(op, m['c-pipe'])} | {msg_cell(op, m['c-uds'])} | {msg_cell(op, m['python-pipe'])} | {uds_cell} |")
    if len(t) > 2:
        msg_tables[pin] = t
for pin, t in msg_tables.items():
    print(f"\nmessaging, SHMMAP_PEERS_PIN={pin}:")
    print("\n".join(t))
if msg_missed:
    print("messaging targets missed: " + "; ".join(msg_missed))

def svg_frame(W, H, title):
    """The start of a chart: its canvas and title."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
            f'<rect width="{W}" height="{H}" fill="white"/>',
            f'<text x="{W/2}" y="20" text-anchor="middle" font-size="14">{title}</text>']


def svg_ticks(svg, ticks, y, left, right):
    """Horizontal lines at ticks (ratios; 1x in black), placed by y."""
    for tick in ticks:
        svg.append(f'<line x1="{left}" x2="{right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{"#000" if tick == 1 else "#ddd"}"/>')
        svg.append(f'<text x="{left-6}" y="{y(tick)+4:.1f}" text-anchor="end">{tick}x</text>')


def svg_legend(svg, colors, left, H, step):
    """A swatch and a name for each of colors, along the bottom."""
    for i, impl in enumerate(colors):
        svg.append(f'<rect x="{left + i*step}" y="{H-22}" width="12" height="12" fill="{colors[impl]}"/>')
        svg.append(f'<text x="{left + i*step + 16}" y="{H-12}">{impl}</text>')


# Chart: ratio to the C floor per workload and implementation (log scale).
colors = {"go-shmmap": "#00add8", "python-shared_memory": "#f2c230", "node-shmmap": "#3c873a",
          "node-shm-typed-array": "#8cc84b"}
groups = [(op, size) for op, size in ROWS]
W, H, left, top, bottom = 900, 420, 70, 40, 110
import math
maxr = max([r[6] for r in charted if r[6]] + [2])
ymax = math.log10(max(maxr * 1.2, 2))
ymin = math.log10(0.5)
def y(v):
    return top + (H - top - bottom) * (ymax - math.log10(v)) / (ymax - ymin)
gw = (W - left - 20) / len(groups)
svg = svg_frame(W, H, "Time relative to the C floor doing the same work (lower is better; log scale)")
svg_ticks(svg, [t for t in (0.5, 1, 2, 5, 10, 20, 50, 100) if math.log10(t) <= ymax], y, left, W - 20)
for gi, (op, size) in enumerate(groups):
    x0 = left + gi * gw
    bars = [r for r in charted if r[0] == op and r[1] == size and r[6]]
    bw = (gw - 10) / max(len(IMPLS) - 1, 1)
    for r in bars:
        bi = [i for i in IMPLS if i != "c-posix"].index(r[2])
        bx = x0 + 5 + bi * bw
        svg.append(f'<rect x="{bx:.1f}" y="{min(y(r[6]), y(1)):.1f}" width="{bw-2:.1f}" '
                   f'height="{abs(y(1)-y(r[6])):.1f}" fill="{colors[r[2]]}"><title>{r[2]} {op} {human_size(size)}: {r[6]:.2f}x</title></rect>')
    label = f"{op.replace('_', ' ')}"
    svg.append(f'<text transform="translate({x0+gw/2:.1f},{H-bottom+12}) rotate(30)" font-size="10">{label} {human_size(size)}</text>')
svg_legend(svg, colors, left, H, 200)
svg.append("</svg>")
open(svg_path, "w").write("\n".join(svg) + "\n")

# Messaging chart: each implementation's time relative to the C futex ring
# (pingpong: one-way latency; stream: time per byte), per placement.
msg_svg_path = os.path.join(os.path.dirname(svg_path), "messaging.svg")
MSG_COLORS = {"go-shmmap": "#00add8", "go-shmmap-taskset": "#1b6f85", "go-shmmap-spin": "#5dc9e2", "c-spin-shm": "#999999",
              "c-pipe": "#c0504d", "c-uds": "#9b59b6", "python-pipe": "#f2c230"}
mgroups = [(pin, op, size) for pin in ("same", "split") for op, size in MSG_ROWS]
bars = []  # (group index, impl, ratio)
for gi, (pin, op, size) in enumerate(mgroups):
    c = msg_med(pin, "c-futex-shm", op, size)
    for impl in MSG_COLORS:
        m = msg_med(pin, impl, op, size)
        if c and m:
            bars.append((gi, impl, m[0] / c[0] if op == "pingpong" else c[1] / m[1]))
if bars:
    W, H, left, top, bottom = 1000, 440, 70, 40, 120
    vals = [b[2] for b in bars]
    ymax = math.log10(max(max(vals) * 1.2, 2))
    ymin = math.log10(min(min(vals) / 1.2, 0.5))

    def my(v):
        return top + (H - top - bottom) * (ymax - math.log10(v)) / (ymax - ymin)
    gw = (W - left - 20) / len(mgroups)
    bw = (gw - 6) / len(MSG_COLORS)
    svg = svg_frame(W, H, "Messaging: time relative to the C futex ring (lower is better; log scale), pinned same CPU | split")
    svg_ticks(svg, [t for t in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5, 1, 2, 5, 10, 20, 50, 100)
                    if ymin <= math.log10(t) <= ymax], my, left, W - 20)
    half = left + gw * len(MSG_ROWS)
    svg.append(f'<line x1="{half:.1f}" x2="{half:.1f}" y1="{top}" y2="{H-bottom}" stroke="#888" stroke-dasharray="4"/>')
    for gi, impl, r in bars:
        bx = left + gi * gw + 3 + list(MSG_COLORS).index(impl) * bw
        pin, op, size = mgroups[gi]
        svg.append(f'<rect x="{bx:.1f}" y="{min(my(r), my(1)):.1f}" width="{bw-1:.1f}" height="{abs(my(1)-my(r)):.1f}" '
                   f'fill="{MSG_COLORS[impl]}"><title>{impl} {op} {human_size(size)} ({pin}): {r:.2f}x</title></rect>')
    for gi, (pin, op, size) in enumerate(mgroups):
        x0 = left + gi * gw
        svg.append(f'<text transform="translate({x0+gw/2:.1f},{H-bottom+12}) rotate(30)" font-size="10">{pin} {op} {human_size(size)}</text>')
    svg_legend(svg, MSG_COLORS, left, H, 150)
    svg.append("</svg>")
    open(msg_svg_path, "w").write("\n".join(svg) + "\n")

msg_section = ""
if msg_tables:
    msg_section = f"""
## Messaging: package ring against the peers ({len(msg_rounds) // 2} rounds per placement; medians)

![messaging time relative to the C futex ring](bench/messaging.svg)

pingpong: median one-way latency (round trip / 2), each side reading every
byte it receives and answering with a message of the same size; stream:
GB/s through a ring of 8 messages' capacity (Go's holds 7: each record has
an 8-byte head). In `go-shmmap`, the goroutine that sends and receives is
locked to its thread and that thread pinned, where the C peers pin their
one thread; the Go runtime's other threads keep every CPU and GOMAXPROCS
its unpinned value (see bench/ringbench.Pin). `go-shmmap-taskset` pins
the whole process to the one CPU with GOMAXPROCS=1, as `taskset` and Go's
default make it: there sysmon runs beside the worker, and every sleep of
more than ~20 µs has the runtime take the sleeping thread's only P and
hand it back, on the worker's CPU. `go-shmmap-spin` is the ring with `SetSpin(100µs)` on both
ends, beside `c-spin-shm`, which spins without a limit; neither runs with
both processes on one CPU. ✓/✗: the targets of issue 11, Go within
{TARGETS['futex']}x the C futex ring's latency and at least
{TARGETS['stream']}x its stream throughput, spinning within {TARGETS['spin']}x
the C spinning ring at 64 B, and at 1 MiB and 4 MiB at least
{TARGETS['uds']}x faster than a Unix socket.
"""
    for pin, t in msg_tables.items():
        where = "both processes on one CPU" if pin == "same" else "the two processes on two CPUs"
        msg_section += f"\n### SHMMAP_PEERS_PIN={pin}: {where}\n\n" + "\n".join(t) + "\n"
    if msg_missed:
        msg_section += "\nTargets missed in this run: " + "; ".join(msg_missed) + ".\n"

md = open(md_path + ".in").read() if os.path.exists(md_path + ".in") else ""
body = f"""# Benchmarks

Produced by `bench/compare` in one run ({len(rounds)} interleaved rounds; medians) on:
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

{msg_section}
## Syscalls per op (strace)

{chr(10).join(sys_rows)}

## go test -bench (medians over {len(rounds)} runs)

{chr(10).join(alloc_rows)}
"""
if md:
    body += "\n" + md
open(md_path, "w").write(body)
