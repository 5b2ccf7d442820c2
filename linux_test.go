//go:build linux

package shmmap

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("mode", helperMode)
	registerHelper("fds", helperFDs)
	registerHelper("as-nobody", helperAsNobody)
	registerHelper("full-shm", helperFullShm)
	registerHelper("create-too-big", helperCreateTooBig)
}

// helperMode UMASK: creates a segment under that umask and prints its mode.
func helperMode(args ...string) error {
	mask, err := strconv.ParseUint(args[0], 8, 32)
	if err != nil {
		return err
	}
	unix.Umask(int(mask))
	key, _, err := Create(4096)
	if err != nil {
		return err
	}
	fi, err := os.Stat(shmDir + key)
	if err != nil {
		return err
	}
	fmt.Printf("%#o\n", fi.Mode().Perm())
	return Release(key)
}

// helperFDs prints every fd and mapping of shared memory (a /dev/shm file,
// a memfd) that this process has: an exec'd child must have none.
func helperFDs(args ...string) error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); isShmTarget(target) {
			fmt.Println("fd", e.Name(), target)
		}
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if isShmMapping(line) {
			fmt.Println("map", line)
		}
	}
	return nil
}

// helperAsNobody KEY: drops root for uid and gid 65534, then tries to map
// KEY and prints the error.
func helperAsNobody(args ...string) error {
	if err := syscall.Setgid(65534); err != nil {
		return err
	}
	if err := syscall.Setuid(65534); err != nil {
		return err
	}
	_, err := ReadWrite(args[0], 0)
	fmt.Println(errors.Is(err, fs.ErrPermission), err)
	_, err = Read(args[0], 0)
	fmt.Println(errors.Is(err, fs.ErrPermission), err)
	return nil
}

// helperFullShm runs in its own mount namespace (see TestFullShm) and
// mounts a 1 MiB tmpfs on /dev/shm, which only this process sees.
func helperFullShm(args ...string) error {
	if err := mountShm("1m"); err != nil {
		return err
	}
	empty := func() error {
		ents, err := os.ReadDir(shmDir)
		if err != nil || len(ents) != 0 {
			return fmt.Errorf("/dev/shm holds %v (%v), want nothing", ents, err)
		}
		return helperFDs()
	}
	// More than the whole filesystem.
	if _, _, err := Create(2 << 20); !errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("Create(2 MiB) on a 1 MiB /dev/shm: %v, want ENOSPC", err)
	}
	if err := empty(); err != nil {
		return err
	}
	// Three quarters fit, and every byte of them is writable.
	key, data, err := Create(768 << 10)
	if err != nil {
		return err
	}
	for i := range data {
		data[i] = 0xff
	}
	// The last quarter cannot hold half a MiB more.
	_, _, err = Create(512 << 10)
	if !errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("Create(512 KiB) with 256 KiB free: %v, want ENOSPC", err)
	}
	fmt.Println(err)
	if ents, _ := os.ReadDir(shmDir); len(ents) != 1 || "/"+ents[0].Name() != key {
		return fmt.Errorf("/dev/shm holds %v, want only %s", ents, key)
	}
	if err := Release(key); err != nil {
		return err
	}
	if err := empty(); err != nil {
		return err
	}
	fmt.Println("ok")
	return nil
}

// runPrivateShm runs helper name in a mount namespace of its own, where it
// mounts a tmpfs of its own on /dev/shm (mountShm) that no other process
// sees, and returns what it printed; it skips t where that cannot be done,
// and fails it if the helper fails.
func runPrivateShm(t *testing.T, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs on /dev/shm in a private mount namespace")
	}
	cmd := helperCommand(t, name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot make a mount namespace here: %v", err)
		}
		t.Fatalf("helper: %v\n%s", err, out)
	}
	return string(out)
}

// mountShm mounts a tmpfs of size (tmpfs's size= option) on /dev/shm; for
// helpers that runPrivateShm runs, in a mount namespace of their own.
func mountShm(size string) error {
	if err := unix.Mount("shmmap-test", shmDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=1777"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	return nil
}

func TestFullShm(t *testing.T) {
	checkLeaks(t)
	out := runPrivateShm(t, "full-shm")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[1] != "ok" || !strings.HasPrefix(lines[0], "fallocate /shmmap_") || !strings.HasSuffix(lines[0], ": no space left on device") {
		t.Fatalf("helper printed:\n%s\nwant the ENOSPC error from fallocate, then ok", out)
	}
}

func TestMode(t *testing.T) {
	checkLeaks(t)
	for _, mask := range []string{"0", "022", "077", "0277", "0777"} {
		if got := strings.TrimSpace(runHelper(t, "mode", mask)); got != "0600" {
			t.Errorf("mode under umask %s: %s, want 0600", mask, got)
		}
	}
}

func TestPermission(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	keys := checkLeaks(t)
	key, _ := newSegment(t, keys, 4096)
	out := runHelper(t, "as-nobody", key)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "true ") || !strings.Contains(line, key) {
			t.Errorf("another user mapping a 0600 segment: %q, want an fs.ErrPermission error naming the key", line)
		}
	}
}

// TestNoInheritance execs children while other goroutines create and attach
// segments, named and anonymous: no child may inherit an fd (O_CLOEXEC,
// MFD_CLOEXEC) or a mapping.
func TestNoInheritance(t *testing.T) {
	keys := checkLeaks(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				key, _, err := Create(1 << 16)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				keys.add(key)
				mu.Unlock()
				_, err = Read(key, 0)
				if rerr := Release(key); err == nil {
					err = rerr
				}
				if err == nil {
					err = anonymousRoundTrip()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 8 {
		if out := runHelper(t, "fds"); out != "" {
			t.Errorf("an exec'd child inherited:\n%s", out)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// anonymousRoundTrip creates an anonymous segment, maps its file a second
// time and closes both.
func anonymousRoundTrip() error {
	m, err := CreateAnonymous(1 << 16)
	if err != nil {
		return err
	}
	other, err := ReadFile(m.File(), 0)
	if err == nil {
		err = other.Close()
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestForeignSegments attaches to names made as other programs make them:
// Python's (no slash in the name given), the longest Linux allows, empty.
func TestForeignSegments(t *testing.T) {
	keys := checkLeaks(t)
	pyName := "psm_" + strconv.Itoa(os.Getpid()) + "_t"
	plantSegment(t, keys, pyName, 10000)
	for _, key := range []string{pyName, "/" + pyName} {
		b, err := ReadWrite(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 10000 {
			t.Fatalf("ReadWrite(%q, 0) maps %d bytes, want 10000", key, len(b))
		}
	}
	if err := Release(pyName); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(shmDir, pyName)); err != nil {
		t.Fatalf("Release of an attached segment removed its name: %v", err)
	}

	long := strings.Repeat("L", 255-len(pyName)) + pyName
	plantSegment(t, keys, long, 4096)
	if _, err := Read(long, 0); err != nil {
		t.Fatalf("Read of a 255-byte name: %v", err)
	}
	if err := Release(long); err != nil {
		t.Fatal(err)
	}
	if _, err := Read("x"+long, 0); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Read of a 256-byte name: %v, want ErrInvalidKey", err)
	}

	empty := "shmmap_test_empty_" + strconv.Itoa(os.Getpid())
	plantSegment(t, keys, empty, 0)
	if _, err := Read(empty, 0); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("Read(empty segment, 0): %v, want ErrInvalidSize", err)
	}

	// A symlink in /dev/shm is not followed.
	link := "shmmap_test_link_" + strconv.Itoa(os.Getpid())
	if err := os.Symlink(filepath.Join(shmDir, pyName), filepath.Join(shmDir, link)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(shmDir, link)) })
	keys.add("/" + link)
	if _, err := Read(link, 0); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("Read of a symlink: %v, want ELOOP", err)
	}
}

// TestCreateFailureLeavesNothing makes Create fail after shm_open, at the
// reservation of more than /dev/shm can hold: past reserveChunk, so that it
// is the check before fallocate's chunks that fails (TestFullShm has the
// failures of a single fallocate). Where that is more than this process may
// ask for (32-bit, with /dev/shm as large as memory), a helper does it on a
// smaller tmpfs in a private mount namespace.
func TestCreateFailureLeavesNothing(t *testing.T) {
	checkLeaks(t)
	var st unix.Statfs_t
	if err := unix.Statfs(shmDir, &st); err != nil {
		t.Fatal(err)
	}
	total := st.Blocks * uint64(st.Bsize)
	if total+1<<30 <= maxSize {
		if err := createTooBig(int(total + 1<<30)); err != nil {
			t.Fatal(err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skipf("/dev/shm (%d bytes) is as large as this process' address space, and a smaller one needs root to mount", total)
	}
	out := runPrivateShm(t, "create-too-big")
	if got := strings.TrimSpace(out); got != "ok" {
		t.Fatalf("helper printed:\n%s\nwant ok", out)
	}
}

// helperCreateTooBig runs in its own mount namespace (see
// TestCreateFailureLeavesNothing), mounts a tmpfs of 1 GiB + 64 MiB on
// /dev/shm, which only this process sees, and does the test's work on it
// with Create(maxSize): 2 GiB - 1 on 32-bit systems, of which the first
// 1 GiB chunk would fit.
func helperCreateTooBig(args ...string) error {
	if err := mountShm("1088m"); err != nil {
		return err
	}
	if err := createTooBig(maxSize); err != nil {
		return err
	}
	if ents, err := os.ReadDir(shmDir); err != nil || len(ents) != 0 {
		return fmt.Errorf("/dev/shm holds %v (%v), want nothing", ents, err)
	}
	fmt.Println("ok")
	return nil
}

// createTooBig checks that Create(tooBig), more than /dev/shm holds, fails
// with ENOSPC from fallocate and leaves no name behind.
func createTooBig(tooBig int) error {
	names := func() (map[string]bool, error) {
		ents, err := os.ReadDir(shmDir)
		m := map[string]bool{}
		for _, e := range ents {
			m[e.Name()] = true
		}
		return m, err
	}
	before, err := names()
	if err != nil {
		return err
	}
	key, _, err := Create(tooBig)
	if err == nil {
		Release(key)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("Create(%d), more than /dev/shm holds: %v, want ENOSPC", tooBig, err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "fallocate" || !strings.HasPrefix(pe.Path, keyPrefix) {
		return fmt.Errorf("error %#v, want a fallocate *fs.PathError with the key", err)
	}
	if _, err := os.Stat(shmDir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed Create left %s: %v", pe.Path, err)
	}
	// Nor any other name: the segment had none until it was made.
	after, err := names()
	if err != nil {
		return err
	}
	for name := range after {
		if !before[name] && isCreateKey("/"+name) && creatorState("/"+name) != CreatorAlive {
			return fmt.Errorf("failed Create left %s", name)
		}
	}
	return nil
}

// plantSegment makes a segment named name (no leading slash) of size bytes
// directly in /dev/shm, as another program would, and removes it in cleanup.
func plantSegment(t *testing.T, keys *keySet, name string, size int) {
	t.Helper()
	path := filepath.Join(devShm, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	keys.add("/" + name)
	t.Cleanup(func() { os.Remove(path) })
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
}

// rss returns how many bytes of the mapping that starts at data's first byte
// are in this process' page tables, from /proc/self/smaps.
func rss(t *testing.T, data []byte) int {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(unsafe.SliceData(data))))
	in := false
	for _, line := range strings.Split(string(smaps), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasPrefix(line, start)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no mapping at %s in /proc/self/smaps", start)
	return 0
}

// TestPopulate checks that Populate really fills the page tables, for
// Create and for both attaches, and that without it nothing is mapped in
// until touched. A nil Option changes nothing.
func TestPopulate(t *testing.T) {
	keys := checkLeaks(t)
	const size = 8 << 20
	check := func(what string, b []byte, err error, want int) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := rss(t, b); got != want {
			t.Errorf("%s: %d bytes resident, want %d", what, got, want)
		}
	}

	key, data, err := Create(size, nil)
	if err == nil {
		keys.add(key)
		t.Cleanup(func() { Release(key) })
	}
	check("Create", data, err, 0)
	data[size-1] = 9

	ro, err := Read(key, 0, Populate())
	check("Read with Populate", ro, err, size)
	rw, err := ReadWrite(key, size/2, nil, Populate())
	check("ReadWrite with Populate", rw, err, size/2)
	if ro[size-1] != 9 {
		t.Errorf("a populated mapping does not see the segment's bytes")
	}
	rw[0] = 7
	if data[0] != 7 {
		t.Errorf("a write through a populated mapping is not seen through another")
	}

	key2, data2, err := Create(size, Populate())
	if err == nil {
		keys.add(key2)
		t.Cleanup(func() { Release(key2) })
	}
	check("Create with Populate", data2, err, size)
	for i, b := range data2 {
		if b != 0 {
			t.Fatalf("byte %d of a new populated segment is %d", i, b)
		}
	}
}
