//go:build linux

package ring

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/internal/peer"
	"golang.org/x/sys/unix"
)

// The tests here run the module's Python package (python/shmmap, its ring
// module and C extension) against this package, through
// testdata/ring_peer.py: streams both ways, ends of stream both ways, and a
// peer killed while the other waits, both ways.

// pyCount is the length of each stream: 100,000 messages of random sizes up
// to the ring's maximum.
const pyCount = 100_000

// pyStreamSizes returns the lengths of the first count messages of
// ring_peer.py's stream on a ring whose messages hold up to max bytes: an
// LCG's top bits modulo max + 1, with max every 1000th message and 0 the
// next, so that both ends occur.
func pyStreamSizes(count, max int) []int {
	sizes := make([]int, count)
	x := uint64(1)
	for i := range sizes {
		x = x*6364136223846793005 + 1442695040888963407
		switch i % 1000 {
		case 0:
			sizes[i] = max
		case 1:
			sizes[i] = 0
		default:
			sizes[i] = int((x >> 33) % uint64(max+1))
		}
	}
	return sizes
}

// pyPattern is the stream's pattern: message i is pyPattern[i%251:][:n].
func pyPattern(max int) []byte {
	b := make([]byte, max+251)
	for j := range b {
		b[j] = byte(j*131 + 7)
	}
	return b
}

// pyCPUs returns the CPUs for the Go end and the Python end in pin mode
// ("same": both on the first CPU this process may use; "split": the first
// two), skipping t where there are too few.
func pyCPUs(t *testing.T, mode string) (goCPU, pyCPU int) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < len(set)*64 && len(cpus) < 2; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if mode == "same" {
		return cpus[0], cpus[0]
	}
	if len(cpus) < 2 {
		t.Skipf("pin mode split needs 2 CPUs, this process has %d", set.Count())
	}
	return cpus[0], cpus[1]
}

// pinned runs f in a goroutine locked to a thread pinned to cpu, and
// returns its error. The goroutine exits locked, so that its thread, still
// pinned, ends with it rather than return to the runtime's pool.
func pinned(cpu int, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var one unix.CPUSet
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			done <- err
			return
		}
		done <- f()
	}()
	return <-done
}

// pyPeer starts testdata/ring_peer.py with args, its stdout a line reader
// and its stdin a pipe (in stdin); it is killed if it outlives the test.
func pyPeer(t *testing.T, stdin *io.WriteCloser, args ...string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	py, env := peer.PythonPackage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, py, append([]string{"testdata/ring_peer.py"}, args...)...)
	cmd.Env = env
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if stdin != nil {
		if *stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, bufio.NewReader(out), stderr
}

// nextLine reads the next line of out, with its newline (without one at
// the end of the output), in a goroutine of its own, and sends it.
func nextLine(out *bufio.Reader) <-chan string {
	ch := make(chan string, 1)
	go func() {
		s, _ := out.ReadString('\n')
		ch <- s
	}()
	return ch
}

// pyLine reads a line of the Python peer's output, failing t with its
// stderr if there is none within a minute.
func pyLine(t *testing.T, out *bufio.Reader, stderr *bytes.Buffer) string {
	t.Helper()
	select {
	case s := <-nextLine(out):
		if !strings.HasSuffix(s, "\n") {
			t.Fatalf("the Python peer ended its output with %q; stderr:\n%s", s, stderr)
		}
		return strings.TrimSuffix(s, "\n")
	case <-time.After(time.Minute):
		t.Fatalf("the Python peer printed nothing for a minute")
		return ""
	}
}

// TestPythonStream sends pyCount messages of random sizes, up to the
// ring's maximum, from a Go producer to a Python consumer and from a Python
// producer to a Go consumer, with both processes on one CPU and on two:
// the consumer checks each message's length (the Go one its bytes too) and
// the end of the stream, and the test compares count, total and CRC-32 on
// both sides. The Go producer creates its ring and the Python consumer
// opens it; the Python producer creates its ring and the Go consumer opens
// it.
func TestPythonStream(t *testing.T) {
	for _, mode := range []string{"same", "split"} {
		t.Run("go-to-python/"+mode, func(t *testing.T) { goToPython(t, mode) })
		t.Run("python-to-go/"+mode, func(t *testing.T) { pythonToGo(t, mode) })
	}
}

func goToPython(t *testing.T, mode string) {
	keys := checkLeaks(t)
	goCPU, pyCPU := pyCPUs(t, mode)
	p, err := CreateProducer(4096)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, p.Key())
	closed := false
	defer func() {
		if !closed {
			p.Close()
		}
	}()
	cmd, out, stderr := pyPeer(t, nil, "consume", p.Key(), strconv.Itoa(pyCount), strconv.Itoa(pyCPU))
	pat := pyPattern(p.MaxMessage())
	var total int
	var crc uint32
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err = pinned(goCPU, func() error {
		for i, n := range pyStreamSizes(pyCount, p.MaxMessage()) {
			msg := pat[i%251:][:n]
			if err := p.Send(ctx, msg); err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
			crc = crc32.Update(crc, crc32.IEEETable, msg)
			total += n
		}
		return nil
	})
	closed = true
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	pyStreamDone(t, err, cmd, out, stderr, total, crc, start)
}

// pyStreamDone ends a stream of pyCount messages, total bytes with CRC-32
// crc, that started at start: it fails t with the Go side's err, then
// compares the Python peer's summary line with Go's and waits for it.
func pyStreamDone(t *testing.T, err error, cmd *exec.Cmd, out *bufio.Reader, stderr *bytes.Buffer, total int, crc uint32, start time.Time) {
	t.Helper()
	if err != nil {
		t.Fatalf("%v; python's stderr:\n%s", err, stderr)
	}
	got := pyLine(t, out, stderr)
	if werr := cmd.Wait(); werr != nil {
		t.Fatalf("python: %v\n%s", werr, stderr)
	}
	t.Logf("%d messages, %d bytes in %v", pyCount, total, time.Since(start).Round(time.Millisecond))
	if want := fmt.Sprintf("count %d bytes %d crc32 %d", pyCount, total, crc); got != want {
		t.Errorf("python printed %q, want %q", got, want)
	}
}

func pythonToGo(t *testing.T, mode string) {
	keys := checkLeaks(t)
	goCPU, pyCPU := pyCPUs(t, mode)
	cmd, out, stderr := pyPeer(t, nil, "produce", strconv.Itoa(pyCount), strconv.Itoa(pyCPU))
	key := pyLine(t, out, stderr)
	*keys = append(*keys, key)
	t.Cleanup(func() { shmmap.Unlink(key) }) // if the Python creator dies
	c, err := OpenConsumer(key)
	if err != nil {
		t.Fatalf("%v; python's stderr:\n%s", err, stderr)
	}
	defer c.Close()
	pat := pyPattern(c.MaxMessage())
	var total int
	var crc uint32
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	err = pinned(goCPU, func() error {
		for i, n := range pyStreamSizes(pyCount, c.MaxMessage()) {
			b, err := c.Next(ctx)
			if err != nil {
				return fmt.Errorf("message %d: %w", i, err)
			}
			if !bytes.Equal(b, pat[i%251:][:n]) {
				return fmt.Errorf("message %d: %d bytes, not the %d of the stream", i, len(b), n)
			}
			crc = crc32.Update(crc, crc32.IEEETable, b)
			total += n
			c.Release()
		}
		if b, err := c.Next(ctx); err != io.EOF {
			return fmt.Errorf("after the last message: %d bytes, %v; want io.EOF", len(b), err)
		}
		return nil
	})
	pyStreamDone(t, err, cmd, out, stderr, total, crc, start)
}

// TestPythonProducerKilled: a Go consumer, the creator, reads every message
// a Python producer committed, then waits while the producer, killed with
// SIGKILL in the middle of its next message, dies: Next returns
// ErrPeerGone within peerGoneWithin, never the torn message.
func TestPythonProducerKilled(t *testing.T) {
	keys := checkLeaks(t)
	c, err := CreateConsumer(4096)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, c.Key())
	defer c.Close()
	const count = 10
	cmd, out, stderr := pyPeer(t, nil, "produce-and-hang", c.Key(), strconv.Itoa(count))
	pat := pyPattern(c.MaxMessage())
	for i, n := range pyStreamSizes(count, c.MaxMessage()) {
		b, err := c.Next(context.Background())
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(b, pat[i%251:][:n]) {
			t.Fatalf("message %d: %d bytes, not the %d of the stream", i, len(b), n)
		}
		c.Release()
	}
	if got := pyLine(t, out, stderr); got != "ready" {
		t.Fatalf("python: %q", got)
	}
	expectGone(t, func() {
		cmd.Process.Kill()
		cmd.Wait()
	}, nextError(c))
}

// TestPythonConsumerSeesDeath: a Python consumer, the opener, reads every
// message a Go producer (a child, the creator) committed, then waits; the
// producer is killed in the middle of its next message, and the consumer
// must raise PeerGone within peerGoneWithin of the kill.
func TestPythonConsumerSeesDeath(t *testing.T) {
	keys := checkLeaks(t)
	child, key := startCreator(t, keys, "10")
	cmd, out, stderr := pyPeer(t, nil, "consume-until-gone", key, "10")
	if got := pyLine(t, out, stderr); got != "waiting" {
		t.Fatalf("python: %q", got)
	}
	pyExpectGone(t, func() { child.Kill(t) }, cmd, out, stderr)
}

// TestPythonProducerSeesDeath: a Python producer, the creator, fills its
// ring and waits for room; the Go consumer (a child, the opener) is killed,
// and the producer must raise PeerGone within peerGoneWithin of the kill.
func TestPythonProducerSeesDeath(t *testing.T) {
	keys := checkLeaks(t)
	var stdin io.WriteCloser
	cmd, out, stderr := pyPeer(t, &stdin, "fill-until-gone")
	key := pyLine(t, out, stderr)
	*keys = append(*keys, key)
	t.Cleanup(func() { shmmap.Unlink(key) })
	child := helpers.Start(t, "open-consumer-and-hang", key)
	if got := child.Line(t); got != "ready" {
		t.Fatalf("child: %q", got)
	}
	if _, err := io.WriteString(stdin, "\n"); err != nil {
		t.Fatal(err)
	}
	if got := pyLine(t, out, stderr); got != "waiting" {
		t.Fatalf("python: %q", got)
	}
	pyExpectGone(t, func() { child.Kill(t) }, cmd, out, stderr)
}

// pyExpectGone kills the Go peer of a Python end that waits (and has said
// so), after a moment in which it must still wait, and checks that the
// Python end prints "gone" within peerGoneWithin of the kill.
func pyExpectGone(t *testing.T, kill func(), cmd *exec.Cmd, out *bufio.Reader, stderr *bytes.Buffer) {
	t.Helper()
	line := nextLine(out)
	select {
	case s := <-line:
		t.Fatalf("python printed %q while its peer lived; stderr:\n%s", s, stderr)
	case <-time.After(300 * time.Millisecond): // past a liveness check or so
	}
	kill()
	killed := time.Now()
	select {
	case s := <-line:
		d := time.Since(killed)
		t.Logf("PeerGone %v after the kill", d.Round(time.Millisecond))
		if s != "gone\n" {
			t.Fatalf("python printed %q, want gone; stderr:\n%s", s, stderr)
		}
		if d > peerGoneWithin {
			t.Fatalf("PeerGone came %v after the kill, want within %v", d, peerGoneWithin)
		}
	case <-time.After(prompt):
		t.Fatalf("python still waiting %v after its peer was killed", prompt)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v\n%s", err, stderr)
	}
}
