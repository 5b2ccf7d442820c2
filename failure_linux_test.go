//go:build linux

package shmmap

// Running out of something (a full /dev/shm, fds, address space, the map
// count): a clear error that says what, and nothing left behind.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("no-proc", helperNoProc)
	registerHelper("shm-symlink", helperShmSymlink)
	registerHelper("emfile", helperEMFILE)
	registerHelper("enomem", helperENOMEM)
	registerHelper("map-count", helperMapCount)
	registerHelper("full-shm", helperFullShm)
	registerHelper("create-too-big", helperCreateTooBig)
}

// helperEMFILE KEY: lowers RLIMIT_NOFILE and opens /dev/null until no fd
// is left, then checks that Create, ReadWrite and CreateAnonymous fail
// with EMFILE and leave nothing.
func helperEMFILE(args ...string) error {
	lim := unix.Rlimit{Cur: 64, Max: 64}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	fds, err := exhaust(unix.EMFILE, func(int) (int, error) {
		return unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return err
	}
	key, _, cerr := Create(4096)
	_, rerr := ReadWrite(args[0], 0)
	m, aerr := CreateAnonymous(4096)
	for _, fd := range fds {
		unix.Close(fd)
	}
	if !errors.Is(cerr, syscall.EMFILE) {
		return fmt.Errorf("Create with no fd left: %v, want EMFILE", cerr)
	}
	if m != nil || !errors.Is(aerr, syscall.EMFILE) {
		return fmt.Errorf("CreateAnonymous with no fd left: %v, want EMFILE", aerr)
	}
	if !errors.Is(rerr, syscall.EMFILE) {
		return fmt.Errorf("ReadWrite with no fd left: %v, want EMFILE", rerr)
	}
	if key != "" {
		return fmt.Errorf("Create with no fd left returned key %q", key)
	}
	var pe *fs.PathError
	if errors.As(cerr, &pe) && pe.Path != "" {
		if _, err := os.Lstat(shm.Dir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed Create left %s: %v", pe.Path, err)
		}
	}
	return ownLeftovers()
}

// exhaust calls take(0), take(1), ... until one fails with limit, and
// returns what they took, for the caller to give back; at any other error
// it returns that error (the test process is about to exit). The slice is
// made once, large enough for any limit met here, so that taking the last
// of something needs no memory of its own: at the map count, the runtime
// cannot map more heap.
func exhaust[T any](limit error, take func(i int) (T, error)) ([]T, error) {
	taken := make([]T, 0, 1<<17)
	for i := 0; ; i++ {
		v, err := take(i)
		if err == limit {
			return taken, nil
		}
		if err != nil {
			return nil, err
		}
		taken = append(taken, v)
	}
}

// ownLeftovers fails if this process holds an fd or mapping of /dev/shm,
// and prints "ok" if not.
func ownLeftovers() error {
	h, err := heldBy(0)
	if err == nil {
		err = h.nothing()
	}
	if err == nil {
		fmt.Println("ok")
	}
	return err
}

func TestEMFILE(t *testing.T) {
	keys := checkLeaks(t)
	name := "shmmap_test_emfile_" + strconv.Itoa(os.Getpid())
	plantSegment(t, keys, name, 4096)
	if out := strings.TrimSpace(runHelper(t, "emfile", name)); out != "ok" {
		t.Fatalf("helper printed %q", out)
	}
}

// helperENOMEM: lowers RLIMIT_AS to what the process uses plus 256 MiB and
// creates 1 GiB, named and anonymous: the reservation works (tmpfs pages
// are not address space), the mmap fails with ENOMEM, and the name, the
// fd and the memfd must be gone. The headroom is for the Go runtime, which
// reserves its heap 64 MiB (an arena) at a time: with only 64 MiB, one new
// arena left none, and the runtime died with "cannot allocate memory" in
// one run of six.
func helperENOMEM(args ...string) error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	var vmKB uint64
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmSize:" {
			vmKB, _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	limit := vmKB<<10 + 256<<20
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		return err
	}
	_, _, err = Create(1 << 30)
	var pe *fs.PathError
	if !errors.Is(err, syscall.ENOMEM) || !errors.As(err, &pe) || pe.Op != "mmap" {
		return fmt.Errorf("Create(1 GiB) under RLIMIT_AS: %v, want an ENOMEM from mmap", err)
	}
	if _, err := os.Stat(shm.Dir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed Create left %s: %v", pe.Path, err)
	}
	// The same for an anonymous segment, whose memfd ownLeftovers looks
	// for.
	m, err := CreateAnonymous(1 << 30)
	if m != nil || !errors.Is(err, syscall.ENOMEM) || !errors.As(err, &pe) || pe.Op != "mmap" {
		return fmt.Errorf("CreateAnonymous(1 GiB) under RLIMIT_AS: %v, want an ENOMEM from mmap", err)
	}
	return ownLeftovers()
}

func TestENOMEM(t *testing.T) {
	checkLeaks(t)
	if out := strings.TrimSpace(runHelper(t, "enomem")); out != "ok" {
		t.Fatalf("helper printed %q", out)
	}
}

// helperMapCount: takes every mapping vm.max_map_count allows, then
// Creates and prints the error. At the limit the Go runtime itself cannot
// map memory for a new span (a fatal error, whatever the library does), so
// the heap is grown and freed first and the collector stopped: Create's
// few small allocations then come from spans the runtime already has.
func helperMapCount(args ...string) error {
	junk := make([][]byte, 1<<16)
	for i := range junk {
		junk[i] = make([]byte, 8+i%1024)
	}
	runtime.KeepAlive(junk)
	junk = nil
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	maps, err := exhaust(unix.ENOMEM, func(i int) (unsafe.Pointer, error) {
		// Alternate the protection so that neighbours do not merge.
		prot := unix.PROT_READ
		if i%2 == 1 {
			prot = unix.PROT_NONE
		}
		return unix.MmapPtr(-1, 0, nil, 4096, prot, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	})
	if err != nil {
		return err
	}
	_, _, err = Create(4096)
	for _, p := range maps {
		unix.MunmapPtr(p, 4096)
	}
	var pe *fs.PathError
	if !errors.Is(err, syscall.ENOMEM) || !errors.As(err, &pe) || pe.Op != "mmap" {
		return fmt.Errorf("Create at the map count: %v, want an ENOMEM from mmap", err)
	}
	if _, err := os.Lstat(shm.Dir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed Create left %s: %v", pe.Path, err)
	}
	fmt.Println(err)
	return ownLeftovers()
}

// TestMapCount: at vm.max_map_count, Create's ENOMEM says so.
func TestMapCount(t *testing.T) {
	checkLeaks(t)
	if raceEnabled {
		// At the map count, ThreadSanitizer's allocator cannot map either,
		// and it ends the helper wherever it next needs memory.
		t.Skip("the race detector needs mappings of its own at vm.max_map_count; run without -race")
	}
	out := runHelper(t, "map-count")
	if !strings.Contains(out, "cannot allocate memory: this process has") ||
		!strings.Contains(out, "at the limit vm.max_map_count =") || !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("helper printed %q, want ENOMEM naming vm.max_map_count", out)
	}
}

// TestMessages reads the messages of errors whose wording once misled.
func TestMessages(t *testing.T) {
	checkLeaks(t)
	for _, c := range []struct {
		err  error
		want string
	}{
		{second(Read(strings.Repeat("k", 256), 0)),
			`shm_open ` + strings.Repeat("k", 256) + `: shmmap: invalid key: "` + strings.Repeat("k", 256) + `" is 257 bytes with its leading slash, more than 256`},
		{second(Read("/"+strings.Repeat("k", 256), 0)),
			`is 257 bytes with its leading slash, more than 256`},
		{second(Read("/x", -1)), "mmap /x: shmmap: invalid size -1: want 0 <= size <= "},
		{func() error { _, _, err := Create(0); return err }(), "create (new segment): shmmap: invalid size 0: want 0 < size <= "},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("error %q, want it to contain %q", c.err, c.want)
		}
	}
}

// helperFullShm runs in its own mount namespace (see TestFullShm) and
// mounts a 1 MiB tmpfs on /dev/shm, which only this process sees.
func helperFullShm(args ...string) error {
	if err := unix.Mount("shmmap-test", shm.Dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=1777"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	empty := func() error {
		ents, err := os.ReadDir(shm.Dir)
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
	if ents, _ := os.ReadDir(shm.Dir); len(ents) != 1 || "/"+ents[0].Name() != key {
		return fmt.Errorf("/dev/shm holds %v, want only %s", ents, key)
	}
	if err := Release(key); err != nil {
		return err
	}
	if err := empty(); err != nil {
		return err
	}
	// An anonymous segment takes memory that no mount's size limits: 64
	// MiB, every byte written, on this 1 MiB /dev/shm.
	m, err := CreateAnonymous(64 << 20)
	if err != nil {
		return err
	}
	data = m.Bytes()
	for i := range data {
		data[i] = 0xff
	}
	if !m.Sealed() {
		return errors.New("the anonymous segment is not sealed")
	}
	if err := m.Close(); err != nil {
		return err
	}
	if err := empty(); err != nil {
		return err
	}
	fmt.Println("ok")
	return nil
}

// TestFullShm: on a 1 MiB /dev/shm (a private tmpfs), Create of more than
// is free is ENOSPC from fallocate, not a SIGBUS later, and leaves nothing;
// what fits is writable to the last byte; and an anonymous segment of 64
// MiB is made and written all the same, as /dev/shm's size does not count
// it (Docker's 64 MiB /dev/shm is the same hazard).
func TestFullShm(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs on /dev/shm in a private mount namespace")
	}
	checkLeaks(t)
	out := inMountNamespace(t, "full-shm")
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[1] != "ok" || !strings.HasPrefix(lines[0], "fallocate /shmmap_") || !strings.HasSuffix(lines[0], ": no space left on device") {
		t.Fatalf("helper printed:\n%s\nwant the ENOSPC error from fallocate, then ok", out)
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
	if err := unix.Statfs(shm.Dir, &st); err != nil {
		t.Fatal(err)
	}
	total := st.Blocks * uint64(st.Bsize)
	if total+1<<30 <= shm.MaxSize {
		if err := createTooBig(int(total + 1<<30)); err != nil {
			t.Fatal(err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skipf("/dev/shm (%d bytes) is as large as this process' address space, and a smaller one needs root to mount", total)
	}
	out := inMountNamespace(t, "create-too-big")
	if got := strings.TrimSpace(string(out)); got != "ok" {
		t.Fatalf("helper printed:\n%s\nwant ok", out)
	}
}

// helperCreateTooBig runs in its own mount namespace (see
// TestCreateFailureLeavesNothing), mounts a tmpfs of 1 GiB + 64 MiB on
// /dev/shm, which only this process sees, and does the test's work on it
// with Create(maxSize): 2 GiB - 1 on 32-bit systems, of which the first
// 1 GiB chunk would fit.
func helperCreateTooBig(args ...string) error {
	if err := unix.Mount("shmmap-test", shm.Dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1088m,mode=1777"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	if err := createTooBig(shm.MaxSize); err != nil {
		return err
	}
	if ents, err := os.ReadDir(shm.Dir); err != nil || len(ents) != 0 {
		return fmt.Errorf("/dev/shm holds %v (%v), want nothing", ents, err)
	}
	fmt.Println("ok")
	return nil
}

// createTooBig checks that Create(tooBig), more than /dev/shm holds, fails
// with ENOSPC from fallocate and leaves no name behind.
func createTooBig(tooBig int) error {
	names := func() (map[string]bool, error) {
		ents, err := os.ReadDir(shm.Dir)
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
	if _, err := os.Stat(shm.Dir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
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

// helperShmSymlink runs in its own mount namespace (see TestShmSymlink):
// it mounts a tmpfs on /dev, which only this process sees, makes
// /dev/shm a symlink to /dev/realshm, as some systems have it (/run/shm),
// and checks that segments are made, opened and listed through it.
func helperShmSymlink(args ...string) error {
	if err := unix.Mount("shmmap-test", "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs on /dev: %w", err)
	}
	if err := os.Mkdir("/dev/realshm", 0o1777); err != nil {
		return err
	}
	if err := os.Symlink("realshm", shm.Dir); err != nil {
		return err
	}
	key, data, err := Create(4096)
	if err != nil {
		return err
	}
	data[0] = 7
	if _, err := os.Stat("/dev/realshm" + key); err != nil {
		return fmt.Errorf("the segment is not in the symlink's target: %w", err)
	}
	b, err := Read(key, 0)
	if err != nil {
		return err
	}
	segs, err := List()
	if err != nil {
		return err
	}
	if len(segs) != 1 || segs[0].Key != key || segs[0].Creator != CreatorAlive || b[0] != 7 {
		return fmt.Errorf("List: %+v, read %d", segs, b[0])
	}
	if err := Release(key); err != nil {
		return err
	}
	if ents, err := os.ReadDir("/dev/realshm"); err != nil || len(ents) != 0 {
		return fmt.Errorf("/dev/realshm holds %v (%v), want nothing", ents, err)
	}
	fmt.Println("ok")
	return nil
}

// TestShmSymlink: where /dev/shm is a symlink to the real directory (older
// Debian and Ubuntu: /run/shm), Create, Read and List work through it; only
// a symlink under a key is refused.
func TestShmSymlink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs on /dev in a private mount namespace")
	}
	checkLeaks(t)
	if out := strings.TrimSpace(inMountNamespace(t, "shm-symlink")); out != "ok" {
		t.Fatalf("helper printed:\n%s\nwant ok", out)
	}
}

// helperNoProc runs in its own mount namespace (see TestCreateWithoutProc):
// it hides /proc under an empty tmpfs and makes Create take the path of a
// kernel before 6.10 for a process without CAP_DAC_READ_SEARCH, where an
// unnamed file is named through /proc/self/fd.
func helperNoProc(args ...string) error {
	if err := unix.Mount("shmmap-test", "/proc", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k"); err != nil {
		return fmt.Errorf("mount tmpfs on /proc: %w", err)
	}
	shm.NoEmptyPathLink.Store(true)
	key, data, err := Create(4096)
	if err != nil {
		return fmt.Errorf("Create without /proc: %w", err)
	}
	data[0] = 9
	var st unix.Stat_t
	if err := unix.Lstat(shm.Dir+key, &st); err != nil || st.Mode&0o777 != 0o600 {
		return fmt.Errorf("the segment: mode %#o, %v", st.Mode&0o777, err)
	}
	if !shm.NoTmpfile.Load() {
		return errors.New("Create did not fall back to naming segments from the start")
	}
	if c := creatorState(key); c != CreatorAlive {
		return fmt.Errorf("List says the creator is %v", c)
	}
	if err := Release(key); err != nil {
		return err
	}
	if _, err := os.Lstat(shm.Dir + key); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("Release left %s: %v", key, err)
	}
	fmt.Println("ok")
	return nil
}

// TestCreateWithoutProc: where an unnamed file can be named only through
// /proc (Linux before 6.10, without CAP_DAC_READ_SEARCH) and there is no
// /proc (some sandboxes), Create still works: it names segments from the
// start, as where /dev/shm has no O_TMPFILE.
func TestCreateWithoutProc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to hide /proc in a private mount namespace")
	}
	checkLeaks(t)
	if out := strings.TrimSpace(inMountNamespace(t, "no-proc")); out != "ok" {
		t.Fatalf("helper printed:\n%s\nwant ok", out)
	}
}
