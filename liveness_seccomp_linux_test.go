//go:build linux && (amd64 || arm64)

package shmmap

// Interleavings that no timing can be trusted to produce: a helper process
// installs a seccomp filter that stops it at one system call
// (SECCOMP_RET_USER_NOTIF) and hands the filter's listener to the test,
// which does something to /dev/shm while the helper waits there and then
// lets the call go on (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The syscall
// numbers are those of amd64 and arm64, hence the build constraint.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/shmmap-go/shmmap/internal/shm"
	"github.com/shmmap-go/shmmap/internal/sweeplock"
	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("stop-sweep", helperStopSweep)
	registerHelper("stop-create-named", helperStopCreateNamed)
	registerHelper("stop-release", helperStopRelease)
}

// stopAt installs a filter that stops this process at every call of
// syscall nr until the supervisor lets it go on, and sends the listener
// over the unix socket that the parent passed as fd 3.
func stopAt(nr int) error {
	flags := unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	l, err := filterSyscall(nr, unix.SECCOMP_RET_USER_NOTIF, flags)
	if err != nil {
		return err
	}
	defer unix.Close(int(l))
	return unix.Sendmsg(3, []byte{0}, unix.UnixRights(int(l)), nil, 0)
}

// helperStopSweep NR: runs Sweep, stopping at syscall NR, and prints what
// the sweep helper prints.
func helperStopSweep(args ...string) error {
	nr, _ := strconv.Atoi(args[0])
	if err := stopAt(nr); err != nil {
		return err
	}
	return helperSweep()
}

// helperStopCreateNamed NR: creates a segment as a /dev/shm without
// O_TMPFILE makes it (named first), stopping at syscall NR; prints the key
// and whether its name is there once Create returns ("named" or the
// error), then waits for stdin to close.
func helperStopCreateNamed(args ...string) error {
	nr, _ := strconv.Atoi(args[0])
	shm.NoTmpfile.Store(true)
	if err := stopAt(nr); err != nil {
		return err
	}
	key, _, err := Create(4096)
	if err != nil {
		return err
	}
	fmt.Println(key)
	if _, err := os.Lstat(shm.Dir + key); err != nil {
		fmt.Println(err)
	} else {
		fmt.Println("named")
	}
	waitStdinClosed()
	return nil
}

// helperStopRelease NR: creates a segment, prints its key, and releases
// it, stopping at syscall NR from before Create on; prints "released".
func helperStopRelease(args ...string) error {
	nr, _ := strconv.Atoi(args[0])
	if err := stopAt(nr); err != nil {
		return err
	}
	key, _, err := Create(4096)
	if err != nil {
		return err
	}
	fmt.Println(key)
	if err := Release(key); err != nil {
		return err
	}
	fmt.Println("released")
	return nil
}

// seccompNotif and seccompResp are struct seccomp_notif and struct
// seccomp_notif_resp of linux/seccomp.h.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// stopped is a call at which a helper waits: its pid and arguments.
type stopped struct {
	pid  int
	args [6]uint64
}

// path reads the NUL-terminated string at address a in the stopped process.
func (s stopped) path(a uint64) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", s.pid))
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := f.ReadAt(buf, int64(a))
	if i := slices.Index(buf[:n], 0); i >= 0 {
		return string(buf[:i])
	}
	return ""
}

// startStopped starts helper name with args, stopped at syscall nr; at each
// such call, on(call) runs in the test process before the call goes on. It
// returns the helper's stdin and stdout. The helper is killed, and the
// supervision ended, when t ends.
func startStopped(t *testing.T, nr int, on func(stopped), name string, args ...string) (io.WriteCloser, *bufio.Reader, func() error) {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(pair[0]), "seccomp-parent"), os.NewFile(uintptr(pair[1]), "seccomp-child")
	defer ours.Close()
	cmd := helperCommand(t, name, append([]string{strconv.Itoa(nr)}, args...)...)
	cmd.ExtraFiles = []*os.File{theirs}
	stdin, stdout, wait := startCommand(t, cmd)
	theirs.Close()

	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(ours.Fd()), buf, oob, 0)
	if err != nil || oobn == 0 {
		t.Fatalf("no seccomp listener from the helper (%v)", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("seccomp listener: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("seccomp listener: %v", err)
	}
	listener := fds[0]
	unix.CloseOnExec(listener)

	stop := make(chan struct{})
	var done sync.WaitGroup
	done.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			pfd := []unix.PollFd{{Fd: int32(listener), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, 50)
			if err == unix.EINTR || n == 0 {
				continue
			}
			if err != nil || pfd[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0 {
				return // the helper is gone
			}
			var req seccompNotif
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); errno != 0 {
				continue // ENOENT: the helper died in the call
			}
			on(stopped{pid: int(req.Pid), args: req.Args})
			resp := seccompResp{ID: req.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
			unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
		}
	})
	t.Cleanup(func() { // before startCommand's, which kills the helper
		close(stop)
		done.Wait()
		unix.Close(listener)
	})
	return stdin, stdout, wait
}

// sweepOutput reads the sweep helper's lines up to "done": the keys it
// removed and its errors.
func sweepOutput(t *testing.T, r *bufio.Reader) (removed, errs []string) {
	t.Helper()
	for {
		line := readLine(t, r)
		switch {
		case line == "done":
			return removed, errs
		case strings.HasPrefix(line, "removed "):
			removed = append(removed, strings.TrimPrefix(line, "removed "))
		case strings.HasPrefix(line, "error: "):
			errs = append(errs, line)
		}
	}
}

// deadSegment makes a segment of Create's form that no one holds, as a
// killed creator leaves it.
func deadSegment(t *testing.T, keys *keySet) string {
	t.Helper()
	key := newKey()
	plantSegment(t, keys, key[1:], 4096)
	return key
}

// TestSweepRechecksName: between Sweep's open of a dead segment and its
// unlink, the name comes to stand for a live one (renamed over it by the
// same user). Sweep locked the dead file, not this one, and must leave the
// name alone.
func TestSweepRechecksName(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	dead := deadSegment(t, keys)
	// The live one: a file of ours that we hold locked, as a creator does.
	live := fmt.Sprintf("/shmmap_attack_live_%d", os.Getpid())
	plantSegment(t, keys, live[1:], 4096)
	f, err := os.OpenFile(shm.Dir+live, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	var want unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &want); err != nil {
		t.Fatal(err)
	}
	var swapped atomic.Bool
	on := func(c stopped) { // Sweep's lstat, after its open and lock
		if swapped.Load() || c.path(c.args[1]) != shm.Dir+dead {
			return
		}
		swapped.Store(true)
		if err := os.Rename(shm.Dir+live, shm.Dir+dead); err != nil {
			t.Errorf("rename: %v", err)
		}
	}
	_, r, wait := startStopped(t, unix.SYS_NEWFSTATAT, on, "stop-sweep")
	removed, errs := sweepOutput(t, r)
	if err := wait(); err != nil {
		t.Fatalf("sweeper: %v", err)
	}
	if !swapped.Load() {
		t.Fatalf("Sweep never looked at %s again after opening it (removed %q, errors %q)", dead, removed, errs)
	}
	var st unix.Stat_t
	switch err := unix.Lstat(shm.Dir+dead, &st); {
	case err != nil:
		t.Errorf("Sweep removed %s, which named a live segment by then: %v", dead, err)
	case st.Ino != want.Ino:
		t.Errorf("%s is not the live segment", dead)
	}
	if slices.Contains(removed, dead) {
		t.Errorf("Sweep says it removed %s", dead)
	}
	for _, e := range errs {
		if strings.Contains(e, dead) {
			t.Errorf("Sweep: %s", e)
		}
	}
}

// TestSweepNameGoneMeanwhile: another process removes a dead segment's name
// just before Sweep's unlink of it. That is not an error, and Sweep does
// not claim the removal.
func TestSweepNameGoneMeanwhile(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	dead := deadSegment(t, keys)
	var took atomic.Bool
	on := func(c stopped) { // Sweep's unlink
		if !took.Load() && c.path(c.args[1]) == shm.Dir+dead {
			took.Store(true)
			if err := os.Remove(shm.Dir + dead); err != nil {
				t.Errorf("remove: %v", err)
			}
		}
	}
	_, r, wait := startStopped(t, unix.SYS_UNLINKAT, on, "stop-sweep")
	removed, errs := sweepOutput(t, r)
	if err := wait(); err != nil {
		t.Fatalf("sweeper: %v", err)
	}
	if !took.Load() {
		t.Fatalf("Sweep never came to unlink %s (removed %q, errors %q)", dead, removed, errs)
	}
	if slices.Contains(removed, dead) {
		t.Errorf("Sweep says it removed %s, which another process did", dead)
	}
	for _, e := range errs {
		if strings.Contains(e, dead) {
			t.Errorf("Sweep: %s", e)
		}
	}
}

// TestSweepMeetsNamedCreate: where /dev/shm has no O_TMPFILE, Create names
// the segment before it takes the creator's lock. A sweeper that comes in
// between must leave it alone, and List must not call it gone.
func TestSweepMeetsNamedCreate(t *testing.T) {
	keys := checkLeaks(t)
	var mu sync.Mutex
	var seen []string
	on := func(c stopped) { // the creator's fcntl: lockCreator's first
		if c.args[1] != unix.F_OFD_SETLK {
			return
		}
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", c.pid, c.args[0]))
		name := strings.TrimPrefix(target, shm.Dir)
		if !isCreateKey(name) {
			return
		}
		ok, err := shm.Reap(name)
		state := creatorState(name)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s reap=%v,%v list=%v", name, ok, err, state))
		mu.Unlock()
		if ok || err != nil {
			t.Errorf("Sweep before the creator's lock: removed %v, error %v", ok, err)
		}
		if state == CreatorGone {
			t.Errorf("List before the creator's lock: %v", state)
		}
	}
	stdin, r, wait := startStopped(t, unix.SYS_FCNTL, on, "stop-create-named")
	key := readLine(t, r)
	keys.add(key)
	t.Cleanup(func() { os.Remove(shm.Dir + key) })
	status := readLine(t, r)
	stdin.Close()
	if err := wait(); err != nil {
		t.Errorf("creator: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || !strings.HasPrefix(seen[0], key+" ") {
		t.Fatalf("the creator of %s stopped at its lock with %q, want once for its segment", key, seen)
	}
	if status != "named" {
		t.Errorf("Create returned %s but its name is gone: %s (%s)", key, status, seen[0])
	}
}

// TestReleaseUnlinksBeforeUnlocking: Release removes the name while it
// still holds the creator's lock, so that no sweeper or lister ever sees a
// live creator's segment unlocked under its name.
func TestReleaseUnlinksBeforeUnlocking(t *testing.T) {
	keys := checkLeaks(t)
	var mu sync.Mutex
	var seen []string
	on := func(c stopped) { // Release's unlink
		p := c.path(c.args[1])
		if !isCreateKey(strings.TrimPrefix(p, shm.Dir)) {
			return
		}
		locked := lockState(t, p, unix.F_WRLCK)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s locked=%v", p, locked))
		mu.Unlock()
	}
	_, r, wait := startStopped(t, unix.SYS_UNLINKAT, on, "stop-release")
	key := readLine(t, r)
	keys.add(key)
	t.Cleanup(func() { os.Remove(shm.Dir + key) })
	if line := readLine(t, r); line != "released" {
		t.Errorf("creator: %q", line)
	}
	if err := wait(); err != nil {
		t.Errorf("creator: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{shm.Dir + key + " locked=true"}; !slices.Equal(seen, want) {
		t.Errorf("Release's unlinks: %q, want %q", seen, want)
	}
}
