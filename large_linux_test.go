//go:build linux

package shmmap

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("read-bytes", helperReadBytes)
}

// helperReadBytes KEY SIZE INDEX...: maps all of KEY read-only, checks that
// it has SIZE bytes and prints them at each INDEX, space-separated. TestLarge
// uses it on 32-bit systems (all of them Linux), where the creator has no
// room for a second mapping of the largest segment.
func helperReadBytes(args ...string) error {
	size, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	data, err := Read(args[0], 0)
	if err != nil {
		return err
	}
	if len(data) != size {
		return fmt.Errorf("Read(key, 0) mapped %d bytes, want %d", len(data), size)
	}
	var out []string
	for _, a := range args[2:] {
		i, err := strconv.Atoi(a)
		if err != nil {
			return err
		}
		out = append(out, strconv.Itoa(int(data[i])))
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

var sparseSeq atomic.Int64

// plantSparse makes a segment of size bytes in /dev/shm as another program
// would, and removes it in cleanup: a shell under umask 077 creates a new
// name (noclobber: O_EXCL) with mode 0600, and truncate(1) gives it its size
// with ftruncate, so that it stays sparse and costs no memory however large.
// It returns the segment's key and its path.
func plantSparse(t *testing.T, keys *keySet, size int64) (key, path string) {
	t.Helper()
	name := fmt.Sprintf("shmmap_test_sparse_%d_%d", os.Getpid(), sparseSeq.Add(1))
	path = filepath.Join(shm.Dir, name)
	keys.add("/" + name)
	t.Cleanup(func() { os.Remove(path) })
	cmd := exec.Command("/bin/sh", "-c", `umask 077 && set -C && : >"$1" && exec truncate -s "$2" "$1"`,
		"sh", path, strconv.FormatInt(size, 10))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("planting a %d-byte segment at %s: %v\n%s", size, path, err, out)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != size || fi.Mode() != 0o600 {
		t.Fatalf("planted %s: %d bytes, mode %v; want %d bytes, mode 0600", path, fi.Size(), fi.Mode(), size)
	}
	return "/" + name, path
}

// checkTooLarge checks that err is Read's or ReadWrite's refusal of size 0
// for key, a segment of has bytes, more than a process can map: an
// ErrInvalidSize *fs.PathError naming the key, whose message gives the
// segment's size (not only the limit).
func checkTooLarge(t *testing.T, what, key string, has int64, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalidSize) {
		t.Errorf("%s of a %d-byte segment, past the %d a process can map: %v, want ErrInvalidSize", what, has, int64(shm.MaxSize), err)
		return
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != key {
		t.Errorf("%s: %#v, want a *fs.PathError naming %s", what, err, key)
	}
	if want := "has " + strconv.FormatInt(has, 10) + " bytes"; !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %q does not say that the segment %s", what, err, want)
	}
}

// refusesWhole checks that Read and ReadWrite of key, a segment of has
// bytes, more than a process can map, refuse size 0 as checkTooLarge says.
func refusesWhole(t *testing.T, key string, has int64) {
	t.Helper()
	for _, c := range []struct {
		what   string
		attach func(string, int, ...Option) ([]byte, error)
	}{{"Read(key, 0)", Read}, {"ReadWrite(key, 0)", ReadWrite}} {
		b, err := c.attach(key, 0)
		checkTooLarge(t, c.what, key, has, err)
		if err == nil {
			t.Fatalf("%s mapped %d bytes", c.what, len(b))
		}
	}
}

// TestLargeOffsets checks, on every architecture, the sizes and offsets
// past what 32 bits hold: Create past 1 GiB, where fallocate's second chunk
// starts; an attach to a 3 GiB segment that another program made (a 32-bit
// process must open it with O_LARGEFILE, and may map a prefix of it); and a
// segment one byte larger than any process here can map, whose size 0 must
// be refused before mmap, naming the segment's size.
func TestLargeOffsets(t *testing.T) {
	t.Run("CreatePast1GiB", func(t *testing.T) {
		keys := checkLeaks(t)
		const size = 1<<30 + 1
		key, data := newSegment(t, keys, size)
		if len(data) != size {
			t.Fatalf("Create(%d) mapped %d bytes", size, len(data))
		}
		// Before touching the end, which would fault if it were missing:
		// the segment has its size, and fallocate reserved all of it.
		var st unix.Stat_t
		if err := unix.Stat(shm.Dir+key, &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != size || st.Blocks*512 < size {
			t.Fatalf("Create(%d) made a segment of %d bytes with %d reserved", size, st.Size, st.Blocks*512)
		}
		data[size-2] = 1 // the last byte of the first GiB
		data[size-1] = 2 // the last byte, just past 1 GiB
		b, err := Read(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != size || b[size-2] != 1 || b[size-1] != 2 {
			t.Fatalf("Read(key, 0): %d bytes, %d and %d at the end; want %d bytes, 1 and 2", len(b), b[size-2], b[size-1], size)
		}
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Attach3GiB", func(t *testing.T) {
		keys := checkLeaks(t)
		const size int64 = 3 << 30
		key, path := plantSparse(t, keys, size)
		t.Cleanup(func() { Release(key) })

		rw, err := ReadWrite(key, 4096)
		if err != nil {
			t.Fatalf("ReadWrite(key, 4096) of a 3 GiB segment: %v", err)
		}
		if len(rw) != 4096 {
			t.Fatalf("ReadWrite(key, 4096) mapped %d bytes", len(rw))
		}
		rw[0], rw[4095] = 0xa5, 0x5a
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4096)
		_, err = f.ReadAt(got, 0)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, rw) || got[0] != 0xa5 || got[4095] != 0x5a {
			t.Fatalf("the file reads %d...%d, not what was written through the mapping", got[0], got[4095])
		}

		if strconv.IntSize == 32 {
			refusesWhole(t, key, size)
			// The largest prefix that a 32-bit process may map.
			b, err := Read(key, shm.MaxSize)
			if err != nil {
				t.Fatalf("Read(key, %d) of a 3 GiB segment: %v", shm.MaxSize, err)
			}
			if len(b) != shm.MaxSize || b[0] != 0xa5 || b[shm.MaxSize-1] != 0 {
				t.Fatalf("Read(key, %d): %d bytes, first %d, last %d", shm.MaxSize, len(b), b[0], b[len(b)-1])
			}
		} else {
			b, err := Read(key, 0)
			if err != nil {
				t.Fatalf("Read(key, 0) of a 3 GiB segment: %v", err)
			}
			n := len(b)
			if int64(n) != size || b[0] != 0xa5 || b[n-1] != 0 {
				t.Fatalf("Read(key, 0): %d bytes, first %d, last %d; want %d, 0xa5, 0", n, b[0], b[n-1], size)
			}
		}
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PastMaxSize", func(t *testing.T) {
		keys := checkLeaks(t)
		const size = int64(shm.MaxSize) + 1
		key, _ := plantSparse(t, keys, size)
		t.Cleanup(func() { Release(key) })
		refusesWhole(t, key, size)
		b, err := Read(key, 4096)
		if err != nil {
			t.Fatalf("Read(key, 4096) of a %d-byte segment: %v", size, err)
		}
		if len(b) != 4096 || b[4095] != 0 {
			t.Fatalf("Read(key, 4096): %d bytes, last %d", len(b), b[len(b)-1])
		}
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
	})
}
