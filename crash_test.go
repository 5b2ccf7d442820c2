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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/internal/sweeplock"
	"golang.org/x/sys/unix"
)

func init() {
	helpers["hold"] = helperHold
	helpers["emfile"] = helperEMFILE
	helpers["enomem"] = helperENOMEM
	helpers["scribble"] = helperScribble
	helpers["stress"] = helperStress
}

// helperHold N: creates N segments, prints their keys, and waits for stdin
// to close (or to be killed).
func helperHold(args ...string) error {
	n, _ := strconv.Atoi(args[0])
	for range n {
		key, _, err := Create(4096)
		if err != nil {
			return err
		}
		fmt.Println(key)
	}
	fmt.Println("ready")
	waitStdinClosed()
	return nil
}

// startHolder starts a hold helper and returns its keys and its command.
func startHolder(t *testing.T, keys *keySet, n int) ([]string, *exec.Cmd, func()) {
	t.Helper()
	cmd, stdin, r, _ := startHelper(t, "hold", strconv.Itoa(n))
	var made []string
	t.Cleanup(func() { // runs before startHelper's, which then kills the holder
		for _, k := range made {
			os.Remove(shmDir + k)
		}
	})
	for {
		line := readLine(t, r)
		if line == "ready" {
			break
		}
		made = append(made, line)
		keys.add(line)
	}
	return made, cmd, func() { stdin.Close() }
}

func TestSweep(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	deadKeys, dead, _ := startHolder(t, keys, 3)
	liveKeys, _, _ := startHolder(t, keys, 2)
	if err := dead.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	dead.Wait()

	// Names that look like this package's but are not, and one of this
	// package's owned by another user (root could remove it: Sweep must not).
	lookalikes := []string{
		"shmmap_" + deadKeys[0][8:len(deadKeys[0])-1],         // one short
		"shmmap_" + deadKeys[0][8:len(deadKeys[0])-1] + "-",   // a bad digit
		"shmmap-" + deadKeys[0][8:],                           // another prefix
		"xshmmap_" + deadKeys[0][8:len(deadKeys[0])-1],        // another prefix, same length
		"shmmap_0000" + deadKeys[0][12:],                      // pid 0
		"shmmap_" + strings.Repeat("z", 4) + deadKeys[0][12:], // a pid past pid_max
	}
	for _, name := range lookalikes {
		plantSegment(t, keys, name, 10)
	}
	var foreign string
	if os.Geteuid() == 0 {
		foreign = "shmmap_" + deadKeys[1][8:len(deadKeys[1])-1] + "Z"
		plantSegment(t, keys, foreign, 10)
		if err := os.Chown(shmDir+"/"+foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		// Its creator is the dead holder: only the owner keeps it.
		if pid, _, ok := parseKey("/" + foreign); !ok || pid != dead.Process.Pid {
			t.Fatalf("foreign key %q does not name the dead holder", foreign)
		}
	}
	var pyName string
	if py, err := exec.LookPath("python3"); err == nil {
		cmd := exec.Command(py, "-c", `import sys
from multiprocessing import shared_memory
s = shared_memory.SharedMemory(create=True, size=100)
print(s.name, flush=True)
sys.stdin.read()
s.close(); s.unlink()`)
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Wait() })
		pyName = strings.TrimPrefix(readLine(t, bufio.NewReader(out)), "/")
		keys.add("/" + pyName)
	}

	removed, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range deadKeys {
		if !slices.Contains(removed, k) {
			t.Errorf("Sweep did not remove %s of a killed process (removed %q)", k, removed)
		}
		if _, err := os.Stat(shmDir + k); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists: %v", k, err)
		}
	}
	mustStay := append(append([]string{}, liveKeys...), prefixAll("/", lookalikes)...)
	if foreign != "" {
		mustStay = append(mustStay, "/"+foreign)
	}
	if pyName != "" {
		mustStay = append(mustStay, "/"+pyName)
	} else {
		t.Log("no python3: the SharedMemory case was not run")
	}
	for _, k := range mustStay {
		if slices.Contains(removed, k) {
			t.Errorf("Sweep removed %s", k)
		}
		if _, err := os.Stat(shmDir + k); err != nil {
			t.Errorf("%s is gone: %v", k, err)
		}
	}
}

func prefixAll(p string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p + s
	}
	return out
}

func TestSweepReusedPid(t *testing.T) {
	// A key naming this very process but another start time: the pid is
	// alive, yet the creator is not (the pid was reused).
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	key := mustKey(t)
	start, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var b [startDigits]byte
	putBase62(b[:], start+1)
	stale := key[:len(keyPrefix)+pidDigits] + string(b[:]) + key[len(keyPrefix)+pidDigits+startDigits:]
	plantSegment(t, keys, stale[1:], 10)
	if pid, _, _ := parseKey(stale); pid != os.Getpid() {
		t.Fatalf("stale key %q does not name this process", stale)
	}
	removed, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, stale) {
		t.Fatalf("Sweep kept %s, whose pid was reused by a later process (removed %q)", stale, removed)
	}
	// And this process' own live segment stays.
	own, _ := newSegment(t, keys, 10)
	removed, err = Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(removed, own) {
		t.Fatalf("Sweep removed %s of a live process", own)
	}
}

// helperEMFILE KEY: lowers RLIMIT_NOFILE and opens /dev/null until no fd
// is left, then checks that Create and ReadWrite fail with EMFILE and leave
// nothing.
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
	_, _, cerr := Create(4096)
	_, rerr := ReadWrite(args[0], 0)
	for _, fd := range fillers {
		unix.Close(fd)
	}
	if !errors.Is(cerr, syscall.EMFILE) {
		return fmt.Errorf("Create with no fd left: %v, want EMFILE", cerr)
	}
	if !errors.Is(rerr, syscall.EMFILE) {
		return fmt.Errorf("ReadWrite with no fd left: %v, want EMFILE", rerr)
	}
	return ownLeftovers()
}

// ownLeftovers fails if /dev/shm holds a name that this process created,
// or this process an fd or mapping of /dev/shm.
func ownLeftovers() error {
	ents, err := os.ReadDir(shmDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if pid, _, ok := parseKey("/" + e.Name()); ok && pid == os.Getpid() {
			return fmt.Errorf("left %s in /dev/shm", e.Name())
		}
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, e := range fds {
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(target, "/dev/shm/") {
			return fmt.Errorf("fd %s open on %s", e.Name(), target)
		}
	}
	maps, _ := os.ReadFile("/proc/self/maps")
	if strings.Contains(string(maps), " /dev/shm/") {
		return fmt.Errorf("a /dev/shm mapping is left:\n%s", maps)
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

// helperENOMEM: lowers RLIMIT_AS to what the process uses plus 64 MiB and
// creates 1 GiB: the reservation works (tmpfs pages are not address space),
// the mmap fails with ENOMEM, and the name must be gone.
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
	limit := vmKB<<10 + 64<<20
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
	return ownLeftovers()
}

func TestENOMEM(t *testing.T) {
	checkLeaks(t)
	if out := strings.TrimSpace(runHelper(t, "enomem")); out != "ok" {
		t.Fatalf("helper printed %q", out)
	}
}

// TestEINTR creates a multi-GiB segment while signals rain on the process
// and other goroutines keep the scheduler busy: fallocate (and mmap with
// MAP_POPULATE) see EINTR and must retry without losing progress.
func TestEINTR(t *testing.T) {
	if testing.Short() {
		t.Skip("reserves 3 GiB of shared memory")
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

	for _, opts := range [][]Option{nil, {Populate()}} {
		size := bigInt(t, 3<<30+12345)
		key, data, err := Create(size, opts...)
		if err != nil {
			t.Fatal(err)
		}
		keys.add(key)
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
// release ROUNDS times each, then print "done" and wait for stdin to close,
// so that the parent can inspect this process from outside.
func helperStress(args ...string) error {
	rounds, _ := strconv.Atoi(args[0])
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := roundTrip(4096*(1+(g+r)%8)+r, func(string) {}); err != nil {
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
	for range procs {
		cmd := helperCommand(t, "stress", strconv.Itoa(rounds))
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		ps = append(ps, proc{cmd, func() { stdin.Close() }, bufio.NewReader(out)})
	}
	for _, p := range ps {
		if line := readLine(t, p.lines); line != "done" {
			t.Fatalf("stress helper printed %q", line)
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
	ents, _ := os.ReadDir(shmDir)
	for _, e := range ents {
		if pid, _, ok := parseKey("/" + e.Name()); ok {
			for _, p := range ps {
				if p.cmd.Process.Pid == pid {
					t.Errorf("stress helper %d left %s", pid, e.Name())
				}
			}
		}
	}
}
