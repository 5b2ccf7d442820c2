package shmmap

import "testing"

// TestKeyAPIAllocations: the key API allocates the handle it records and
// nothing more: an attach and its Release one object, a Create and its
// Release two (the key and the handle). Options that are not given cost
// nothing. (Linux only, where raceEnabled is known: the race detector
// counts allocations of its own.)
func TestKeyAPIAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	keys := checkLeaks(t)
	h := newHandle(t, keys, 4096) // a handle: the key API's Release leaves it
	key := h.Key()
	if n := testing.AllocsPerRun(100, func() {
		if _, err := ReadWrite(key, 0); err != nil {
			t.Fatal(err)
		}
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("ReadWrite and Release: %v allocations, want at most 1 (the handle)", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		k, _, err := Create(4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := Release(k); err != nil {
			t.Fatal(err)
		}
	}); n > 2 {
		t.Errorf("Create and Release: %v allocations, want at most 2 (the key and the handle)", n)
	}
}
