package wake

import (
	"flag"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/internal/testproc"
)

// helpers are the child processes' commands, by name (internal/testproc).
var helpers = testproc.New("SHMMAP_WAKE_TEST_HELPER")

func TestMain(m *testing.M) {
	flag.Parse()
	helpers.Run(nil, shmmap.ReleaseAll)
	os.Exit(m.Run())
}

// segment makes a segment of size bytes for t, released in cleanup, and
// returns its key and its 32-bit words.
func segment(t testing.TB, size int) (string, []uint32) {
	t.Helper()
	key, data, err := shmmap.Create(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shmmap.Release(key) })
	words, err := shmmap.View[uint32](data)
	if err != nil {
		t.Fatal(err)
	}
	return key, words
}

// attachWord maps segment key (read-only if mode is "ro") and returns its
// word at index i, for helpers.
func attachWord(key, index, mode string) (*uint32, error) {
	i, err := strconv.Atoi(index)
	if err != nil {
		return nil, err
	}
	attach := shmmap.ReadWrite
	if mode == "ro" {
		attach = shmmap.Read
	}
	data, err := attach(key, 0)
	if err != nil {
		return nil, err
	}
	words, err := shmmap.View[uint32](data)
	if err != nil {
		return nil, err
	}
	return &words[i], nil
}

// noLeaks registers a check, run after every other cleanup of t, that the
// goroutines t started are gone: a Wait leaves nothing behind. Goroutines
// take a moment to exit, so it polls.
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var n int
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if n = runtime.NumGoroutine(); n <= before {
				return
			}
		}
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before the test, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	})
}

// wakeUntil calls Wake(w, n) until it has woken want waiters in all, and
// fails t if that takes more than 10 s: a waiter that a Wake cannot find
// (in another process, say) must fail the test, not hang it.
func wakeUntil(t testing.TB, w *uint32, n, want int) {
	t.Helper()
	total := 0
	for end := time.Now().Add(10 * time.Second); total < want; {
		k, err := Wake(w, n)
		if err != nil {
			t.Fatalf("Wake: %v", err)
		}
		total += k
		if time.Now().After(end) {
			t.Fatalf("Wake found %d waiters in 10 s, want %d", total, want)
		}
		if total < want {
			time.Sleep(time.Millisecond)
		}
	}
	if total != want {
		t.Fatalf("Wake woke %d waiters, want %d", total, want)
	}
}
