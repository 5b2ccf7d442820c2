//go:build linux

package shmmap

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hugeMemfd makes a memfd on hugetlbfs (MFD_HUGETLB) of one huge page,
// with exactly the seals given, closed in cleanup; it skips t where the
// kernel makes none. It returns the file and the huge page size.
func hugeMemfd(t *testing.T, seals int) (*os.File, int) {
	t.Helper()
	fd, err := unix.MemfdCreate("shmmap-test-huge", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_HUGETLB)
	if err != nil {
		t.Skipf("no hugetlbfs here: memfd_create(MFD_HUGETLB): %v", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:shmmap-test-huge")
	t.Cleanup(func() { f.Close() })
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	huge := int(st.Blksize) // hugetlbfs's block is its huge page
	if err := f.Truncate(int64(huge)); err != nil {
		t.Fatal(err)
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return f, huge
}

// reserveHugePages makes sure that n huge pages of size huge are free for
// t to map: where fewer are, a test run as root raises the pool
// (nr_hugepages) by what is missing and puts it back in cleanup; else t
// is skipped. It must be called before the mappings are made, so that
// their cleanup runs first.
func reserveHugePages(t *testing.T, huge, n int) {
	t.Helper()
	dir := "/sys/kernel/mm/hugepages/hugepages-" + strconv.Itoa(huge>>10) + "kB/"
	read := func(name string) int {
		b, err := os.ReadFile(dir + name)
		if err != nil {
			t.Skipf("cannot learn the huge page pool: %v", err)
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s%s: %v", dir, name, err)
		}
		return v
	}
	avail := func() int { return read("free_hugepages") - read("resv_hugepages") }
	missing := n - avail()
	if missing <= 0 {
		return
	}
	if os.Geteuid() != 0 {
		t.Skipf("%d huge pages of %d KiB are missing from the pool, and only root may add them", missing, huge>>10)
	}
	old := read("nr_hugepages")
	write := func(v int) error { return os.WriteFile(dir+"nr_hugepages", []byte(strconv.Itoa(v)), 0) }
	t.Cleanup(func() {
		if err := write(old); err != nil {
			t.Errorf("putting %snr_hugepages back to %d: %v", dir, old, err)
		}
	})
	if err := write(old + missing); err != nil {
		t.Skipf("cannot add %d huge pages to the pool: %v", missing, err)
	}
	if avail() < n {
		t.Skipf("the kernel could not add %d huge pages to the pool", missing)
	}
}

// TestHugetlbSealed: a segment on hugetlbfs sealed against size changes
// alone is not sealed, for a hole punched into it gives its huge page back
// to the pool, and the receiver's next access to it faults once the
// sender has taken that page: RequireSealed refuses it with ErrNotSealed,
// saying why, and Sealed is false. With F_SEAL_WRITE or
// F_SEAL_FUTURE_WRITE, which stop the punch, it is sealed for reading;
// for writing, those seals refuse the mapping itself (fs.ErrPermission).
// The refusals need no huge page; the mappings need one each, which the
// test adds to the pool (as root) or skips for want of.
func TestHugetlbSealed(t *testing.T) {
	checkLeaks(t)
	const sizeSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	f, _ := hugeMemfd(t, sizeSeals)
	for _, c := range []struct {
		name string
		mapf func(*os.File, int, ...Option) (*Mapping, error)
	}{{"MapFileReadOnly", MapFileReadOnly}, {"MapFile", MapFile}} {
		m, err := c.mapf(f, 0, RequireSealed())
		if m != nil {
			m.Close()
		}
		if !errors.Is(err, ErrNotSealed) {
			t.Errorf("%s with RequireSealed of a hugetlbfs memfd with F_SEAL_SHRINK|F_SEAL_GROW: %v, want ErrNotSealed", c.name, err)
			continue
		}
		isPathError(t, c.name, err, f.Name(), ErrNotSealed)
		if !strings.Contains(err.Error(), "hugetlbfs") || !strings.Contains(err.Error(), "F_SEAL_FUTURE_WRITE") {
			t.Errorf("%s with RequireSealed: %q does not say why (hugetlbfs, and the seal it wants)", c.name, err)
		}
	}

	t.Run("mapped", func(t *testing.T) {
		checkLeaks(t)
		_, huge := hugeMemfd(t, 0)
		reserveHugePages(t, huge, 3)
		for _, c := range []struct {
			name   string
			seals  int
			sealed bool
		}{
			{"F_SEAL_SHRINK|F_SEAL_GROW", sizeSeals, false},
			{"F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_FUTURE_WRITE", sizeSeals | unix.F_SEAL_FUTURE_WRITE, true},
			{"F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE", sizeSeals | unix.F_SEAL_WRITE, true},
		} {
			f, _ := hugeMemfd(t, c.seals)
			m, err := MapFileReadOnly(f, 0)
			if err != nil {
				t.Fatalf("MapFileReadOnly of a hugetlbfs memfd with %s: %v", c.name, err)
			}
			if m.Sealed() != c.sealed {
				t.Errorf("MapFileReadOnly of a hugetlbfs memfd with %s: Sealed() = %v, want %v", c.name, m.Sealed(), c.sealed)
			}
			m.Close()
			if !c.sealed {
				continue
			}
			m, err = MapFileReadOnly(f, 0, RequireSealed())
			if err != nil {
				t.Errorf("MapFileReadOnly with RequireSealed of a hugetlbfs memfd with %s: %v", c.name, err)
			} else {
				m.Close()
			}
			m, err = MapFile(f, 0, RequireSealed())
			if m != nil {
				m.Close()
			}
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("MapFile with RequireSealed of a hugetlbfs memfd with %s: %v, want fs.ErrPermission", c.name, err)
			}
		}
	})
}
