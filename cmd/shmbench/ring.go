package main

// The messaging workloads of ../shared/peers (pingpong, stream) through
// package ring: this process and a child (this binary, --ring-child), each
// message read in place in full and checked, as the peers do, and copied
// from a pattern both share, as the C peers' forked processes do (see
// bench/ringbench). With SHMMAP_PEERS_PIN set both are pinned as the
// peers pin theirs, and the lines carry "pin".

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"time"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/bench/ringbench"
	"github.com/shmmap-go/shmmap/ring"
)

// pinMode is SHMMAP_PEERS_PIN as applied, or "".
var pinMode string

func pin(child bool) string {
	mode, err := ringbench.Pin(child)
	check(err)
	return mode
}

// ringChild runs the child of pingpong or stream (ringbench.Child).
func ringChild(args []string) { check(ringbench.Child(args, spin, sender)) }

func startRingChild(args ...string) (*exec.Cmd, *bufio.Reader) {
	exe, err := os.Executable()
	check(err)
	args = append([]string{"--ring-child"}, args...)
	if spin > 0 {
		args = append([]string{"--spin", spin.String()}, args...)
	}
	args = append([]string{"--send", sender.String()}, args...)
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	return cmd, bufio.NewReader(out)
}

// pingpong times round trips one by one, as the peers do: a tenth of the
// target of untimed ones (at least 3), then a target of timed ones (at
// least 10 unless that takes 3 targets; at most 200,000 with --quick), and
// reports the median one way.
func pingpong(size int) {
	if spinning("pingpong", size) {
		return
	}
	out, err := ring.CreateProducer(ringbench.PingPongCapacity(size))
	check(err)
	in, err := ring.CreateConsumer(ringbench.PingPongCapacity(size))
	check(err)
	defer in.Close()
	out.SetSpin(spin)
	in.SetSpin(spin)
	payload, p, err := ringbench.SharePayload(size)
	check(err)
	defer shmmap.Release(payload)
	p.Use(sender)
	cmd, _ := startRingChild("echo", out.Key(), in.Key(), payload, strconv.Itoa(size))
	ctx := context.Background()
	// One clock read per round trip, as the C peers make: it lies on the
	// path the round trip measures, and time.Now costs two reads of the
	// vDSO clock (wall and monotonic), time.Since one.
	base := time.Now()
	now := func() time.Duration { return time.Since(base) }
	var i uint64
	trip := func() {
		check(p.Send(ctx, out, i))
		check(p.Recv(ctx, in, i))
		i++
	}
	for t := now(); i < 3 || t < target/10; t = now() {
		trip()
	}
	maxTrips := 2_000_000
	if target < time.Second {
		maxTrips = 200_000
	}
	rtt := make([]int64, 0, maxTrips)
	start := now()
	for t := start; (t-start < target || len(rtt) < 10) && len(rtt) < maxTrips && t-start < 3*target; {
		trip()
		t1 := now()
		rtt = append(rtt, int64(t1-t))
		t = t1
	}
	out.Close()
	check(cmd.Wait())
	sort.Slice(rtt, func(a, b int) bool { return rtt[a] < rtt[b] })
	med := float64(rtt[len(rtt)/2]) / 2
	fmt.Printf(`{"impl":%q,"op":"pingpong","size":%d,"iters":%d,"ns_per_op":%.1f,"gbps":%.3f,"min_ns":%.1f,"p99_ns":%.1f%s}`+"\n",
		impl, size, len(rtt), med, float64(size)/med, float64(rtt[0])/2, float64(rtt[len(rtt)*99/100])/2, pinField())
}

// stream: 32 messages of warm-up, acknowledged by the child; then the
// clock runs while this process sends until 1 GiB is sent or the target
// has passed, and stops when the child reports that it has read all. The
// ring holds 8 messages' worth (less their 16-byte record heads).
func stream(size int) {
	if spinning("stream", size) {
		return
	}
	out, err := ring.CreateProducer(8 * size)
	check(err)
	out.SetSpin(spin)
	payload, p, err := ringbench.SharePayload(size)
	check(err)
	defer shmmap.Release(payload)
	p.Use(sender)
	cmd, lines := startRingChild("sink", out.Key(), payload, strconv.Itoa(size))
	ctx := context.Background()
	var i uint64
	for ; i < 32; i++ {
		check(p.Send(ctx, out, i))
	}
	if l, _ := lines.ReadString('\n'); l != "warm\n" {
		log.Fatalf("stream child: %q", l)
	}
	start := time.Now()
	var n, bytes int64
	for bytes < 1<<30 && time.Since(start) < target {
		check(p.Send(ctx, out, i))
		i++
		n++
		bytes += int64(size)
	}
	check(out.Close())
	l, _ := lines.ReadString('\n')
	d := time.Since(start)
	if want := fmt.Sprintf("done %d\n", i); l != want {
		log.Fatalf("stream child: %q, want %q", l, want)
	}
	check(cmd.Wait())
	fmt.Printf(`{"impl":%q,"op":"stream","size":%d,"iters":%d,"ns_per_op":%.1f,"gbps":%.3f,"bytes":%d%s}`+"\n",
		impl, size, n, float64(d.Nanoseconds())/float64(n), float64(bytes)/float64(d.Nanoseconds()), bytes, pinField())
}

// spinning reports, with the line the C spinning peer prints, that op is
// not run: spinning ends pinned to one CPU take turns at wasting it.
func spinning(op string, size int) bool {
	if spin == 0 || pinMode != "same" {
		return false
	}
	fmt.Printf(`{"impl":%q,"op":%q,"size":%d,"error":"not run: SHMMAP_PEERS_PIN=same leaves one CPU to two spinners"}`+"\n", impl, op, size)
	return true
}

func pinField() string {
	if pinMode == "" {
		return ""
	}
	return fmt.Sprintf(`,"pin":%q`, pinMode)
}
