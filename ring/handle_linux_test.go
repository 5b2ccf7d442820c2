package ring

import (
	"os"
	"testing"

	"github.com/shmmap-go/shmmap"
)

// TestKeyUnlinkedUnderRing: shmmap.Unlink of a ring's key removes the name,
// as asked; the ring's creator then removes nothing at Close, not even a
// later segment of the same name.
func TestKeyUnlinkedUnderRing(t *testing.T) {
	keys := checkLeaks(t)
	p, err := CreateProducer(4096)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, p.Key())
	defer p.Close()
	if err := shmmap.Unlink(p.Key()); err != nil {
		t.Fatal(err)
	}
	path := "/dev/shm" + p.Key()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { os.Remove(path) })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the ring's Close removed a later segment of its name: %v", err)
	}
}
