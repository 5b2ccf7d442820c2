package ring_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/shmmap-go/shmmap/ring"
)

// A producer sends three messages and closes; the consumer reads them in
// place and then sees io.EOF. Both ends are in one process here, for
// brevity; in real use the consumer is another process, which gets the key
// from its parent (see examples/pipeline), and the same code runs there.
func Example() {
	p, err := ring.CreateProducer(4096)
	if err != nil {
		log.Fatal(err)
	}
	c, err := ring.OpenConsumer(p.Key()) // in the other process
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	for _, word := range []string{"one", "two", "three"} {
		buf, err := p.Reserve(ctx, len(word))
		if err != nil {
			log.Fatal(err)
		}
		copy(buf, word) // written in place, in the segment
		p.Commit(len(word))
	}
	p.Close()

	for {
		msg, err := c.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s ", msg) // read in place
		c.Release()
	}
	fmt.Println()
	// Output: one two three
}

// The errors callers tell apart with errors.Is.
func Example_errors() {
	p, err := ring.CreateProducer(64)
	if err != nil {
		log.Fatal(err)
	}
	_, err = p.Reserve(context.Background(), 100)
	fmt.Println(errors.Is(err, ring.ErrTooLarge))

	_, err = ring.OpenProducer(p.Key()) // the creator is the producer
	fmt.Println(errors.Is(err, ring.ErrBusy))

	c, err := ring.OpenConsumer(p.Key())
	if err != nil {
		log.Fatal(err)
	}
	c.Close()
	// The consumer has closed: a Reserve that must wait gets ErrPeerGone
	// (so would one whose consumer's process died).
	for err == nil {
		_, err = p.Reserve(context.Background(), 48)
		if err == nil {
			p.Commit(48)
		}
	}
	fmt.Println(errors.Is(err, ring.ErrPeerGone))

	p.Close()
	_, err = p.Reserve(context.Background(), 1)
	fmt.Println(errors.Is(err, ring.ErrClosed))
	// Output:
	// true
	// true
	// true
	// true
}

// The creator takes the producing end.
func ExampleCreateProducer() {
	p, err := ring.CreateProducer(1 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	fmt.Println(p.MaxMessage())
	// Output: 1048560
}

// The creator takes the consuming end, and the other process produces.
func ExampleCreateConsumer() {
	c, err := ring.CreateConsumer(1000) // rounded up to 1024
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.MaxMessage())
	// Output: 1008
}

// The other process opens the consuming end by key.
func ExampleOpenConsumer() {
	p, err := ring.CreateProducer(4096) // in the creating process
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	c, err := ring.OpenConsumer(p.Key())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.Key() == p.Key())
	// Output: true
}

// The other process opens the producing end by key.
func ExampleOpenProducer() {
	c, err := ring.CreateConsumer(4096) // in the creating process
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	p, err := ring.OpenProducer(c.Key())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	buf, _ := p.Reserve(context.Background(), 5)
	copy(buf, "hello")
	p.Commit(len(buf))

	msg, _ := c.Next(context.Background())
	fmt.Printf("%s\n", msg)
	c.Release()
	// Output: hello
}

// A Producer writes each message in place.
func ExampleProducer() {
	p, err := ring.CreateProducer(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	buf, err := p.Reserve(context.Background(), 8)
	if err != nil {
		log.Fatal(err)
	}
	copy(buf, "frame #1")
	p.Commit(len(buf))
	fmt.Println("committed")
	// Output: committed
}

// Reserve waits while the ring is full, until its context ends.
func ExampleProducer_Reserve() {
	p, err := ring.CreateProducer(64)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Reserve(context.Background(), 48); err != nil {
		log.Fatal(err)
	}
	p.Commit(48) // the ring is full now, and no consumer reads
	ctx, cancel := context.WithTimeout(context.Background(), 10e6)
	defer cancel()
	_, err = p.Reserve(ctx, 48)
	fmt.Println(err)
	// Output: context deadline exceeded
}

// An encoder that learns a message's length as it writes reserves the most
// it may write, writes in place and commits what it wrote; a message it
// cannot encode, it aborts.
func ExampleProducer_Commit() {
	p, err := ring.CreateProducer(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	c, err := ring.OpenConsumer(p.Key()) // in the other process
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	for _, in := range []string{"aGVsbG8=", "not base64!", "d29ybGQ="} {
		buf, err := p.Reserve(ctx, base64.StdEncoding.DecodedLen(len(in)))
		if err != nil {
			log.Fatal(err)
		}
		n, err := base64.StdEncoding.Decode(buf, []byte(in)) // in place
		if err != nil {
			p.Abort() // nothing is sent
			continue
		}
		p.Commit(n) // n bytes, of the 6 reserved
	}
	for range 2 {
		msg, err := c.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s ", msg)
		c.Release()
	}
	fmt.Println()
	// Output: hello world
}

// A Consumer reads each message in place.
func ExampleConsumer() {
	c, err := ring.CreateConsumer(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(len(c.Key()) > 1)
	// Output: true
}

// A consumer may take several messages and release them all at once: one
// store, and at most one wake-up of the producer, for the batch.
func ExampleConsumer_Release() {
	p, err := ring.CreateProducer(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	c, err := ring.OpenConsumer(p.Key()) // in the other process
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	for _, word := range []string{"one", "two", "three"} {
		buf, err := p.Reserve(ctx, len(word))
		if err != nil {
			log.Fatal(err)
		}
		copy(buf, word)
		p.Commit(len(word))
	}
	var batch [][]byte
	for range 3 {
		msg, err := c.Next(ctx) // the message after the last one taken
		if err != nil {
			log.Fatal(err)
		}
		batch = append(batch, msg) // valid until the Release
	}
	fmt.Printf("%s\n", bytes.Join(batch, []byte(" ")))
	c.Release() // all three
	// Output: one two three
}

// Next waits while the ring is empty, until its context ends.
func ExampleConsumer_Next() {
	c, err := ring.CreateConsumer(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Next(ctx)
	fmt.Println(err)
	// Output: context canceled
}
