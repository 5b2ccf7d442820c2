package shmmap

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/shmmap-go/shmmap/internal/shm"
)

// touch writes b to m's first byte and reads it back, reporting a fault
// (m unmapped under its owner) as an error rather than a crash.
func touch(m *Mapping, b byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fault: %v", r)
		}
	}()
	data := m.Bytes()
	if len(data) == 0 {
		return errors.New("no bytes")
	}
	data[0] = b
	if data[0] != b {
		return fmt.Errorf("read back %d, wrote %d", data[0], b)
	}
	return nil
}

// TestHandlesSurviveKeyAPI: Release and ReleaseAll work on what the key API
// made and nothing else. A handle on a segment stays mapped through a
// Release of its key and a ReleaseAll, made by key API calls on the same
// segment in the same process, as another library's cleanup would make
// them.
func TestHandlesSurviveKeyAPI(t *testing.T) {
	keys := checkLeaks(t)
	h := newHandle(t, keys, 4096)
	m := mapHandle(t, h.Key(), 0, true)

	if _, err := ReadWrite(h.Key(), 0); err != nil {
		t.Fatal(err)
	}
	if err := Release(h.Key()); err != nil {
		t.Fatalf("Release of the key API's mapping: %v", err)
	}
	if err := touch(h, 1); err != nil {
		t.Fatalf("creator's handle after Release(key): %v", err)
	}
	if _, err := Read(h.Key(), 0); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseAll(); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*Mapping{"creator's": h, "Map's": m} {
		if err := touch(m, 2); err != nil {
			t.Fatalf("%s handle after ReleaseAll: %v", name, err)
		}
	}
	if err := Release(h.Key()); !errors.Is(err, ErrNotMapped) {
		t.Fatalf("Release of a key held only by handles: %v, want ErrNotMapped", err)
	}
	if _, err := os.Lstat(shm.Dir + h.Key()); err != nil && shm.Dir != "" {
		t.Fatalf("the handle's segment lost its name to the key API: %v", err)
	}

	// The other way round: the key API's creator, a handle on its key.
	key, _, err := Create(4096)
	if err != nil {
		t.Fatal(err)
	}
	keys.add(key)
	t.Cleanup(func() { Release(key) })
	k := mapHandle(t, key, 0, true)
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
	if err := touch(k, 3); err != nil {
		t.Fatalf("a handle on a key the key API created and released: %v", err)
	}
}

// TestTwoHandles: two libraries in one process, each with its own handle on
// the same key: closing one, or the creator's, leaves the other's bytes
// mapped, and each Close is an error only the second time.
func TestTwoHandles(t *testing.T) {
	keys := checkLeaks(t)
	h := newHandle(t, keys, 8192)
	a := mapHandle(t, h.Key(), 0, true)
	b := mapHandle(t, h.Key(), 4096, false)

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	h.Bytes()[0] = 9
	if got := b.Bytes()[0]; got != 9 {
		t.Fatalf("b after a's Close: %d, want 9", got)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := b.Bytes()[0]; got != 9 || len(b.Bytes()) != 4096 {
		t.Fatalf("b after the creator's Close: %d of %d bytes", got, len(b.Bytes()))
	}
	if _, err := Map(h.Key(), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Map after the creator's Close: %v, want fs.ErrNotExist", err)
	}
	isPathError(t, "second Close", a.Close(), h.Key(), fs.ErrClosed)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHandleUnlink: Unlink removes the name now and Close then removes
// nothing, not even a later segment of the same name; a handle without a
// key has nothing to unlink.
func TestHandleUnlink(t *testing.T) {
	keys := checkLeaks(t)
	h := newHandle(t, keys, 4096)
	if err := h.Unlink(); err != nil {
		t.Fatal(err)
	}
	isPathError(t, "second Unlink", h.Unlink(), h.Key(), fs.ErrNotExist)

	// Another segment now takes the name: the handle's Close must leave it.
	data, fd, err := shm.CreateSegment(h.Key(), 4096, options{})
	if err != nil {
		t.Fatal(err)
	}
	other := &Mapping{data: data, fd: fd, name: h.Key(), named: true, creator: true}
	t.Cleanup(func() { other.Close() })
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if m, err := Map(h.Key(), 0); err != nil {
		t.Fatalf("the later segment of the name, after the first handle's Close: %v", err)
	} else {
		m.Close()
	}
	if err := touch(other, 4); err != nil {
		t.Fatal(err)
	}
	isPathError(t, "Unlink after Close", h.Unlink(), h.Key(), fs.ErrClosed)

	a, err := CreateAnonymous(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Key() != "" {
		t.Errorf("Key of an anonymous segment: %q, want none", a.Key())
	}
	isPathError(t, "Unlink of an anonymous segment", a.Unlink(), "", fs.ErrInvalid)
	var none *Mapping
	isPathError(t, "Unlink of a nil Mapping", none.Unlink(), "", fs.ErrInvalid)
	if none.Key() != "" {
		t.Errorf("Key of a nil Mapping: %q", none.Key())
	}
}

// TestHandleKeyAPIUnlink: Unlink by key of a handle's segment removes the
// name, as asked; the handle's bytes stay mapped and its Close is no
// error.
func TestHandleKeyAPIUnlink(t *testing.T) {
	keys := checkLeaks(t)
	h := newHandle(t, keys, 4096)
	if err := Unlink(h.Key()); err != nil {
		t.Fatal(err)
	}
	if err := touch(h, 5); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close after the name was removed by key: %v", err)
	}
}

// TestHandleBadInput: what the worst caller could pass to the handle
// constructors is an error, with nothing left behind.
func TestHandleBadInput(t *testing.T) {
	keys := checkLeaks(t)
	sizes := []int{-1, 0, math.MinInt}
	if big := shm.MaxSize; big < math.MaxInt { // on 32-bit systems shm.MaxSize is the largest int
		sizes = append(sizes, big+1, math.MaxInt)
	}
	for _, size := range sizes {
		if m, err := CreateNamed(size); !errors.Is(err, ErrInvalidSize) || m != nil {
			t.Errorf("CreateNamed(%d): %v, %v; want ErrInvalidSize", size, m, err)
		}
	}
	h := newHandle(t, keys, 4096)
	for _, tc := range []struct {
		key  string
		size int
		want error
	}{
		{"", 0, ErrInvalidKey},
		{"/", 0, ErrInvalidKey},
		{"/a/b", 0, ErrInvalidKey},
		{"..", 0, ErrInvalidKey},
		{"/x\x00", 0, ErrInvalidKey},
		{h.Key(), -1, ErrInvalidSize},
		{h.Key(), 4097, ErrInvalidSize},
		{"/shmmap_test_no_such_segment", 0, fs.ErrNotExist},
	} {
		for name, fn := range map[string]func(string, int, ...Option) (*Mapping, error){"Map": Map, "MapReadOnly": MapReadOnly} {
			m, err := fn(tc.key, tc.size)
			if !errors.Is(err, tc.want) || m != nil {
				t.Errorf("%s(%q, %d): %v, %v; want %v", name, tc.key, tc.size, m, err, tc.want)
			}
			var pe *fs.PathError
			if err != nil && !errors.As(err, &pe) {
				t.Errorf("%s(%q, %d): %T, want *fs.PathError", name, tc.key, tc.size, err)
			}
		}
	}
}
