//go:build linux

package shmmap

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/internal/peer"
	"github.com/shmmap-go/shmmap/internal/shm"
	"github.com/shmmap-go/shmmap/internal/sweeplock"
	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("hold", helperHold)
	registerHelper("sweep", helperSweep)
	registerHelper("list", helperList)
	registerHelper("create-many", helperCreateMany)
	registerHelper("sweep-loop", helperSweepLoop)
}

// helperHold N [named]: creates N segments, prints their keys and "ready",
// and waits for stdin to close (or to be killed). With "named", Create takes
// the path of a /dev/shm without O_TMPFILE, naming the segment first.
func helperHold(args ...string) error {
	n, _ := strconv.Atoi(args[0])
	if len(args) > 1 && args[1] == "named" {
		shm.NoTmpfile.Store(true)
	}
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

// helperSweep: runs Sweep once and prints "removed KEY" for each key it
// removed, "error: ..." for each error, and "done".
func helperSweep(args ...string) error {
	removed, err := Sweep()
	for _, k := range removed {
		fmt.Println("removed", k)
	}
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Println("error:", line)
		}
	}
	fmt.Println("done")
	return nil
}

// helperList KEY...: prints each key and its Creator as List reports it,
// or "missing".
func helperList(args ...string) error {
	segs, err := List()
	if err != nil {
		return err
	}
	states := map[string]string{}
	for _, s := range segs {
		states[s.Key] = s.Creator.String()
	}
	for _, k := range args {
		state, ok := states[k]
		if !ok {
			state = "missing"
		}
		fmt.Println(k, state)
	}
	return nil
}

// helperCreateMany N [named]: creates N segments one after another while
// other processes sweep, holding them all; then checks that every name is
// still there and prints "ok" and the keys.
func helperCreateMany(args ...string) error {
	n, _ := strconv.Atoi(args[0])
	if len(args) > 1 && args[1] == "named" {
		shm.NoTmpfile.Store(true)
	}
	fmt.Println("started")
	var made []string
	for range n {
		key, data, err := Create(4096)
		if err != nil {
			return err
		}
		data[0] = 1
		made = append(made, key)
	}
	for _, key := range made {
		if _, err := os.Lstat(shm.Dir + key); err != nil {
			return fmt.Errorf("a live creator's segment is gone: %v", err)
		}
	}
	fmt.Println("ok")
	for _, key := range made {
		fmt.Println(key)
	}
	fmt.Println("done")
	return nil
}

// helperSweepLoop: sweeps until stdin closes, then prints how many times,
// every key removed and every error.
func helperSweepLoop(args ...string) error {
	stop := make(chan struct{})
	go func() { waitStdinClosed(); close(stop) }()
	fmt.Println("sweeping")
	var removed []string
	var errs []error
	n := 0
	for {
		select {
		case <-stop:
			fmt.Println("sweeps", n)
			for _, k := range removed {
				fmt.Println("removed", k)
			}
			for _, err := range errs {
				fmt.Println("error:", err)
			}
			return nil
		default:
		}
		r, err := Sweep()
		n++
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
}

// startHolder starts a hold helper making n segments and returns their
// keys and the helper's command.
func startHolder(t *testing.T, keys *keySet, n int) ([]string, *exec.Cmd, func()) {
	t.Helper()
	return startHolderCmd(t, keys, helperCommand(t, "hold", strconv.Itoa(n)))
}

// startHolderCmd starts cmd, a hold helper (perhaps in other namespaces),
// and returns the keys it made, cmd, and a function that tells it to
// release them and exit. Cleanup removes the keys in any case.
func startHolderCmd(t *testing.T, keys *keySet, cmd *exec.Cmd) ([]string, *exec.Cmd, func()) {
	t.Helper()
	stdin, r, _ := startCommand(t, cmd)
	var made []string
	t.Cleanup(func() { // runs before startCommand's, which then kills the holder
		for _, k := range made {
			os.Remove(shm.Dir + k)
		}
	})
	for {
		line := readLine(t, r)
		if line == "ready" {
			break
		}
		if !isCreateKey(line) {
			t.Fatalf("holder printed %q", line)
		}
		made = append(made, line)
		keys.add(line)
	}
	return made, cmd, func() { stdin.Close() }
}

// kill kills cmd and waits for it.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// requireRoot skips t unless it runs as root.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root %s", why)
	}
}

// inNamespaces returns helperCommand's command for helper name, run under
// unshare(1) with flags, which kills the helper if unshare itself dies
// (--kill-child). Flags nil means no new namespace. It skips t where
// unshare cannot make those namespaces.
func inNamespaces(t *testing.T, flags []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := helperCommand(t, name, args...)
	if flags == nil {
		return cmd
	}
	unshare, err := exec.LookPath("unshare")
	if err == nil {
		var out []byte
		if out, err = exec.Command(unshare, append(slices.Clone(flags), "true")...).CombinedOutput(); err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
	}
	if err != nil {
		t.Skipf("unshare %s cannot run here: %v", strings.Join(flags, " "), err)
	}
	argv := append([]string{"unshare"}, flags...)
	cmd.Args = append(append(argv, "--kill-child", "--", cmd.Path), cmd.Args[1:]...)
	cmd.Path = unshare
	return cmd
}

// sweepIn runs Sweep in a helper under unshare with flags (nil: no new
// namespace) and returns what it removed; it fails t on any error.
func sweepIn(t *testing.T, flags []string, env ...string) []string {
	t.Helper()
	cmd := inNamespaces(t, flags, "sweep")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sweep helper (%q): %v\n%s", flags, err, out)
	}
	var removed []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case strings.HasPrefix(line, "removed "):
			removed = append(removed, strings.TrimPrefix(line, "removed "))
		case strings.HasPrefix(line, "error: "):
			t.Errorf("Sweep (%q): %s", flags, line)
		}
	}
	return removed
}

// statesIn returns the Creator of each key as List reports it in a helper
// under unshare with flags.
func statesIn(t *testing.T, flags []string, keys []string, env ...string) map[string]string {
	t.Helper()
	cmd := inNamespaces(t, flags, "list", keys...)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("list helper (%q): %v\n%s", flags, err, out)
	}
	states := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, state, _ := strings.Cut(line, " ")
		states[k] = state
	}
	return states
}

// creatorOf returns the Creator of key as List reports it here.
func creatorOf(t *testing.T, key string) Creator {
	t.Helper()
	segs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if s.Key == key {
			return s.Creator
		}
	}
	t.Fatalf("List does not show %s", key)
	return 0
}

// awaitGone waits until List shows every key's creator gone: a killed
// process's fds are closed a moment after it is reaped, and under
// unshare --kill-child the helper is killed only after unshare dies.
func awaitGone(t *testing.T, keys []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, k := range keys {
		for creatorOf(t, k) != CreatorGone {
			if time.Now().After(deadline) {
				t.Fatalf("%s: creator still %v 10 s after it was killed", k, creatorOf(t, k))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestSweep: a killed creator's segments go; a live one's stay, and so do
// names that only look like Create's, Create's keys of another user, old
// keys (which recorded a pid and held no lock), segments being created,
// and FIFOs, directories and symlinks under Create's names.
func TestSweep(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	deadKeys, dead, _ := startHolder(t, keys, 3)
	liveKeys, _, _ := startHolder(t, keys, 2)
	if got := creatorOf(t, liveKeys[0]); got != CreatorAlive {
		t.Fatalf("List: a live holder's segment: %v, want alive", got)
	}
	kill(t, dead)
	awaitGone(t, deadKeys)

	k := deadKeys[0][1:] // a key of Create's form, without its slash
	lookalikes := []string{
		k[:len(k)-1],                        // one short
		k[:len(k)-1] + "-",                  // a bad digit
		"shmmap-" + k[7:],                   // another prefix
		"x" + k[:len(k)-1],                  // another prefix, same length
		"shmmap_" + strings.Repeat("0", 21), // an old key: 21 digits
	}
	for _, name := range lookalikes {
		plantSegment(t, keys, name, 10)
	}
	mustStay := append(slices.Clone(liveKeys), prefixAll("/", lookalikes)...)

	// Of Create's form, unlocked, but: being made (mode 0), or not a
	// segment at all. A symlink aims at a file of the test's own.
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	odd := map[string]func(path string) error{
		"mode 0":    func(p string) error { return os.WriteFile(p, nil, 0) },
		"FIFO":      func(p string) error { return unix.Mkfifo(p, 0o600) },
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
		"symlink":   func(p string) error { return os.Symlink(victim, p) },
		"socket": func(p string) error {
			l, err := net.Listen("unix", p)
			if err == nil {
				t.Cleanup(func() { l.Close() })
			}
			return err
		},
	}
	for what, plant := range odd {
		key := newKey()
		path := shm.Dir + key
		if err := plant(path); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		os.Chmod(path, 0o600)
		if what == "mode 0" {
			os.Chmod(path, 0)
		}
		t.Cleanup(func() { os.Remove(path) })
		mustStay = append(mustStay, key)
	}
	if os.Geteuid() == 0 {
		// Another user's leftover: root could remove it; Sweep must not.
		other := newKey()
		plantSegment(t, keys, other[1:], 10)
		if err := os.Chown(shm.Dir+other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		mustStay = append(mustStay, other)
	}

	removed, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range deadKeys {
		if !slices.Contains(removed, k) {
			t.Errorf("Sweep did not remove %s of a killed process (removed %q)", k, removed)
		}
		if _, err := os.Lstat(shm.Dir + k); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists: %v", k, err)
		}
	}
	for _, k := range mustStay {
		if slices.Contains(removed, k) {
			t.Errorf("Sweep removed %s", k)
		}
		if _, err := os.Lstat(shm.Dir + k); err != nil {
			t.Errorf("%s is gone: %v", k, err)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep" {
		t.Errorf("the symlink's target: %q, %v", b, err)
	}
}

func prefixAll(p string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p + s
	}
	return out
}

// TestSweepKeepsPython: a segment of Python's SharedMemory is not Create's.
func TestSweepKeepsPython(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	py := peer.Python(t)
	cmd := exec.Command(py, "-c", `import sys
from multiprocessing import shared_memory
s = shared_memory.SharedMemory(create=True, size=100)
print(s.name, flush=True)
sys.stdin.read()
s.close(); s.unlink()`)
	stdin, r, wait := startCommand(t, cmd)
	name := "/" + strings.TrimPrefix(readLine(t, r), "/")
	keys.add(name)
	removed, err := Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(removed, name) {
		t.Errorf("Sweep removed Python's %s", name)
	}
	if _, err := os.Lstat(shm.Dir + name); err != nil {
		t.Errorf("Python's %s is gone: %v", name, err)
	}
	if got := creatorOf(t, name); got != CreatorNone {
		t.Errorf("List: Python's segment has creator %v, want none", got)
	}
	stdin.Close()
	if err := wait(); err != nil {
		t.Errorf("python: %v", err)
	}
}

// TestSweepAcrossNamespaces: creator and sweeper in different pid, time and
// user namespaces. The creator is never swept while alive, and is swept
// once dead; List, on either side, tells the same.
func TestSweepAcrossNamespaces(t *testing.T) {
	requireRoot(t, "to make pid, time and user namespaces")
	pidNS := []string{"--pid", "--fork", "--mount-proc"}
	timeNS := []string{"--time", "--boottime", "1000", "--monotonic", "1000", "--fork"}
	for _, c := range []struct {
		name             string
		creator, sweeper []string
	}{
		{"creator in a pid namespace", pidNS, nil},
		{"creator in a pid namespace without its own /proc", []string{"--pid", "--fork"}, nil},
		{"creator in a time namespace", timeNS, nil},
		{"creator in a user namespace", []string{"--user", "--map-root-user"}, nil},
		{"sweeper in a pid namespace", nil, pidNS},
		{"sweeper in a pid namespace without its own /proc", nil, []string{"--pid", "--fork"}},
		{"sweeper in a time namespace", nil, timeNS},
		{"sweeper in a user namespace mapping root", nil, []string{"--user", "--map-root-user"}},
		{"sweeper in a user namespace mapping no one", nil, []string{"--user"}},
		{"each in a pid namespace of its own", pidNS, pidNS},
	} {
		t.Run(c.name, func(t *testing.T) {
			keys := checkLeaks(t)
			sweeplock.Lock(t)
			held, holder, _ := startHolderCmd(t, keys, inNamespaces(t, c.creator, "hold", "3"))
			states := statesIn(t, c.sweeper, held)
			for _, k := range held {
				if states[k] != "alive" {
					t.Errorf("List beside a live creator: %s is %q, want alive", k, states[k])
				}
			}
			for _, k := range sweepIn(t, c.sweeper) {
				if slices.Contains(held, k) {
					t.Errorf("Sweep removed %s of a live creator", k)
				}
			}
			for _, k := range held {
				if _, err := os.Lstat(shm.Dir + k); err != nil {
					t.Fatalf("a live creator's %s is gone: %v", k, err)
				}
			}

			kill(t, holder)
			awaitGone(t, held)
			states = statesIn(t, c.sweeper, held)
			for _, k := range held {
				if states[k] != "gone" {
					t.Errorf("List after the creator died: %s is %q, want gone", k, states[k])
				}
			}
			removed := sweepIn(t, c.sweeper)
			for _, k := range held {
				if !slices.Contains(removed, k) {
					t.Errorf("Sweep did not remove %s of a dead creator (removed %q)", k, removed)
				}
			}
		})
	}
}

// TestSweepOwners: where a user namespace shows every owner as the
// overflow uid, and for an ordinary user, Sweep removes the sweeper's own
// dead leftovers and no other user's, and goes on past other users'.
func TestSweepOwners(t *testing.T) {
	requireRoot(t, "to make segments of several users and user namespaces")
	for _, c := range []struct {
		name  string
		flags []string
		uid   int // the sweeper's, outside any namespace
	}{
		{"root in a user namespace mapping no one", []string{"--user"}, 0},
		{"root in a user namespace mapping root", []string{"--user", "--map-root-user"}, 0},
		{"an ordinary user", nil, 12345},
	} {
		t.Run(c.name, func(t *testing.T) {
			keys := checkLeaks(t)
			sweeplock.Lock(t)
			// A killed creator's segments for each of three users: the
			// sweeper's, another one's, and nobody (65534, the overflow
			// uid itself).
			byOwner := map[int][]string{}
			for _, uid := range []int{c.uid, 23456, 65534} {
				cmd := helperCommand(t, "hold", "2")
				cmd.Env = append(cmd.Env, helperUIDEnv+"="+strconv.Itoa(uid))
				held, holder, _ := startHolderCmd(t, keys, cmd)
				kill(t, holder)
				awaitGone(t, held)
				byOwner[uid] = held
			}
			var env []string
			if c.uid != 0 {
				env = []string{helperUIDEnv + "=" + strconv.Itoa(c.uid)}
			}
			removed := sweepIn(t, c.flags, env...)
			for uid, held := range byOwner {
				for _, k := range held {
					_, err := os.Lstat(shm.Dir + k)
					switch {
					case uid == c.uid && !slices.Contains(removed, k):
						t.Errorf("Sweep did not remove the sweeper's own %s (removed %q)", k, removed)
					case uid != c.uid && slices.Contains(removed, k):
						t.Errorf("Sweep removed %s of uid %d", k, uid)
					case uid != c.uid && err != nil:
						t.Errorf("%s of uid %d is gone: %v", k, uid, err)
					}
				}
			}
			// List there cannot tell of other users' segments (or, where
			// it may open them, tells the truth).
			states := statesIn(t, c.flags, byOwner[23456], env...)
			for _, k := range byOwner[23456] {
				if s := states[k]; s != "unknown" && s != "gone" {
					t.Errorf("List as the sweeper: another user's dead %s is %q, want unknown or gone", k, s)
				}
			}
		})
	}
}

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h: no one, root included,
// may unlink the file.
const fsImmutableFL = 0x10

// TestSweepGoesOn: a name that cannot be removed is an error naming it, and
// Sweep still removes the others.
func TestSweepGoesOn(t *testing.T) {
	requireRoot(t, "to make a segment immutable")
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	held, holder, _ := startHolder(t, keys, 3)
	kill(t, holder)
	awaitGone(t, held)
	slices.Sort(held) // Sweep meets them in this order
	stuck := held[0]
	f, err := os.Open(shm.Dir + stuck)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, fsImmutableFL); err != nil {
		t.Skipf("cannot make a file in /dev/shm immutable: %v", err)
	}
	t.Cleanup(func() { unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, 0) })

	removed, err := Sweep()
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != stuck || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("Sweep: %v, want an fs.ErrPermission *fs.PathError naming %s", err, stuck)
	}
	for _, k := range held[1:] {
		if !slices.Contains(removed, k) {
			t.Errorf("Sweep stopped at %s and did not remove %s (removed %q)", stuck, k, removed)
		}
	}
	if slices.Contains(removed, stuck) {
		t.Errorf("Sweep says it removed the immutable %s", stuck)
	}
}

// TestSweepWhileCreating: one process creates thousands of segments while
// others sweep in a loop; not one is lost. Also where /dev/shm has no
// O_TMPFILE, and Create names a segment before it holds it.
func TestSweepWhileCreating(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	for _, mode := range []string{"unnamed", "named"} {
		t.Run(mode, func(t *testing.T) {
			keys := checkLeaks(t)
			sweeplock.Lock(t)
			var sweepers []*bufio.Reader
			var stops []func()
			var waits []func() error
			for range 2 {
				_, stdin, r, wait := startHelper(t, "sweep-loop")
				if line := readLine(t, r); line != "sweeping" {
					t.Fatalf("sweeper printed %q", line)
				}
				sweepers = append(sweepers, r)
				stops = append(stops, func() { stdin.Close() })
				waits = append(waits, wait)
			}
			_, _, r, wait := startHelper(t, "create-many", strconv.Itoa(n), mode)
			readLine(t, r) // started
			var made []string
			status := readLine(t, r)
			for {
				line := readLine(t, r)
				if line == "done" {
					break
				}
				made = append(made, line)
			}
			for _, k := range made {
				keys.add(k)
			}
			if err := wait(); err != nil {
				t.Errorf("creator: %v", err)
			}
			if status != "ok" {
				t.Fatalf("creator: %s", status)
			}
			for i, r := range sweepers {
				stops[i]()
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						break
					}
					line = strings.TrimSpace(line)
					switch {
					case strings.HasPrefix(line, "sweeps "):
						if line == "sweeps 0" || line == "sweeps 1" {
							t.Errorf("sweeper %d: %s: it did not sweep during the creation", i, line)
						}
					case strings.HasPrefix(line, "removed "):
						if k := strings.TrimPrefix(line, "removed "); slices.Contains(made, k) {
							t.Errorf("sweeper %d removed %s while its creator was alive", i, k)
						}
					case strings.HasPrefix(line, "error: "):
						t.Errorf("sweeper %d: %s", i, line)
					}
				}
				waits[i]()
			}
			if len(made) != n {
				t.Errorf("the creator made %d segments, want %d", len(made), n)
			}
		})
	}
}

// TestConcurrentSweeps: 8 Sweeps at once over 300 dead segments remove
// each exactly once, and none reports another's removal as an error.
func TestConcurrentSweeps(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	held, holder, _ := startHolder(t, keys, 300)
	kill(t, holder)
	awaitGone(t, held[len(held)-1:])
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			<-start
			removed, err := Sweep()
			if err != nil {
				t.Errorf("Sweep: %v", err)
			}
			mu.Lock()
			for _, k := range removed {
				count[k]++
			}
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	for _, k := range held {
		if count[k] != 1 {
			t.Errorf("%s removed %d times, want once", k, count[k])
		}
	}
}

// TestListCreator: List tells Create's segments apart from others', and a
// live creator from a dead one; a user who may not open a segment cannot
// tell.
func TestListCreator(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	own, _ := newSegment(t, keys, 10)
	if got := creatorOf(t, own); got != CreatorAlive {
		t.Errorf("this process' own segment: %v, want alive", got)
	}
	foreign := "shmmap_test_list_" + strconv.Itoa(os.Getpid())
	plantSegment(t, keys, foreign, 10)
	if got := creatorOf(t, "/"+foreign); got != CreatorNone {
		t.Errorf("a foreign segment: %v, want none", got)
	}
	held, holder, _ := startHolder(t, keys, 1)
	kill(t, holder)
	awaitGone(t, held) // fails unless List comes to say gone
	if os.Geteuid() == 0 {
		states := statesIn(t, nil, []string{own, held[0], "/" + foreign}, helperUIDEnv+"=65534")
		want := map[string]string{own: "unknown", held[0]: "unknown", "/" + foreign: "none"}
		for k, w := range want {
			if states[k] != w {
				t.Errorf("List as another user: %s is %q, want %q", k, states[k], w)
			}
		}
	}
	// Unlink closes the creator's fd along with the name (the lock lasts
	// until Release unmaps: nothing is left to sweep by then).
	if err := Unlink(own); err != nil {
		t.Fatal(err)
	}
	if h := takeSnapshot(t); len(h.fds) != 0 {
		t.Errorf("after Unlink the creator still holds %q", h.fds)
	}
}

// holds returns the fds this process has open on the file seg describes,
// named or not: /proc/self/fd/N of an fd from O_TMPFILE reads as
// "/dev/shm/#INODE (deleted)" even once the file has its name, so the file
// is told by its inode.
func holds(t *testing.T, seg os.FileInfo) []string {
	t.Helper()
	var fds []string
	for _, fd := range takeSnapshot(t).fds {
		n, _, _ := strings.Cut(fd, " ")
		if fi, err := os.Stat("/proc/self/fd/" + n); err == nil && os.SameFile(fi, seg) {
			fds = append(fds, fd)
		}
	}
	return fds
}

// TestUnlinkEndsCreatorsClaim: after Unlink the creator no longer owns the
// name, so its Release must not remove a later segment of the same name
// made by someone else, and it no longer holds the fd of the creator's
// lock (which would keep a dead segment's memory and tell List "alive").
func TestUnlinkEndsCreatorsClaim(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t) // the planted name has Create's form and no lock: no Sweep may take it
	key, data := newSegment(t, keys, 4096)
	seg, err := os.Stat(shm.Dir + key)
	if err != nil {
		t.Fatal(err)
	}
	if fds := holds(t, seg); len(fds) != 1 {
		t.Fatalf("the creator holds %q on %s, want the fd of its lock", fds, key)
	}
	if err := Unlink(key); err != nil {
		t.Fatal(err)
	}
	if fds := holds(t, seg); len(fds) != 0 {
		t.Errorf("after Unlink the creator still holds %q", fds)
	}
	data[0] = 1 // still mapped

	// Another party makes a new segment under the name.
	const content = "another party's segment"
	plantFile(t, shm.Dir+key, content)
	if err := Release(key); err != nil {
		t.Fatalf("Release after Unlink: %v", err)
	}
	mustHold(t, shm.Dir+key, content, "after the first creator's Release")
	if got := creatorOf(t, key); got != CreatorGone {
		t.Errorf("List: the planted segment's creator is %v, want gone (no one holds it)", got)
	}
}

// TestReapNameGoneMeanwhile: a name that another process removes between
// Sweep's check that it still names the file it locked and its unlink is
// not an error (ENOENT from the unlink), any more than one removed before
// Sweep opens it (ENOENT from the open). Concurrent Sweeps never meet the
// first case, since each holds the lock while it checks and unlinks; a
// process that removes names without the lock does. Here a goroutine links
// and unlinks a dead segment's name in a loop, through a second name that
// keeps the file, while reap (Sweep's work on one name) runs on it.
func TestReapNameGoneMeanwhile(t *testing.T) {
	keys := checkLeaks(t)
	sweeplock.Lock(t)
	key := newKey()
	keys.add(key)
	hidden := fmt.Sprintf("%s/shmmap_test_hidden_%d_%d", shm.Dir, os.Getpid(), time.Now().UnixNano())
	plantFile(t, hidden, "dead")
	t.Cleanup(func() { os.Remove(shm.Dir + key) })

	stop := make(chan struct{})
	var toggles atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			unix.Link(hidden, shm.Dir+key)
			unix.Unlink(shm.Dir + key)
			toggles.Add(1)
		}
	})
	// Until reap has removed the name often enough that the goroutine's
	// removal has surely fallen between reap's lstat and its unlink too
	// (with that ENOENT made an error, thousands of times in 2000 removals
	// on a 2-core VM, with -race or without), or the time is up.
	enough, budget := 2000, 5*time.Second
	if testing.Short() {
		enough, budget = 500, time.Second
	}
	rounds, removed, errs := 0, 0, 0
	for start := time.Now(); removed < enough && time.Since(start) < budget; rounds++ {
		ok, err := shm.Reap(key)
		if ok {
			removed++
		}
		if err != nil {
			errs++
			if errs <= 3 {
				t.Errorf("reap of a name that comes and goes: %v", err)
			}
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d rounds: %d removals, %d errors, %d toggles", rounds, removed, errs, toggles.Load())
}
