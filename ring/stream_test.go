package ring

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func init() {
	helpers.Register("consume", helperConsume)
	helpers.Register("produce", helperProduce)
}

// The stream tests send count messages whose sizes come from a PRNG seeded
// with seed, which both sides share, and whose bytes follow from the
// message's index: each side knows exactly what the other must see.

// msgSize returns the size of the next message: mostly small, now and then
// up to max, so that records of every size meet the buffer's end.
func msgSize(r *rand.Rand, max int) int {
	if r.IntN(16) == 0 {
		return r.IntN(max + 1)
	}
	return r.IntN(min(max, 300) + 1)
}

// fill writes message i into b.
func fill(b []byte, i uint64) {
	x := i*0x9e3779b97f4a7c15 + 1
	for j := 0; j+8 <= len(b); j += 8 {
		binary.LittleEndian.PutUint64(b[j:], x)
		x = x*6364136223846793005 + 1442695040888963407
	}
	for j := len(b) &^ 7; j < len(b); j++ {
		b[j] = byte(x >> (8 * (j & 7)))
	}
}

// check reports whether b is message i of size n.
func check(b []byte, i uint64, n int, scratch []byte) error {
	if len(b) != n {
		return fmt.Errorf("message %d: %d bytes, want %d", i, len(b), n)
	}
	want := scratch[:n]
	fill(want, i)
	if string(b) != string(want) {
		return fmt.Errorf("message %d: wrong content", i)
	}
	return nil
}

// produce sends count messages through p.
func produce(ctx context.Context, p *Producer, count int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range count {
		n := msgSize(r, p.MaxMessage())
		b, err := p.Reserve(ctx, n)
		if err != nil {
			return fmt.Errorf("Reserve %d: %w", i, err)
		}
		fill(b, uint64(i))
		p.Commit(len(b))
	}
	return nil
}

// consume reads count messages from c and checks each, then expects the
// end of the stream.
func consume(ctx context.Context, c *Consumer, count int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	scratch := make([]byte, c.MaxMessage())
	for i := range count {
		n := msgSize(r, c.MaxMessage())
		b, err := c.Next(ctx)
		if err != nil {
			return fmt.Errorf("Next %d: %w", i, err)
		}
		if err := check(b, uint64(i), n, scratch); err != nil {
			return err
		}
		c.Release()
	}
	return nil
}

// helperConsume KEY COUNT SEED opens ring KEY's consuming end, checks COUNT
// messages, expects io.EOF and prints "ok".
func helperConsume(args ...string) error {
	count, _ := strconv.Atoi(args[1])
	seed, _ := strconv.ParseUint(args[2], 10, 64)
	c, err := OpenConsumer(args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := consume(ctx, c, count, seed); err != nil {
		return err
	}
	if _, err := c.Next(ctx); err == nil {
		return fmt.Errorf("a message past the last")
	} else {
		fmt.Println(err)
	}
	return nil
}

// helperProduce KEY COUNT SEED opens ring KEY's producing end, sends COUNT
// messages, closes and prints "sent".
func helperProduce(args ...string) error {
	count, _ := strconv.Atoi(args[1])
	seed, _ := strconv.ParseUint(args[2], 10, 64)
	p, err := OpenProducer(args[0])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := produce(ctx, p, count, seed); err != nil {
		p.Close()
		return err
	}
	fmt.Println("sent")
	return p.Close()
}

// streamCount is how many messages the stream tests send: 10^6 (about 2 s
// here each way).
func streamCount() int { return 1_000_000 }

// TestStreamToChild: this process creates the ring and produces; a child
// opens it, consumes and checks every message in order, then sees io.EOF
// after this end's Close. The buffer (4 KiB) is small beside the messages
// (up to 4 KiB - 8), so records meet its end all the time.
func TestStreamToChild(t *testing.T) {
	keys := checkLeaks(t)
	count, seed := streamCount(), uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d messages", seed, count)
	p, err := CreateProducer(4096)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, p.Key())
	c := helpers.Start(t, "consume", p.Key(), strconv.Itoa(count), strconv.FormatUint(seed, 10))
	if err := produce(context.Background(), p, count, seed); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Line(t), "EOF"; got != want {
		t.Fatalf("child after the last message: got %q, want %q", got, want)
	}
	c.Wait(t)
}

// TestStreamFromChild: this process creates the ring and consumes; a child
// produces.
func TestStreamFromChild(t *testing.T) {
	keys := checkLeaks(t)
	count, seed := streamCount(), uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d messages", seed, count)
	cons, err := CreateConsumer(8192)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, cons.Key())
	defer cons.Close()
	c := helpers.Start(t, "produce", cons.Key(), strconv.Itoa(count), strconv.FormatUint(seed, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := consume(ctx, cons, count, seed); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Line(t), "sent"; got != want {
		t.Fatalf("child: got %q, want %q", got, want)
	}
	c.Wait(t)
	if _, err := cons.Next(ctx); err != io.EOF {
		t.Fatalf("Next after the producer closed: got %v, want io.EOF", err)
	}
}
