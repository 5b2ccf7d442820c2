package shmmap

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"
	"unsafe"

	"github.com/shmmap-go/shmmap/internal/shm"
)

func init() {
	registerHelper("attach-sum", helperAttachSum)
	registerHelper("create-fill", helperCreateFill)
}

// fill writes i%251 at every index i; check verifies it.
func fill(b []byte) {
	for i := range b {
		b[i] = byte(i % 251)
	}
}

func check(b []byte) error {
	for i, v := range b {
		if v != byte(i%251) {
			return fmt.Errorf("byte %d is %d, want %d", i, v, byte(i%251))
		}
	}
	return nil
}

// helperAttachSum KEY SIZE: maps KEY read-write, prints the sum of its SIZE
// bytes, writes 100 at index 0 and releases.
func helperAttachSum(args ...string) error {
	size, _ := strconv.Atoi(args[1])
	data, err := ReadWrite(args[0], size)
	if err != nil {
		return err
	}
	sum := 0
	for _, v := range data {
		sum += int(v)
	}
	fmt.Println(sum, len(data))
	data[0] = 100
	return Release(args[0])
}

// helperCreateFill SIZE: creates a segment, fills it, prints its key, waits
// for stdin to close, then checks that the parent wrote 7 at the last index
// (and nothing else), prints "ok" and releases.
func helperCreateFill(args ...string) error {
	size, _ := strconv.Atoi(args[0])
	key, data, err := Create(size)
	if err != nil {
		return err
	}
	fill(data)
	fmt.Println(key)
	waitStdinClosed()
	if data[size-1] != 7 {
		return fmt.Errorf("last byte is %d, want the parent's 7", data[size-1])
	}
	data[size-1] = byte((size - 1) % 251)
	if err := check(data); err != nil {
		return err
	}
	fmt.Println("ok")
	return Release(key)
}

func TestParentToChild(t *testing.T) {
	keys := checkLeaks(t)
	const size = 1 << 20
	key, data := newSegment(t, keys, size)
	fill(data)
	want := 0
	for _, v := range data {
		want += int(v)
	}

	out := runHelper(t, "attach-sum", key, strconv.Itoa(size))
	if got := strings.TrimSpace(out); got != fmt.Sprint(want, size) {
		t.Fatalf("child printed %q, want %q", got, fmt.Sprint(want, size))
	}
	if data[0] != 100 {
		t.Fatalf("data[0] = %d after the child wrote 100", data[0])
	}
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(key, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read after the creator's Release: %v, want fs.ErrNotExist", err)
	}
}

func TestChildToParent(t *testing.T) {
	keys := checkLeaks(t)
	const size = 3*4096 + 5
	_, stdin, stdout, wait := startHelper(t, "create-fill", strconv.Itoa(size))
	key := readLine(t, stdout)
	keys.add(key)
	t.Cleanup(func() { Unlink(key) }) // if the child dies first

	data, err := Read(key, 0) // the whole segment: its size from shm.Fstat
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Release(key) }) // unmaps, if the test fails first
	if len(data) != segmentSize(size) {
		t.Fatalf("Read(key, 0) mapped %d bytes, want %d", len(data), segmentSize(size))
	}
	if err := check(data[:size]); err != nil {
		t.Fatal(err)
	}
	rw, err := ReadWrite(key[1:], size) // without the slash: the same segment
	if err != nil {
		t.Fatal(err)
	}
	rw[size-1] = 7
	if data[size-1] != 7 {
		t.Fatal("a write through ReadWrite is not seen through Read of the same key")
	}
	if err := Release(key); err != nil { // both mappings
		t.Fatal(err)
	}
	stdin.Close()
	if got := readLine(t, stdout); got != "ok" {
		t.Fatalf("child printed %q, want ok", got)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func TestReadIsReadOnly(t *testing.T) {
	keys := checkLeaks(t)
	key, data := newSegment(t, keys, 4096)
	data[1] = 42
	ro, err := Read(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ro[1] != 42 {
		t.Fatalf("ro[1] = %d, want 42", ro[1])
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	err = func() (err error) {
		defer func() {
			r := recover()
			if e, ok := r.(runtime.Error); ok {
				err = e
			}
		}()
		ro[0] = 1
		return nil
	}()
	if err == nil {
		t.Fatal("a write to a Read mapping did not fault")
	}
	if a, ok := err.(interface{ Addr() uintptr }); !ok || a.Addr() != uintptr(unsafe.Pointer(&ro[0])) {
		t.Fatalf("fault %v, want one at the mapping's first byte", err)
	}
	if data[0] != 0 {
		t.Fatalf("data[0] = %d after a faulting write", data[0])
	}
}

// badKeys are keys that no function may accept, and why; FuzzKey seeds
// them too. None names a file that exists: the escapes that do reach one
// are escapeVictim's, aimed at a file that the test made.
var badKeys = []struct{ key, why string }{
	{"", "empty"},
	{"/", "slash alone"},
	{"//", "two slashes"},
	{"//a", "slash after the first"},
	{"a/b", "slash inside"},
	{"/a/b", "slash inside"},
	{"a/", "trailing slash"},
	{".", "dot"},
	{"..", "dot-dot"},
	{"/.", "slash dot"},
	{"/..", "slash dot-dot"},
	{"../x", "path escape"},
	{"/../shm/x", "path escape"},
	{"a\x00b", "NUL"},
	{"/a\x00", "NUL"},
	{"\x00", "NUL alone"},
	{"/" + strings.Repeat("k", maxKeyLen), "too long"},
	{strings.Repeat("k", maxKeyLen), "too long without slash"},
}

// TestBadKeys: no function accepts a bad key, and the path escapes, aimed
// at files of the test's own, leave them as they were.
func TestBadKeys(t *testing.T) {
	checkLeaks(t)
	v := escapeVictims(t)
	bad := slices.Clone(badKeys)
	for _, k := range v.keys {
		bad = append(bad, struct{ key, why string }{k, "path escape to a file of the test's own"})
	}
	funcs := map[string]func(string) error{
		"Read":      func(k string) error { _, err := Read(k, 0); return err },
		"ReadWrite": func(k string) error { _, err := ReadWrite(k, 0); return err },
		"Unlink":    Unlink,
		"Release":   Release,
	}
	for _, bk := range bad {
		if !v.safe(bk.key) {
			t.Logf("%q (%s) not tried: %s is another program's", bk.key, bk.why, wouldReach(bk.key))
			continue
		}
		for name, f := range funcs {
			err := f(bk.key)
			if err == nil && (name == "Read" || name == "ReadWrite") {
				Release(bk.key) // mapped what it must not have: unmap it
			}
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("%s(%q) (%s): %v, want ErrInvalidKey", name, bk.key, bk.why, err)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != bk.key {
				t.Errorf("%s(%q): %#v, want a *fs.PathError naming the key", name, bk.key, err)
			}
			if err := v.intact(); err != nil {
				t.Fatalf("after %s(%q): %v", name, bk.key, err)
			}
		}
	}
}

func TestKeyForms(t *testing.T) {
	keys := checkLeaks(t)
	key, data := newSegment(t, keys, 100)
	if !strings.HasPrefix(key, "/") || len(key) > 30 {
		t.Fatalf("key %q: want a leading slash and at most 30 bytes", key)
	}
	if !isCreateKey(key) {
		t.Fatalf("isCreateKey(%q) is false", key)
	}
	data[0] = 9
	b, err := Read(key[1:], 1)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 9 {
		t.Fatalf("Read(key without slash) gives %d, want 9", b[0])
	}
	// One Release of either spelling releases both mappings and the name.
	if err := Release(key[1:]); err != nil {
		t.Fatal(err)
	}
	if err := Release(key); !errors.Is(err, ErrNotMapped) {
		t.Fatalf("second Release: %v, want ErrNotMapped", err)
	}
	if err := Unlink(key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Unlink after the creator's Release: %v, want fs.ErrNotExist", err)
	}

	seen := map[string]bool{}
	for range 1000 {
		k := newKey()
		if seen[k] {
			t.Fatalf("newKey repeated %q", k)
		}
		seen[k] = true
		if len(k) != keyLen {
			t.Fatalf("newKey() = %q, %d bytes, want %d", k, len(k), keyLen)
		}
		if _, err := normalize(k); err != nil {
			t.Fatal(err)
		}
	}
}

// randomSeed returns a seed for cryptotest.SetGlobalRandom that differs
// from run to run, so that two runs of the suite at once (each with its own
// deterministic stream) do not make the same keys.
func randomSeed() uint64 { return mrand.Uint64() }

// TestKeysComeFromCryptoRand: keys are drawn from crypto/rand, which is what
// makes them unguessable and unique without coordination (TestKeyForms
// checks only that they do not repeat, which a counter also passes). Under
// cryptotest.SetGlobalRandom crypto/rand is deterministic: the same seed
// must give the same key, another seed another key, and Create the key
// that newKey gives under the same seed.
func TestKeysComeFromCryptoRand(t *testing.T) {
	keys := checkLeaks(t)
	under := func(name string, seed uint64, draw func(t *testing.T) string) (key string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			cryptotest.SetGlobalRandom(t, seed)
			key = draw(t)
		})
		return key
	}
	drawKey := func(*testing.T) string { return newKey() }
	seed := randomSeed()
	a := under("newKey", seed, drawKey)
	b := under("newKey, same seed", seed, drawKey)
	c := under("newKey, another seed", seed^1, drawKey)
	d := under("Create, same seed", seed, func(t *testing.T) string {
		key, _, err := Create(4096)
		if err != nil {
			t.Fatal(err)
		}
		keys.add(key)
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
		return key
	})
	if a == "" || a != b {
		t.Errorf("newKey under seed %d: %q, then %q; want the same key twice", seed, a, b)
	}
	if c == a {
		t.Errorf("newKey under seeds %d and %d: %q both times", seed, seed^1, a)
	}
	if d != a {
		t.Errorf("Create under seed %d made %q, want newKey's %q", seed, d, a)
	}
	if k := newKey(); k == a || k == c {
		t.Errorf("newKey outside SetGlobalRandom gave %q, a key of the seeded streams", k)
	}
}

func TestBadSizes(t *testing.T) {
	keys := checkLeaks(t)
	// math.MaxInt64 and MinInt64 are left out where an int cannot hold
	// them; on 32-bit systems maxSize is math.MaxInt, a valid size.
	for _, size := range ints(0, -1, -4096, math.MinInt32, math.MinInt64, shm.MaxSize+1, math.MaxInt64) {
		key, data, err := Create(size)
		if !errors.Is(err, ErrInvalidSize) || key != "" || data != nil {
			t.Errorf("Create(%d) = %q, %d bytes, %v; want ErrInvalidSize", size, key, len(data), err)
		}
	}

	const size = 8192
	key, _ := newSegment(t, keys, size)
	has := segmentSize(size) // what shm.Fstat says: on macOS, whole pages
	for _, n := range ints(-1, math.MinInt, int64(has+1), 1<<40, shm.MaxSize+1, math.MaxInt) {
		if _, err := Read(key, n); !errors.Is(err, ErrInvalidSize) {
			t.Errorf("Read(key, %d) of %d bytes: %v, want ErrInvalidSize", n, size, err)
		}
		if _, err := ReadWrite(key, n); !errors.Is(err, ErrInvalidSize) {
			t.Errorf("ReadWrite(key, %d) of %d bytes: %v, want ErrInvalidSize", n, size, err)
		}
	}
	for _, n := range []int{1, size - 1, size, has, 0} {
		b, err := ReadWrite(key, n)
		if err != nil {
			t.Fatalf("ReadWrite(key, %d): %v", n, err)
		}
		if want := n + has*btoi(n == 0); len(b) != want {
			t.Fatalf("ReadWrite(key, %d) maps %d bytes, want %d", n, len(b), want)
		}
	}
}

// roundTrip is one round of the concurrency tests: Create size bytes
// (telling made the key), fill them, attach read-write and read-only
// (without the slash) and check, then Release everything.
func roundTrip(size int, made func(key string)) error {
	key, data, err := Create(size)
	if err != nil {
		return err
	}
	made(key)
	fill(data)
	rw, err := ReadWrite(key, 0)
	if err == nil && len(rw) != segmentSize(size) {
		err = fmt.Errorf("ReadWrite(key, 0) of %d bytes mapped %d", size, len(rw))
	}
	if err == nil {
		err = check(rw[:size])
	}
	if err == nil {
		var ro []byte
		if ro, err = Read(key[1:], size/2); err == nil {
			err = check(ro)
		}
	}
	if rerr := Release(key); err == nil {
		err = rerr
	}
	return err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestMissing(t *testing.T) {
	checkLeaks(t)
	key := newKey() // never created
	for name, err := range map[string]error{
		"Read":      second(Read(key, 0)),
		"ReadWrite": second(ReadWrite(key, 10)),
		"Unlink":    Unlink(key),
	} {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s of a missing segment: %v, want fs.ErrNotExist", name, err)
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != key {
			t.Errorf("%s: %#v, want a *fs.PathError naming the key", name, err)
		}
	}
	if err := Release(key); !errors.Is(err, ErrNotMapped) {
		t.Errorf("Release of a key never mapped: %v, want ErrNotMapped", err)
	}
}

func second(_ []byte, err error) error { return err }

func TestReleaseSemantics(t *testing.T) {
	keys := checkLeaks(t)

	// The attaching side's Release leaves the name.
	key, data := newSegment(t, keys, 4096)
	data[0] = 5
	if _, err := ReadWrite(key, 0); err != nil {
		t.Fatal(err)
	}
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
	if err := Release(key); !errors.Is(err, ErrNotMapped) {
		t.Fatalf("second Release: %v, want ErrNotMapped", err)
	}
	var pe *fs.PathError
	if err := Release(key); !errors.As(err, &pe) || pe.Op != "release" || pe.Path != key {
		t.Fatalf("Release error %#v, want *fs.PathError{Op: release, Path: key}", err)
	}

	// Unlink, then Release: the mapping stays valid until Release, which
	// then succeeds without a name to remove.
	key2, data2 := newSegment(t, keys, 4096)
	if err := Unlink(key2); err != nil {
		t.Fatal(err)
	}
	data2[4095] = 3 // still mapped
	if _, err := Read(key2, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read after Unlink: %v, want fs.ErrNotExist", err)
	}
	if err := Release(key2); err != nil {
		t.Fatalf("Release after Unlink: %v, want nil", err)
	}
	if err := Unlink(key2); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Unlink: %v, want fs.ErrNotExist", err)
	}

	// A name removed behind the creator's back is not an error either.
	key3, _ := newSegment(t, keys, 4096)
	if runtime.GOOS == "linux" {
		if err := os.Remove(shm.Dir + key3); err != nil {
			t.Fatal(err)
		}
	}
	if err := Release(key3); err != nil {
		t.Fatalf("Release of a segment whose name is gone: %v", err)
	}
}

func TestReleaseAll(t *testing.T) {
	keys := checkLeaks(t)
	var made []string
	for range 5 {
		key, _ := newSegment(t, keys, 4096)
		if _, err := Read(key, 0); err != nil {
			t.Fatal(err)
		}
		made = append(made, key)
	}
	if err := ReleaseAll(); err != nil {
		t.Fatal(err)
	}
	for _, key := range made {
		if err := Release(key); !errors.Is(err, ErrNotMapped) {
			t.Fatalf("Release(%s) after ReleaseAll: %v, want ErrNotMapped", key, err)
		}
		if _, err := Read(key, 0); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Read(%s) after ReleaseAll: %v, want fs.ErrNotExist", key, err)
		}
	}
	if err := ReleaseAll(); err != nil {
		t.Fatalf("ReleaseAll with nothing held: %v", err)
	}
}

// TestLarge makes a segment past 4 GiB, where the node original stops, and
// reads it back through a second mapping. A 32-bit process makes the largest
// segment it may, maxSize (2 GiB - 1), which fallocate reserves in two
// chunks; with no room left in its address space for a second mapping of
// it, a child process maps it whole and reads it back.
func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("reserves 2 or 4 GiB of shared memory")
	}
	keys := checkLeaks(t)
	size, at := shm.MaxSize, 1<<30 // 32-bit: at the second chunk
	if strconv.IntSize == 64 {
		size, at = bigInt(t, 4<<30+4097), bigInt(t, 1<<32)
	}
	key, data := newSegment(t, keys, size)
	if len(data) != size {
		t.Fatalf("len = %d, want %d", len(data), size)
	}
	data[size-1] = 1
	data[at] = 2
	if strconv.IntSize == 32 {
		out := runHelper(t, "read-bytes", key, strconv.Itoa(size), strconv.Itoa(size-1), strconv.Itoa(at))
		if got := strings.TrimSpace(out); got != "1 2" {
			t.Fatalf("a child's Read(key, 0) of %d bytes: last %s at %d; want 1, 2", size, got, at)
		}
	} else {
		b, err := Read(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != size || b[size-1] != 1 || b[at] != 2 {
			t.Fatalf("Read(key, 0): %d bytes, last %d, at %d %d", len(b), b[size-1], at, b[at])
		}
	}
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrent has many goroutines create, attach, write, check and
// release at once; run it with -race.
func TestConcurrent(t *testing.T) {
	keys := checkLeaks(t)
	const goroutines, rounds = 16, 50
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				err := roundTrip(4096*(g%4+1)+r, func(key string) {
					mu.Lock()
					keys.add(key)
					mu.Unlock()
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
