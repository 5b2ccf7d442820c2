package shmmap

import (
	"io/fs"
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
		h := newHandle(t, keys, 4096)
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
		key, _ := newSegment(t, checkLeaks(t), 4096)
		m := mapHandle(t, key, 0, true)
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

// TestHandleWorstCaller: what a careless caller does with handles is an
// error, never a panic, and never reaches another segment: a zero Mapping
// has no key to unlink, and a creator closed twice leaves alone a later
// segment of its name the second time.
func TestHandleWorstCaller(t *testing.T) {
	keys := checkLeaks(t)
	var zero Mapping
	isPathError(t, "Unlink of a zero Mapping", zero.Unlink(), "", fs.ErrInvalid)
	if zero.Key() != "" || zero.File() != nil || zero.Bytes() != nil {
		t.Errorf("a zero Mapping has a key %q, file %v or bytes", zero.Key(), zero.File())
	}

	h := newHandle(t, keys, 4096)
	m := mapHandle(t, h.Key(), 0, true)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	plantFile(t, shm.Dir+h.Key(), "later")
	isPathError(t, "second Close of the creator", h.Close(), h.Key(), fs.ErrClosed)
	isPathError(t, "Unlink after Close", h.Unlink(), h.Key(), fs.ErrClosed)
	mustHold(t, shm.Dir+h.Key(), "later", "after the creator's second Close")
	// The other handle outlives its creator: bytes and file.
	m.Bytes()[0] = 1
	if fi, err := m.File().Stat(); err != nil || fi.Size() != 4096 {
		t.Errorf("the file of a handle whose creator closed: %v, %v", fi, err)
	}
}
