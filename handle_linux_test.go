package shmmap

import (
	"testing"

	"github.com/shmmap-go/shmmap/internal/shm"
)

// TestNameRemovedElsewhere: whichever API removes a name in this process,
// the segment's creator, a handle or the key API, learns of it, so that its
// Close or Release does not remove a later segment of the same name
// (another program's, say, made in the meantime).
func TestNameRemovedElsewhere(t *testing.T) {
	t.Run("Unlink by key, then the handle's Close", func(t *testing.T) {
		keys := checkLeaks(t)
		h, err := CreateNamed(4096)
		if err != nil {
			t.Fatal(err)
		}
		keys.add(h.Key())
		t.Cleanup(func() { h.Close() })
		if err := Unlink(h.Key()); err != nil {
			t.Fatal(err)
		}
		plantFile(t, shm.Dir+h.Key(), "later")
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		mustHold(t, shm.Dir+h.Key(), "later", "after the handle's Close")
	})
	t.Run("a handle's Unlink, then the key API's Release", func(t *testing.T) {
		keys := checkLeaks(t)
		key, _, err := Create(4096)
		if err != nil {
			t.Fatal(err)
		}
		keys.add(key)
		t.Cleanup(func() { Release(key) })
		m, err := Map(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if err := m.Unlink(); err != nil {
			t.Fatal(err)
		}
		if fd := creatorFD(key); fd >= 0 {
			t.Errorf("the key API's creator still holds fd %d after its name was removed", fd)
		}
		plantFile(t, shm.Dir+key, "later")
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
		mustHold(t, shm.Dir+key, "later", "after Release")
	})
}
