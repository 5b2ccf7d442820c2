//go:build linux

package shmmap

// What a hostile sender of a segment's file can do to the receiver, and
// what it cannot.

import (
	"math/rand/v2"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSealedWhileMapped: a sender truncates an unsealed memfd to 0 bytes
// and then seals it against shrinking, while the receiver maps it. Sealed
// must never vouch for a mapping longer than the file, whose first access
// would kill the receiver with SIGBUS. The test never touches the bytes:
// it compares the mapping's length with fstat of the file once both sides
// are done.
//
// The attacker spins on another thread until the receiver is about to
// call ReadFile; then, after a random delay on one side or the other, it
// truncates and seals. The run lasts a few seconds (less with
// -short), and goes on, up to a limit, until it has seen the attack land
// both before ReadFile's fstat (an empty file: refused) and after it (a
// mapping, which the truncation then leaves longer than the file): short
// of that it proves nothing, and fails.
func TestSealedWhileMapped(t *testing.T) {
	checkLeaks(t)
	const size = 1 << 20
	run := 2 * time.Second
	if testing.Short() {
		run = 300 * time.Millisecond
	}
	var tries, refused, overhang int
	start, limit := time.Now(), 10*time.Second
	for ; time.Since(start) < run || (refused == 0 || overhang == 0) && time.Since(start) < limit; tries++ {
		fd, err := unix.MemfdCreate("shmmap-test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "memfd:shmmap-test")
		if err := f.Truncate(size); err != nil {
			f.Close()
			t.Fatal(err)
		}
		// The attacker waits delay steps, or the receiver -delay.
		delay := rand.IntN(600) - 100
		var ready, begin atomic.Bool
		done := make(chan error)
		go func() {
			ready.Store(true)
			for !begin.Load() {
				runtime.Gosched()
			}
			for i := 0; i < delay; i++ {
				ready.Store(true) // a store the compiler keeps: a delay
			}
			if err := unix.Ftruncate(fd, 0); err != nil {
				done <- err
				return
			}
			_, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK)
			done <- err
		}()
		for !ready.Load() {
			runtime.Gosched()
		}
		begin.Store(true)
		for i := 0; i < -delay; i++ {
			ready.Store(true)
		}
		m, err := ReadFile(f, 0)
		aerr := <-done
		var st unix.Stat_t
		serr := unix.Fstat(fd, &st)
		sealed := m.Sealed()
		if err == nil {
			m.Close()
		}
		f.Close()
		switch {
		case aerr != nil:
			t.Fatalf("the attacker: %v", aerr)
		case serr != nil:
			t.Fatal(serr)
		case err != nil:
			refused++ // it saw the truncation: 0 bytes
		case st.Size >= size:
			t.Fatalf("try %d: the file has %d bytes after the attack", tries, st.Size)
		case sealed:
			t.Fatalf("try %d: Sealed() is true for a %d-byte mapping of a %d-byte file: its first access is SIGBUS", tries, size, st.Size)
		default:
			overhang++
		}
	}
	t.Logf("%d tries: %d refused as empty, %d mapped and then truncated, none sealed", tries, refused, overhang)
	if refused == 0 || overhang == 0 {
		t.Fatalf("in %d tries over %v the attack never landed on both sides of ReadFile's fstat: the test proves nothing", tries, limit)
	}
}
