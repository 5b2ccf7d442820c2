//go:build linux && amd64

package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/internal/peer"
)

// pyMessage writes message i of testdata/ring_consumer.py's stream into a
// fresh slice of b's length: byte j is (i + j) % 256.
func pyMessage(b []byte, i int) {
	for j := range b {
		b[j] = byte(i + j)
	}
}

// pySize is the length of message i of that stream.
func pySize(i int) int { return i * 7919 % 1000 }

// TestPythonConsumer streams messages from a Go producer to
// testdata/ring_consumer.py, a consumer written in Python from LAYOUT.md
// alone (ctypes for the futex and the locks): a small ring, so that it
// wraps, pads and fills many times over, and both sides sleep and wake each
// other; the producer commits fewer bytes than it reserved, now and then,
// after writing forged records past them. The consumer checks every
// message's length and bytes; the test checks its count, total and CRC-32
// against what the producer sent. In "eof" the producer closes after the
// last message and the consumer must see the end of the stream; in "close"
// the consumer closes its end after count messages and the producer, which
// goes on, must be told that the consumer has closed (its state bit), not
// that it died.
func TestPythonConsumer(t *testing.T) {
	py := peer.Python(t, "ctypes", "multiprocessing.shared_memory")
	const count = 20000
	t.Run("eof", func(t *testing.T) { pythonStream(t, py, count, false) })
	t.Run("close", func(t *testing.T) { pythonStream(t, py, count, true) })
}

func pythonStream(t *testing.T, py string, count int, consumerCloses bool) {
	keys := checkLeaks(t)
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

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"-I", "testdata/ring_consumer.py", p.Key(), strconv.Itoa(count)}
	if consumerCloses {
		args = append(args, "close")
	}
	cmd := exec.CommandContext(ctx, py, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		if !consumerCloses {
			cancel() // a consumer that exits early ends a waiting Reserve
		}
		done <- err
	}()

	var total int
	var crc uint32
	var perr error
	sent := count
	if consumerCloses {
		sent = 10 * count // until the consumer's close stops the producer
	}
	for i := range sent {
		// Reserve more than the message, now and then, and fill the rest
		// with the heads that records of this lap would have there: the
		// consumer must stop at the message that Commit sends.
		n := pySize(i)
		b, err := p.Reserve(ctx, min(n+i%3*(i%400), p.MaxMessage()))
		if err != nil {
			perr = fmt.Errorf("Reserve %d: %w", i, err)
			break
		}
		pyMessage(b[:n], i)
		at := p.tail + uint32(p.pad) + recordHead
		for x := align(n); x+recordHead <= len(b); x += recordHead {
			putHead(b, x, uint32(x), stampOf(at+uint32(x)))
		}
		if i < count {
			crc = crc32.Update(crc, crc32.IEEETable, b[:n])
			total += n
		}
		p.Commit(n)
	}
	closed = true
	if err := p.Close(); err != nil {
		t.Error(err)
	}
	werr := <-done
	if consumerCloses {
		if !errors.Is(perr, ErrPeerGone) || !strings.Contains(perr.Error(), "the consumer has closed") {
			t.Errorf("the producer got %v, want ErrPeerGone: the consumer has closed", perr)
		}
		perr = nil
	}
	if werr != nil || perr != nil {
		t.Fatalf("producer: %v\npython: %v\nstdout:\n%s\nstderr:\n%s", perr, werr, stdout.Bytes(), stderr.Bytes())
	}
	want := fmt.Sprintf("count %d bytes %d crc32 %d\n", count, total, crc)
	if got := stdout.String(); got != want {
		t.Errorf("python printed %q, want %q", got, want)
	}
	if stderr.Len() > 0 {
		t.Errorf("python's stderr:\n%s", stderr.Bytes())
	}
}
