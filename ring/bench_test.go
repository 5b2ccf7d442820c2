package ring_test

// The benchmarks run between two processes, as the shared peers' pingpong
// and stream do (see bench/ringbench for the payload): this test binary
// and a child, the same binary run with benchChildEnv set, which TestMain
// cannot dispatch from package ring_test, so the child's work starts from
// init. SHMMAP_PEERS_PIN=same|split pins both as the peers pin theirs. The
// child runs with this process' GOMAXPROCS, so that go test -cpu 1,2 gives
// both processes one P, then two. Each size runs with each way of sending
// (bench/ringbench.Sender): send (Producer.Send), copy (copy() into a
// reservation) and tuned (the harness's own copy).

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/bench/ringbench"
	"github.com/shmmap-go/shmmap/ring"
)

const benchChildEnv = "SHMMAP_RING_BENCH_CHILD"

func init() {
	args := os.Getenv(benchChildEnv)
	if args == "" {
		return
	}
	f := strings.Fields(args)
	s, err := ringbench.ParseSender(f[0])
	if err == nil {
		err = ringbench.Child(f[1:], 0, s)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		os.Exit(1)
	}
	shmmap.ReleaseAll()
	os.Exit(0)
}

// startBenchChild starts the child with args, sending as s, and returns
// its stdout.
func startBenchChild(b *testing.B, s ringbench.Sender, args string) (*exec.Cmd, *bufio.Reader) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), benchChildEnv+"="+s.String()+" "+args, fmt.Sprint("GOMAXPROCS=", runtime.GOMAXPROCS(0)))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd, bufio.NewReader(out)
}

// sharePayload makes the payload of size bytes that the child shares, sent
// as s; it is released in cleanup.
func sharePayload(b *testing.B, size int, s ringbench.Sender) (string, *ringbench.Payload) {
	key, p, err := ringbench.SharePayload(size)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shmmap.Release(key) })
	return key, p.Use(s)
}

var senders = []ringbench.Sender{ringbench.OneCall, ringbench.PlainCopy, ringbench.Tuned}

// pin pins the goroutine of b as SHMMAP_PEERS_PIN asks (see
// ringbench.Pin): each benchmark runs in a goroutine of its own.
func pin(b *testing.B) {
	if _, err := ringbench.Pin(false); err != nil {
		b.Fatal(err)
	}
}

var pingSizes = []int{64, 4 << 10, 64 << 10, 1 << 20, 4 << 20}

// BenchmarkPingPong: one op is a round trip, this process sending a
// message that the child reads (every byte) and answers with one of the
// same size, which this process reads; ns/oneway is half of it.
func BenchmarkPingPong(b *testing.B) {
	for _, size := range pingSizes {
		for _, sender := range senders {
			b.Run(sizeName(size)+"/"+sender.String(), func(b *testing.B) { pingPong(b, size, sender) })
		}
	}
}

func pingPong(b *testing.B, size int, sender ringbench.Sender) {
	pin(b)
	out, err := ring.CreateProducer(ringbench.PingPongCapacity(size))
	if err != nil {
		b.Fatal(err)
	}
	in, err := ring.CreateConsumer(ringbench.PingPongCapacity(size))
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	payload, p := sharePayload(b, size, sender)
	cmd, _ := startBenchChild(b, sender, fmt.Sprint("echo ", out.Key(), " ", in.Key(), " ", payload, " ", size))
	ctx := context.Background()
	var i uint64
	trip := func() {
		if err := p.Send(ctx, out, i); err != nil {
			b.Fatal(err)
		}
		if err := p.Recv(ctx, in, i); err != nil {
			b.Fatal(err)
		}
		i++
	}
	for range 3 {
		trip()
	}
	b.SetBytes(int64(2 * size))
	b.ResetTimer()
	for b.Loop() {
		trip()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2, "ns/oneway")
	b.StopTimer()
	out.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStream: this process produces messages as fast as the child
// consumes (checks) them, through a ring of 8 messages' capacity; the clock
// stops when the child has read the last.
func BenchmarkStream(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		for _, sender := range senders {
			b.Run(sizeName(size)+"/"+sender.String(), func(b *testing.B) { stream(b, size, sender) })
		}
	}
}

func stream(b *testing.B, size int, sender ringbench.Sender) {
	pin(b)
	out, err := ring.CreateProducer(8 * size)
	if err != nil {
		b.Fatal(err)
	}
	payload, p := sharePayload(b, size, sender)
	cmd, lines := startBenchChild(b, sender, fmt.Sprint("sink ", out.Key(), " ", payload, " ", size))
	ctx := context.Background()
	var i uint64
	for ; i < 32; i++ {
		if err := p.Send(ctx, out, i); err != nil {
			b.Fatal(err)
		}
	}
	if l, _ := lines.ReadString('\n'); l != "warm\n" {
		b.Fatalf("child: %q", l)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for range b.N {
		if err := p.Send(ctx, out, i); err != nil {
			b.Fatal(err)
		}
		i++
	}
	out.Close()
	l, _ := lines.ReadString('\n')
	b.StopTimer()
	if want := fmt.Sprintf("done %d\n", i); l != want {
		b.Fatalf("child: %q, want %q", l, want)
	}
	if err := cmd.Wait(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCalls: the calls themselves, in one goroutine that never
// waits: one op is a message of 64 bytes reserved, committed, taken and
// released.
func BenchmarkCalls(b *testing.B) {
	p, err := ring.CreateProducer(1 << 16)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	c, err := ring.OpenConsumer(p.Key())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for b.Loop() {
		buf, err := p.Reserve(ctx, 64)
		if err != nil {
			b.Fatal(err)
		}
		buf[0] = 1
		p.Commit(len(buf))
		if m, err := c.Next(ctx); err != nil || len(m) != 64 {
			b.Fatal(len(m), err)
		}
		c.Release()
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
