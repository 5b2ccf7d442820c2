package shmmap

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"testing"
)

func init() {
	registerHelper("atomic-add", helperAtomicAdd)
}

func TestView(t *testing.T) {
	keys := checkLeaks(t)
	key, data := newSegment(t, keys, 64)
	f, err := View[float64](data)
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 8 {
		t.Fatalf("View[float64] of 64 bytes: %d values, want 8", len(f))
	}
	f[1] = math.Pi
	g, err := View[float64](data[8:16])
	if err != nil || g[0] != math.Pi {
		t.Fatalf("view at offset 8: %v, %v", g, err)
	}
	if b := Bytes(f); len(b) != 64 || &b[0] != &data[0] {
		t.Fatalf("Bytes(View(data)) is not data: %d bytes", len(b))
	}
	for _, tc := range []struct {
		b    []byte
		want error
	}{
		{data[:7], ErrInvalidSize},
		{data[1:9], ErrAlignment},
		{data[4:12], ErrAlignment},
	} {
		if _, err := View[uint64](tc.b); !errors.Is(err, tc.want) {
			t.Errorf("View[uint64] of %d bytes at offset %d: %v, want %v", len(tc.b), cap(data)-cap(tc.b), err, tc.want)
		}
	}
	// Natural alignment for every size, on 32-bit systems too.
	if _, err := View[int16](data[1:3]); !errors.Is(err, ErrAlignment) {
		t.Errorf("View[int16] at offset 1: %v, want ErrAlignment", err)
	}
	if _, err := View[float32](data[2:6]); !errors.Is(err, ErrAlignment) {
		t.Errorf("View[float32] at offset 2: %v, want ErrAlignment", err)
	}
	if v, err := View[int32](nil); err != nil || len(v) != 0 {
		t.Fatalf("View of nothing: %v, %v", v, err)
	}
	if v, err := View[uint8](data[3:5]); err != nil || len(v) != 2 {
		t.Fatalf("View[uint8] of any bytes: %v, %v", v, err)
	}
	_ = key
}

// helperAtomicAdd KEY N: adds 1 to the uint64 at offset 0 of KEY, N times,
// with sync/atomic.
func helperAtomicAdd(args ...string) error {
	n, _ := strconv.Atoi(args[1])
	data, err := ReadWrite(args[0], 8)
	if err != nil {
		return err
	}
	words, err := View[uint64](data)
	if err != nil {
		return err
	}
	for range n {
		atomic.AddUint64(&words[0], 1)
	}
	fmt.Println("done")
	return Release(args[0])
}

// TestAtomicAcrossProcesses: two processes add to one counter a million
// times each; with sync/atomic not one increment is lost.
func TestAtomicAcrossProcesses(t *testing.T) {
	keys := checkLeaks(t)
	key, data := newSegment(t, keys, 4096)
	words, err := View[uint64](data)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1_000_000
	cmd := helperCommand(t, "atomic-add", key, strconv.Itoa(n))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for range n {
		atomic.AddUint64(&words[0], 1)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := atomic.LoadUint64(&words[0]); got != 2*n {
		t.Fatalf("counter = %d after 2 x %d atomic adds in two processes", got, n)
	}
}
