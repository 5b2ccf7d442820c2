//go:build linux

package shmmap

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("emfile", helperEMFILE)
	registerHelper("enomem", helperENOMEM)
	registerHelper("scribble", helperScribble)
	registerHelper("stress", helperStress)
}

// helperEMFILE KEY: lowers RLIMIT_NOFILE and opens /dev/null until no fd
// is left, then checks that Create, ReadWrite and CreateAnonymous fail
// with EMFILE and leave nothing.
func helperEMFILE(args ...string) error {
	lim := unix.Rlimit{Cur: 64, Max: 64}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	var fillers []int
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EMFILE {
			break
		}
		if err != nil {
			return err
		}
		fillers = append(fillers, fd)
	}
	key, _, cerr := Create(4096)
	_, rerr := ReadWrite(args[0], 0)
	m, aerr := CreateAnonymous(4096)
	for _, fd := range fillers {
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
		if _, err := os.Lstat(shmDir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed Create left %s: %v", pe.Path, err)
		}
	}
	return ownLeftovers()
}

// ownLeftovers fails if this process holds an fd or mapping of shared
// memory (/dev/shm, memfds).
func ownLeftovers() error {
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, e := range fds {
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); isShmTarget(target) {
			return fmt.Errorf("fd %s open on %s", e.Name(), target)
		}
	}
	maps, _ := os.ReadFile("/proc/self/maps")
	for _, line := range strings.Split(string(maps), "\n") {
		if isShmMapping(line) {
			return fmt.Errorf("a shared memory mapping is left:\n%s", line)
		}
	}
	fmt.Println("ok")
	return nil
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
	if _, err := os.Stat(shmDir + pe.Path); !errors.Is(err, fs.ErrNotExist) {
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

// TestCreateUnderSignals is a stress test: it creates a segment larger
// than reserveChunk, without and with Populate, while signals rain on the
// process and busy goroutines keep the runtime preempting its threads, and
// checks that Create succeeds and the segment's ends are writable. It was
// written as the test of Create's EINTR retries, but it cannot fail for
// want of one: on the machine it was checked on (Linux 6.18, 2 cores), a
// wrapped fallocate saw no EINTR in any run, so the retries are never
// reached. TestCreateRetriesFallocateEINTR injects the EINTR instead.
//
// The size is 3 GiB and a bit (four chunks) where an int holds it, else
// (32-bit systems) 1 GiB and a bit (two chunks).
func TestCreateUnderSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("reserves GiBs of shared memory")
	}
	keys := checkLeaks(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var signals atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() { // busy: the runtime preempts it with signals
			defer wg.Done()
			x := 0
			for {
				select {
				case <-stop:
					return
				default:
					for i := range 1 << 16 {
						x += i
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // process-directed signals land on any thread, the syscall's too
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Microsecond):
				unix.Kill(os.Getpid(), unix.SIGURG)
				signals.Add(1)
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	size64 := int64(3<<30 + 12345)
	if int64(int(size64)) != size64 {
		size64 = 1<<30 + 12345
	}
	size := int(size64)
	for _, opts := range [][]Option{nil, {Populate()}} {
		key, data, err := Create(size, opts...)
		if err != nil {
			t.Fatal(err)
		}
		keys.add(key)
		t.Cleanup(func() { Release(key) })
		data[0], data[size-1] = 1, 1
		if err := Release(key); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d signals sent", signals.Load())
}

// helperScribble KEY: maps KEY and writes its own pid into it forever.
func helperScribble(args ...string) error {
	data, err := ReadWrite(args[0], 0)
	if err != nil {
		return err
	}
	fmt.Println("writing")
	for i := 0; ; i++ {
		data[i%len(data)] = byte(i)
	}
}

func TestPeerKilledMidWrite(t *testing.T) {
	keys := checkLeaks(t)
	key, data := newSegment(t, keys, 1<<20)
	cmd := helperCommand(t, "scribble", key)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line := readLine(t, bufio.NewReader(out)); line != "writing" {
		t.Fatalf("helper printed %q", line)
	}
	time.Sleep(20 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	// The survivor's mapping is intact and writable, and the data is there.
	nonzero := 0
	for _, v := range data {
		if v != 0 {
			nonzero++
		}
	}
	if nonzero == 0 {
		t.Fatal("the killed peer's writes are not visible")
	}
	for i := range data {
		data[i] = 7
	}
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
}

// TestTruncatedByAnother: another process shrinks a segment. Mappings made
// before cover pages that no longer exist (touching them faults: see the
// package doc); Read and ReadWrite then refuse sizes past the new end.
func TestTruncatedByAnother(t *testing.T) {
	keys := checkLeaks(t)
	key, _ := newSegment(t, keys, 1<<20)
	if err := os.Truncate(shmDir+key, 4096); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadWrite(key, 1<<20); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("ReadWrite(old size) of a truncated segment: %v, want ErrInvalidSize", err)
	}
	b, err := ReadWrite(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4096 {
		t.Fatalf("ReadWrite(key, 0) after truncation maps %d bytes, want 4096", len(b))
	}
	if err := Release(key); err != nil {
		t.Fatal(err)
	}
}

// helperStress ROUNDS: 8 goroutines create, attach, write, verify and
// release ROUNDS times each, printing each key as it is made (so that the
// parent can remove what a helper that dies leaves), then print "done" and
// wait for stdin to close, so that the parent can inspect this process
// from outside.
func helperStress(args ...string) error {
	rounds, _ := strconv.Atoi(args[0])
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := roundTrip(4096*(1+(g+r)%8)+r, func(key string) {
					mu.Lock()
					fmt.Println(key)
					mu.Unlock()
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Println("done")
	waitStdinClosed()
	return nil
}

func TestStress(t *testing.T) {
	checkLeaks(t)
	const procs, rounds = 4, 200
	type proc struct {
		cmd   *exec.Cmd
		close func()
		lines *bufio.Reader
	}
	var ps []proc
	// Every key a helper printed, read by the test or, from a helper that
	// the test gave up on, by its cleanup; this cleanup runs after the
	// helpers' and removes what a helper that died left.
	var made []string
	t.Cleanup(func() {
		for _, key := range made {
			os.Remove(shmDir + key)
		}
	})
	for range procs {
		cmd := helperCommand(t, "stress", strconv.Itoa(rounds))
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewReader(out)
		t.Cleanup(func() {
			// Let it finish its rounds, which release every segment; a
			// helper killed mid-round would leave one whose key it may
			// not have printed yet. Kill it only if it hangs.
			stdin.Close()
			hung := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
			defer hung.Stop()
			for { // the keys it printed that the test did not read
				line, err := lines.ReadString('\n')
				if key := strings.TrimSpace(line); isCreateKey(key) {
					made = append(made, key)
				}
				if err != nil {
					break
				}
			}
			cmd.Wait()
		})
		ps = append(ps, proc{cmd, func() { stdin.Close() }, lines})
	}
	for _, p := range ps {
		for {
			line := readLine(t, p.lines)
			if line == "done" {
				break
			}
			if !isCreateKey(line) {
				t.Fatalf("stress helper printed %q", line)
			}
			made = append(made, line)
		}
		// From outside: no fd and no mapping of /dev/shm in the helper.
		pid := p.cmd.Process.Pid
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range fds {
			target, _ := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), e.Name()))
			if strings.HasPrefix(target, "/dev/shm/") {
				t.Errorf("helper %d holds fd %s on %s", pid, e.Name(), target)
			}
		}
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(maps), " /dev/shm/") {
			t.Errorf("helper %d holds a mapping of /dev/shm", pid)
		}
		p.close()
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("helper %d: %v", pid, err)
		}
	}
	// And no name of theirs is left.
	if len(made) != procs*rounds*8 {
		t.Errorf("the helpers made %d segments, want %d", len(made), procs*rounds*8)
	}
	for _, key := range made {
		if _, err := os.Lstat(shmDir + key); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a stress helper left %s: %v", key, err)
		}
	}
}
