// Command shmbench measures package shmmap on the workloads of the shared
// peer benchmarks (create_release, attach_release, first_touch,
// cross_process, and the messaging workloads pingpong and stream through
// package ring), with the same timing loop, and prints the same JSON lines,
// so that it runs beside the C, Python and node peers:
//
//	../shared/peers/run --with 'go run ./cmd/shmbench'
//
// Flags: --quick (0.1 s per measurement instead of 1 s, one cross_process
// repetition instead of 3) and --ops a,b,... (only these workloads). Besides
// the common workloads it measures first_touch_populate and
// cross_process_populate, with the Populate option, and create_release_anon:
// CreateAnonymous and Close, an anonymous segment's create_release. With
// --spin D it measures only pingpong and stream, as impl go-shmmap-spin,
// with both ends spinning up to D before they sleep (ring's SetSpin).
// With --send M it measures only pingpong and stream too, with the
// messages sent as M says: "copy", copy() of a message in this process'
// memory into a reservation (impl go-shmmap-copy), or "send", the same
// message sent with ring's Producer.Send (go-shmmap-send); by default, and
// with "tuned", the harness copies a pattern that both processes share in
// pieces of 256 KiB (see bench/ringbench). --name N reports the lines as
// impl N (bench/compare runs a variant pinned whole, with GOMAXPROCS=1, as
// go-shmmap-gomaxprocs1).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/bench/ringbench"
	"github.com/shmmap-go/shmmap/internal/bytesum"
)

const (
	big  = 256 << 20
	page = 4096
)

var (
	impl   = "go-shmmap"
	target = time.Second
	reps   = 3
	spin   time.Duration    // --spin: both ends' ring.SetSpin
	sender ringbench.Sender // --send: how the ring's producers send
	name   string           // --name: the impl to report, instead of impl
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("shmbench: ")
	args := os.Args[1:]
	var ops []string
	for len(args) > 0 {
		switch args[0] {
		case "--quick":
			target, reps = 100*time.Millisecond, 1
		case "--spin":
			if len(args) < 2 {
				log.Fatal("--spin needs a duration")
			}
			d, err := time.ParseDuration(args[1])
			if err != nil || d <= 0 {
				log.Fatalf("--spin %q: want a positive duration", args[1])
			}
			spin, impl = d, "go-shmmap-spin"
			args = args[1:]
		case "--send":
			if len(args) < 2 {
				log.Fatal("--send needs copy, send or tuned")
			}
			s, err := ringbench.ParseSender(args[1])
			if err != nil {
				log.Fatal(err)
			}
			sender = s
			if s != ringbench.Tuned {
				impl = "go-shmmap-" + s.String()
			}
			args = args[1:]
		case "--name":
			if len(args) < 2 {
				log.Fatal("--name needs a name")
			}
			name = args[1]
			args = args[1:]
		case "--ops":
			if len(args) < 2 {
				log.Fatal("--ops needs a list")
			}
			ops = strings.Split(args[1], ",")
			args = args[1:]
		case "--child":
			if len(args) < 3 {
				log.Fatal("--child needs a key and a size")
			}
			child(args[1], args[2], len(args) > 3 && args[3] == "populate")
			return
		case "--child-noop":
			return
		case "--ring-child":
			ringChild(args[1:])
			return
		case "--hold":
			if len(args) < 2 {
				log.Fatal("--hold needs a size")
			}
			hold(args[1])
			return
		default:
			log.Fatalf("unknown argument %q", args[0])
		}
		args = args[1:]
	}
	defer shmmap.ReleaseAll()
	if name != "" {
		impl = name
	}
	want := func(op string) bool { return ops == nil || slices.Contains(ops, op) }
	if spin > 0 || sender != ringbench.Tuned { // a variant of the messaging workloads only
		want = func(op string) bool {
			return (op == "pingpong" || op == "stream") && (ops == nil || slices.Contains(ops, op))
		}
	}

	for _, size := range []int{4096, 1 << 20} {
		if want("create_release") {
			emit("create_release", size, measure(func(n int) { createRelease(n, size) }))
		}
		if want("create_release_anon") {
			emit("create_release_anon", size, measure(func(n int) { createReleaseAnon(n, size) }))
		}
		if want("attach_release") {
			key, remove := fixture(size)
			emit("attach_release", size, measure(func(n int) { attachRelease(n, key, size) }))
			remove()
		}
	}
	for _, populate := range []bool{false, true} {
		op := "first_touch" + suffix(populate)
		if want(op) {
			emit(op, big, measure(func(n int) { firstTouch(n, populate) }))
		}
	}
	for _, populate := range []bool{false, true} {
		if op := "cross_process" + suffix(populate); want(op) {
			crossProcess(op, populate)
		}
	}
	if want("pingpong") || want("stream") {
		pinMode = pin(false)
	}
	if want("pingpong") {
		for _, size := range []int{64, 4096, 64 << 10, 1 << 20, 4 << 20} {
			pingpong(size)
		}
	}
	if want("stream") {
		for _, size := range []int{64 << 10, 1 << 20} {
			stream(size)
		}
	}
}

func suffix(populate bool) string {
	if populate {
		return "_populate"
	}
	return ""
}

func opts(populate bool) []shmmap.Option {
	if populate {
		return []shmmap.Option{shmmap.Populate()}
	}
	return nil
}

func createRelease(n, size int) {
	for range n {
		key, _, err := shmmap.Create(size)
		check(err)
		check(shmmap.Release(key))
	}
}

func createReleaseAnon(n, size int) {
	for range n {
		m, err := shmmap.CreateAnonymous(size)
		check(err)
		check(m.Close())
	}
}

// fixture makes a segment for attach_release in another process (this
// binary, --hold), as a service's worker finds it: a Release in the process
// that created a segment also removes its name, and the workload needs a
// segment that stays. It works wherever package shmmap does, macOS too.
func fixture(size int) (key string, remove func()) {
	exe, err := os.Executable()
	check(err)
	cmd := exec.Command(exe, "--hold", strconv.Itoa(size))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	check(err)
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		log.Fatalf("--hold: %v", err)
	}
	return strings.TrimSpace(line), func() {
		stdin.Close()
		check(cmd.Wait())
	}
}

// hold creates a segment of size bytes, prints its key, and holds it until
// stdin closes; Release then removes it.
func hold(size string) {
	n, err := strconv.Atoi(size)
	check(err)
	key, _, err := shmmap.Create(n)
	check(err)
	fmt.Println(key)
	io.Copy(io.Discard, os.Stdin)
	check(shmmap.Release(key))
}

func attachRelease(n int, key string, size int) {
	for range n {
		_, err := shmmap.ReadWrite(key, size)
		check(err)
		check(shmmap.Release(key))
	}
}

func firstTouch(n int, populate bool) {
	for range n {
		key, data, err := shmmap.Create(big, opts(populate)...)
		check(err)
		for off := 0; off < len(data); off += page {
			data[off] = 1
		}
		check(shmmap.Release(key))
	}
}

type result struct {
	iters int
	ns    float64
}

// measure runs op in batches of n, as testing.B does: n starts at 1 and
// grows (at most 100x, aiming 20% past the target) until a batch takes at
// least target; it returns that batch's time per op.
func measure(op func(n int)) result {
	n := 1
	for {
		start := time.Now()
		op(n)
		d := time.Since(start)
		if d >= target || n >= 1e9 {
			return result{n, float64(d.Nanoseconds()) / float64(n)}
		}
		perOp := max(d.Nanoseconds()/int64(n), 1)
		next := int(float64(target.Nanoseconds()) * 1.2 / float64(perOp))
		n = max(min(next, 100*n), n+1)
	}
}

func emit(op string, size int, r result) {
	gbps := "null"
	if strings.HasPrefix(op, "first_touch") {
		gbps = fmt.Sprintf("%.3f", float64(size)/r.ns)
	}
	fmt.Printf(`{"impl":%q,"op":%q,"size":%d,"iters":%d,"ns_per_op":%.1f,"gbps":%s}`+"\n",
		impl, op, size, r.iters, r.ns, gbps)
}

// crossProcess: the parent creates big bytes and fills them with 1s; a child
// (this binary, --child) attaches by key, sums every byte and detaches.
// Reported as the peers do: medians of wall (spawn to exit), spawn (a child
// that does nothing) and the child's own clock.
func crossProcess(op string, populate bool) {
	key, data, err := shmmap.Create(big, opts(populate)...)
	check(err)
	defer shmmap.Release(key)
	for i := range data {
		data[i] = 1
	}
	exe, err := os.Executable()
	check(err)
	var spawn, wall, childNs []int64
	for range reps {
		s, _ := run(exe, "--child-noop")
		spawn = append(spawn, s)
		args := []string{"--child", key, strconv.Itoa(big)}
		if populate {
			args = append(args, "populate")
		}
		w, out := run(exe, args...)
		var res struct {
			ChildNs int64 `json:"child_ns"`
			Sum     int64 `json:"sum"`
		}
		if err := json.Unmarshal(out, &res); err != nil || res.Sum != big {
			log.Fatalf("child printed %q (%v), want a sum of %d", out, err, big)
		}
		wall, childNs = append(wall, w), append(childNs, res.ChildNs)
	}
	sp, wa, ch := median(spawn), median(wall), median(childNs)
	fmt.Printf(`{"impl":%q,"op":%q,"size":%d,"iters":%d,"ns_per_op":%.1f,"gbps":%.3f,"wall_ns":%d,"spawn_ns":%d,"child_ns":%d}`+"\n",
		impl, op, big, reps, float64(wa-sp), float64(big)/float64(ch), wa, sp, ch)
}

func run(exe string, args ...string) (int64, []byte) {
	var out bytes.Buffer
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start).Nanoseconds()
	if err != nil {
		log.Fatalf("child %q: %v", args, err)
	}
	return d, out.Bytes()
}

func median(v []int64) int64 {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

func child(key, sizeArg string, populate bool) {
	start := time.Now()
	size, err := strconv.Atoi(sizeArg)
	check(err)
	data, err := shmmap.Read(key, size, opts(populate)...)
	check(err)
	sum := bytesum.Sum(data)
	check(shmmap.Release(key))
	fmt.Printf(`{"child_ns":%d,"sum":%d}`+"\n", time.Since(start).Nanoseconds(), sum)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
