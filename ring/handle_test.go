package ring

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"testing"

	"github.com/shmmap-go/shmmap"
)

// TestKeyAPICleanupKeepsRing: a ring holds its segment through a handle of
// its own, so the key API's Release and ReleaseAll, called by any code in
// the same process, cannot unmap it: both ends go on passing messages. (A
// ring whose mapping they reached would fault at the next access; the
// messages pass under SetPanicOnFault so that this fails the test instead
// of killing it.)
func TestKeyAPICleanupKeepsRing(t *testing.T) {
	keys := checkLeaks(t)
	p, err := CreateProducer(1 << 12)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, p.Key())
	defer p.Close()
	c, err := OpenConsumer(p.Key())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	if err := shmmap.ReleaseAll(); err != nil {
		t.Fatal(err)
	}
	if err := shmmap.Release(p.Key()); !errors.Is(err, shmmap.ErrNotMapped) {
		t.Fatalf("Release of a ring's key: %v, want ErrNotMapped (the key API holds nothing of it)", err)
	}
	// The key API's own mapping of the same segment comes and goes.
	if _, err := shmmap.Read(p.Key(), 0); err != nil {
		t.Fatal(err)
	}
	if err := shmmap.Release(p.Key()); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := passOne(p, c, fmt.Sprintf("message %d", i)); err != nil {
			t.Fatalf("after ReleaseAll and Release of its key: %v", err)
		}
	}
}

// passOne sends msg through p and takes it from c, reporting a fault as an
// error.
func passOne(p *Producer, c *Consumer, msg string) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fault: %v", r)
		}
	}()
	ctx := context.Background()
	b, err := p.Reserve(ctx, len(msg))
	if err != nil {
		return err
	}
	copy(b, msg)
	p.Commit(len(msg))
	got, err := c.Next(ctx)
	if err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("got %q, want %q", got, msg)
	}
	c.Release()
	return nil
}
