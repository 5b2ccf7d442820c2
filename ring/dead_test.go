package ring

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
)

func init() {
	helpers.Register("produce-and-hang", helperProduceAndHang)
	helpers.Register("create-and-hang", helperCreateAndHang)
	helpers.Register("open-consumer-and-hang", helperOpenConsumerAndHang)
	helpers.Register("stamp-and-hang", helperStampAndHang)
}

// hangMidMessage commits count messages of 100 bytes, reserves one more
// and writes half of it, prints "ready" and waits for its stdin to close (or
// to be killed).
func hangMidMessage(p *Producer, count int) error {
	for i := range count {
		b, err := p.Reserve(context.Background(), 100)
		if err != nil {
			return err
		}
		fill(b, uint64(i))
		p.Commit(len(b))
	}
	b, err := p.Reserve(context.Background(), 100)
	if err != nil {
		return err
	}
	fill(b[:50], uint64(count))
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	return nil
}

// helperProduceAndHang KEY COUNT opens ring KEY's producing end and hangs
// in the middle of message COUNT.
func helperProduceAndHang(args ...string) error {
	count, _ := strconv.Atoi(args[1])
	p, err := OpenProducer(args[0])
	if err != nil {
		return err
	}
	return hangMidMessage(p, count)
}

// helperCreateAndHang COUNT creates a ring as its producer, prints its key
// and hangs in the middle of message COUNT.
func helperCreateAndHang(args ...string) error {
	count, _ := strconv.Atoi(args[0])
	p, err := CreateProducer(4096)
	if err != nil {
		return err
	}
	fmt.Println(p.Key())
	return hangMidMessage(p, count)
}

// helperOpenConsumerAndHang KEY opens ring KEY's consuming end, prints
// "ready" and reads nothing.
func helperOpenConsumerAndHang(args ...string) error {
	if _, err := OpenConsumer(args[0]); err != nil {
		return err
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	return nil
}

// helperStampAndHang KEY opens ring KEY's producing end, commits message 0,
// waits for the consumer to sleep, then commits message 1 up to its stamp
// and hangs there, before it stores tail: it prints "ready" and waits for
// its stdin to close (or to be killed).
func helperStampAndHang(args ...string) error {
	p, err := OpenProducer(args[0])
	if err != nil {
		return err
	}
	b, err := p.Reserve(context.Background(), 100)
	if err != nil {
		return err
	}
	fill(b, 0)
	p.Commit(len(b))
	// The consumer has released message 0 and gone to sleep again: the
	// sleep in which it waits for message 1.
	for atomic.LoadUint32(p.e.head) != recordHead+uint32(align(100)) || atomic.LoadUint32(p.consSleep) == 0 {
		time.Sleep(time.Millisecond)
	}
	testHookStamped = func() {
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	if b, err = p.Reserve(context.Background(), 100); err != nil {
		return err
	}
	fill(b, 1)
	p.Commit(len(b))
	return nil
}

// peerGoneWithin is how soon a waiting call must see that its peer died:
// the bound.
const peerGoneWithin = time.Second

// expectPeerGone runs call, which must be waiting, kills c's process (and
// reaps it) and checks that call returns ErrPeerGone within peerGoneWithin.
func expectPeerGone(t *testing.T, c *child, call func(context.Context) error) {
	t.Helper()
	expectGone(t, func() { c.Kill(t) }, call)
}

// expectGone runs call, which must be waiting, ends the peer with kill,
// and checks that call returns ErrPeerGone within peerGoneWithin. call's
// context ends when this returns, so that a call still waiting after a
// failure returns before the caller closes its end.
func expectGone(t *testing.T, kill func(), call func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() { got <- call(ctx) }()
	returned := false
	defer func() {
		cancel()
		if !returned {
			<-got
		}
	}()
	time.Sleep(300 * time.Millisecond) // past a liveness check or so
	select {
	case err := <-got:
		returned = true
		t.Fatalf("returned %v while the peer lived", err)
	default:
	}
	kill()
	killed := time.Now()
	select {
	case err := <-got:
		returned = true
		d := time.Since(killed)
		t.Logf("ErrPeerGone %v after the kill: %v", d.Round(time.Millisecond), err)
		if !errors.Is(err, ErrPeerGone) {
			t.Fatalf("got %v, want ErrPeerGone", err)
		}
		if d > peerGoneWithin {
			t.Fatalf("ErrPeerGone came %v after the kill, want within %v", d, peerGoneWithin)
		}
	case <-time.After(prompt):
		t.Fatalf("still waiting %v after the peer was killed", prompt)
	}
}

// nextError returns a call of c.Next that fails if it returns a message:
// what a torn message after a death would be.
func nextError(c *Consumer) func(context.Context) error {
	return func(ctx context.Context) error {
		b, err := c.Next(ctx)
		if err == nil {
			return fmt.Errorf("a message of %d bytes", len(b))
		}
		return err
	}
}

// startCreator starts a child that creates a ring as its producer, commits
// count messages and hangs, and returns it with the ring's key, which t's
// leak check tracks and its cleanup unlinks (a dead creator leaves it).
func startCreator(t *testing.T, keys *[]string, count string) (*child, string) {
	t.Helper()
	c := helpers.Start(t, "create-and-hang", count)
	key := c.Line(t)
	*keys = append(*keys, key)
	t.Cleanup(func() { shmmap.Unlink(key) })
	if got := c.Line(t); got != "ready" {
		t.Fatalf("child: %q", got)
	}
	return c, key
}

// TestProducerKilledMidMessage: the consumer (this process, the creator)
// receives every message the producer committed, then, with the producer
// killed in the middle of the next one, ErrPeerGone: never the torn
// message. The creator learns of the opener's death from its flock.
func TestProducerKilledMidMessage(t *testing.T) {
	keys := checkLeaks(t)
	cons, err := CreateConsumer(4096)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, cons.Key())
	defer cons.Close()
	c := helpers.Start(t, "produce-and-hang", cons.Key(), "5")
	if got := c.Line(t); got != "ready" {
		t.Fatalf("child: %q", got)
	}
	for i := range 5 {
		receive(t, cons, 100, uint64(i))
	}
	expectPeerGone(t, c, nextError(cons))
}

// TestProducerKilledBeforeTail: a producer killed in Commit after it has
// stamped a message, before it stored tail, committed that message: the
// consumer, asleep on tail, receives it whole once it learns of the death,
// and then ErrPeerGone.
func TestProducerKilledBeforeTail(t *testing.T) {
	keys := checkLeaks(t)
	cons, err := CreateConsumer(4096)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, cons.Key())
	defer cons.Close()
	c := helpers.Start(t, "stamp-and-hang", cons.Key())
	receive(t, cons, 100, 0)
	got := make(chan error, 1)
	go func() {
		b, err := cons.Next(context.Background()) // sleeps on tail
		if err == nil {
			err = check(b, 1, 100, make([]byte, 100))
			cons.Release()
		}
		got <- err
	}()
	if l := c.Line(t); l != "ready" {
		t.Fatalf("child: %q", l)
	}
	c.Kill(t)
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Next of the message stamped before the death: %v", err)
		}
	case <-time.After(prompt):
		t.Fatalf("Next still waiting %v after the producer was killed", prompt)
	}
	start := time.Now()
	if _, err := cons.Next(context.Background()); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("Next after the last message: %v, want ErrPeerGone", err)
	}
	if d := time.Since(start); d > peerGoneWithin {
		t.Fatalf("ErrPeerGone after %v, want within %v", d, peerGoneWithin)
	}
}

// TestCreatorKilledMidMessage: the same with the producer the ring's
// creator: the opener learns of its death from the creator's OFD lock on
// Linux, from its pid and start time on macOS. The dead creator leaves the
// name, which the test removes.
func TestCreatorKilledMidMessage(t *testing.T) {
	c, key := startCreator(t, checkLeaks(t), "3")
	cons, err := OpenConsumer(key)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for i := range 3 {
		receive(t, cons, 100, uint64(i))
	}
	expectPeerGone(t, c, nextError(cons))
	if _, err := OpenProducer(key); !errors.Is(err, ErrPeerGone) && !errors.Is(err, ErrBusy) {
		t.Fatalf("OpenProducer of a dead creator's ring: %v", err)
	}
}

// TestConsumerKilledWhileFull: a producer waiting for room gets ErrPeerGone
// when the consumer's process dies.
func TestConsumerKilledWhileFull(t *testing.T) {
	keys := checkLeaks(t)
	p, err := CreateProducer(256)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, p.Key())
	defer p.Close()
	c := helpers.Start(t, "open-consumer-and-hang", p.Key())
	if got := c.Line(t); got != "ready" {
		t.Fatalf("child: %q", got)
	}
	send(t, p, 200, 0)
	expectPeerGone(t, c, func(ctx context.Context) error {
		_, err := p.Reserve(ctx, 200)
		return err
	})
}

// TestOpenDeadCreator: Open of a ring whose creator died is ErrPeerGone.
func TestOpenDeadCreator(t *testing.T) {
	c, key := startCreator(t, checkLeaks(t), "0")
	c.Kill(t)
	if _, err := OpenConsumer(key); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("OpenConsumer: got %v, want ErrPeerGone", err)
	}
}
