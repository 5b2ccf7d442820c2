package ring

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestFlockEINTR: a flock that a signal interrupts is made again, both the
// opener's lock and the creator's question: OpenConsumer succeeds and
// holds its lock, and once it has closed the creator finds it gone.
func TestFlockEINTR(t *testing.T) {
	keys := checkLeaks(t)
	was := flockFD
	t.Cleanup(func() { flockFD = was })
	interrupted := map[int]int{} // by operation
	flockFD = func(fd, how int) error {
		if interrupted[how] < 2 {
			interrupted[how]++
			return unix.EINTR
		}
		return was(fd, how)
	}
	p, err := CreateProducer(256)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, p.Key())
	defer p.Close()
	c, err := OpenConsumer(p.Key())
	if err != nil {
		t.Fatalf("OpenConsumer with flock interrupted: %v", err)
	}
	if interrupted[unix.LOCK_SH] != 2 {
		t.Fatalf("the opener's flock was interrupted %d times, want 2", interrupted[unix.LOCK_SH])
	}
	if !p.e.watch.peerAlive(p.e.seg, true) {
		t.Error("the creator finds the opener gone while it holds its lock")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	delete(interrupted, unix.LOCK_EX|unix.LOCK_NB)
	if p.e.watch.peerAlive(p.e.seg, true) {
		t.Error("with its flock interrupted, the creator finds the closed opener alive")
	}
	if interrupted[unix.LOCK_EX|unix.LOCK_NB] != 2 {
		t.Fatalf("the creator's flock was interrupted %d times, want 2", interrupted[unix.LOCK_EX|unix.LOCK_NB])
	}
}
