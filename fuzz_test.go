package shmmap

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

// FuzzKey: any string as a key to Read, ReadWrite, Unlink and Release gives
// an error or works, never panics, and a key that is accepted names one
// entry directly in the shm namespace. Seeds are badKeys, path escapes aimed
// at files that the fuzz function makes (escapeVictims), and
// testdata/fuzz/FuzzKey.
//
// The suite runs as root, so the target must not be able to harm anything
// even if key validation breaks: a key goes to the functions only if what
// it would reach taken as a path is missing, a directory or a victim
// (victims.safe), Unlink only if normalize rejects it or its name is
// missing, and every input checks that the victims are intact.
func FuzzKey(f *testing.F) {
	v := escapeVictims(f)
	for _, k := range v.keys {
		f.Add(k)
	}
	for _, bk := range badKeys {
		f.Add(bk.key)
	}
	f.Add("psm_ab12")
	f.Add("/shmmap_0000000000000000000000")
	f.Fuzz(func(t *testing.T, key string) {
		checkLeaks(t)
		name, err := normalize(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("normalize(%q): %v, want ErrInvalidKey", key, err)
			}
		} else {
			base := name[1:]
			if name[0] != '/' || base == "" || base == "." || base == ".." ||
				strings.ContainsAny(base, "/\x00") || len(name) > maxKeyLen {
				t.Fatalf("normalize(%q) accepted %q, which is not one shm name", key, name)
			}
		}
		if !v.safe(key) {
			t.Skipf("%s exists and is not the test's: %q is not tried", wouldReach(key), key)
		}
		defer func() {
			if err := v.intact(); err != nil {
				t.Fatalf("key %q: %v", key, err)
			}
		}()
		for _, err := range []error{second(Read(key, 0)), second(ReadWrite(key, 1))} {
			if err == nil {
				Release(key) // a real segment of that name: let it be
			}
		}
		if err := Release(key); err == nil {
			t.Fatalf("Release(%q) of a key not held succeeded", key)
		}
		// Unlink only names that do not exist, on every system: the fuzzer
		// must not remove another program's segment that it happens to
		// name. Anything but ENOENT from an open means something is there.
		if name != "" {
			fd, err := shm.OpenName(name, unix.O_RDONLY, 0)
			if err == nil {
				shm.CloseFD(fd)
			}
			if err != unix.ENOENT {
				return
			}
		}
		if err := Unlink(key); err == nil {
			t.Fatalf("Unlink(%q) of a missing name succeeded", key)
		}
	})
}

// TestEscapeVictims: each of the escapes that FuzzKey and TestBadKeys try,
// taken as a path under the shm directory, names a victim, both with Linux's
// directory and with none (macOS's: the escapes are then paths from the
// root), so that the keys aim at something on every system.
func TestEscapeVictims(t *testing.T) {
	for _, dir := range []string{shm.Dir, ""} {
		v := escapeVictimsFrom(t, dir)
		base := "/"
		if dir != "" {
			b, err := filepath.EvalSymlinks(dir)
			if err != nil {
				t.Fatal(err)
			}
			base = b
		}
		for _, k := range v.keys {
			fi, err := os.Lstat(filepath.Join(base, k))
			if err != nil || !slices.ContainsFunc(v.infos, func(own os.FileInfo) bool { return os.SameFile(fi, own) }) {
				t.Errorf("shm directory %q: key %q reaches %s (%v), not a victim", dir, k, filepath.Join(base, k), err)
			}
		}
		if err := v.intact(); err != nil {
			t.Error(err)
		}
	}
}

// fuzzCreateLimit bounds the sizes FuzzSize creates for real: between it
// and maxSize the kernel's reservation is what runs (TestLarge,
// TestCreateUnderSignals, TestCreateFailureLeavesNothing), and a fuzzer
// must not fill memory.
const fuzzCreateLimit = 64 << 20

// FuzzSize: any size for Create, Read and ReadWrite gives an error or a
// slice of exactly that size, never a panic or a fault.
func FuzzSize(f *testing.F) {
	for _, n := range ints(0, 1, -1, 4095, 4096, 4097, 1<<20, shm.MaxSize, shm.MaxSize+1, -shm.MaxSize, 1<<63-1, -1<<63) {
		f.Add(n)
	}
	key := foreignSegment(f, 8192) // Release of an attachment keeps its name
	has := segmentSize(8192)       // what shm.Fstat says: on macOS, whole pages
	f.Fuzz(func(t *testing.T, size int) {
		checkLeaks(t)
		if size <= fuzzCreateLimit || size > shm.MaxSize {
			k, b, err := Create(size)
			switch {
			case err == nil && len(b) != size:
				t.Fatalf("Create(%d) gave %d bytes", size, len(b))
			case err == nil:
				b[0], b[size-1] = 1, 1
				if err := Release(k); err != nil {
					t.Fatal(err)
				}
			case size > 0 && size <= shm.MaxSize && !errors.Is(err, ErrInvalidSize):
				// A valid size may still fail for want of memory, but not here.
				t.Fatalf("Create(%d): %v", size, err)
			case (size <= 0 || size > shm.MaxSize) && !errors.Is(err, ErrInvalidSize):
				t.Fatalf("Create(%d): %v, want ErrInvalidSize", size, err)
			}
		}
		for _, attach := range []func(string, int, ...Option) ([]byte, error){Read, ReadWrite} {
			b, err := attach(key, size)
			want := size
			if size == 0 {
				want = has
			}
			switch {
			case err == nil && (size < 0 || size > has || len(b) != want):
				t.Fatalf("attach(key, %d) of %d bytes gave %d bytes", size, has, len(b))
			case err == nil:
				_ = b[len(b)-1] // touch the last byte: no fault
				if err := Release(key); err != nil {
					t.Fatal(err)
				}
			case size >= 0 && size <= has:
				t.Fatalf("attach(key, %d) of %d bytes: %v", size, has, err)
			case !errors.Is(err, ErrInvalidSize):
				t.Fatalf("attach(key, %d): %v, want ErrInvalidSize", size, err)
			}
		}
	})
}
