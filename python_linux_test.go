//go:build linux

package shmmap

// Interop with the Python package in python/ (importable as shmmap), tested
// against Debian's python3 and NumPy: arrays shared in place both ways, the
// liveness of a Python creator as List and Sweep see it, and segments handed
// over by descriptor both ways with their seals checked. The Python side is
// testdata/python/shmmap_peer.py.

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shmmap-go/shmmap/internal/peer"
	"github.com/shmmap-go/shmmap/internal/shm"
)

// pythonPackage returns a python3 that has NumPy, and the environment in
// which it imports the package shmmap from python/ in this repository
// (without writing bytecode into the source tree).
func pythonPackage(t *testing.T) (python string, env []string) {
	t.Helper()
	python = peer.Python(t, "numpy")
	dir, err := filepath.Abs("python")
	if err != nil {
		t.Fatal(err)
	}
	return python, append(os.Environ(), "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
}

// pythonPeer returns a command that runs shmmap_peer.py with args, killed
// if it runs for more than a minute.
func pythonPeer(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	python, env := pythonPackage(t)
	cmd := peerCommand(t, python, append([]string{filepath.Join("testdata", "python", "shmmap_peer.py")}, args...)...)
	cmd.Env = env
	return cmd
}

// TestPythonPackageNumPy shares float64 arrays in place between Go's View and
// NumPy arrays of the Python package's segments, each way. Python checks
// that its array is no copy: NumPy says it shares memory with the segment's
// memoryview, and its data lies in a shared mapping of the segment's file.
func TestPythonPackageNumPy(t *testing.T) {
	checkLeaks(t)
	t.Run("GoCreates", func(t *testing.T) {
		keys := checkLeaks(t)
		goCreates(t, keys, func(key string, n int) *exec.Cmd {
			return pythonPeer(t, "view", key, strconv.Itoa(n))
		})
	})
	t.Run("PythonCreates", func(t *testing.T) {
		keys := checkLeaks(t)
		cmd := pythonPeer(t, "create", strconv.Itoa(interopFloats))
		stdin, stdout, wait := startCommand(t, cmd)
		key := readLine(t, stdout)
		keys.add(key) // Python's close must remove it: checkLeaks checks
		if !isCreateKey(key) {
			t.Fatalf("Python's create made %q, not a key of Go's Create form", key)
		}
		if c := creatorOf(t, key); c != CreatorAlive {
			t.Errorf("List of a segment that Python holds: creator %v, want alive", c)
		}
		m := mapHandle(t, key, 0, true)
		checkHalves(t, m.Bytes())
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		stdin.Close() // done: Python checks the negation and closes
		if err := wait(); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	})
}

// TestPythonPackageCreatorLiveness: a segment that Python's create made is
// CreatorAlive to List while the Python process holds it, and Sweep leaves
// it; once the process is SIGKILLed it is CreatorGone, and Sweep removes it.
func TestPythonPackageCreatorLiveness(t *testing.T) {
	keys := checkLeaks(t)
	cmd := pythonPeer(t, "hold", "4096")
	_, stdout, wait := startCommand(t, cmd)
	key := readLine(t, stdout)
	keys.add(key)
	t.Cleanup(func() {
		if _, err := os.Lstat(shm.Dir + key); err == nil {
			Unlink(key) // the test failed with Python dead or alive: its name is the test's
		}
	})
	if c := creatorOf(t, key); c != CreatorAlive {
		t.Fatalf("List while Python holds %s: creator %v, want alive", key, c)
	}
	removed, err := Sweep()
	if err != nil {
		t.Logf("Sweep: %v", err) // other programs' segments; not ours to judge
	}
	if slices.Contains(removed, key) {
		t.Fatalf("Sweep removed %s while Python held it", key)
	}
	stillThere(t, key)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wait()                      // killed: the error says so
	awaitGone(t, []string{key}) // List says gone, or the test fails
	removed, err = Sweep()
	if err != nil {
		t.Logf("Sweep: %v", err)
	}
	if !slices.Contains(removed, key) {
		t.Fatalf("Sweep after Python was killed removed %q, not %s", removed, key)
	}
	if _, err := os.Lstat(shm.Dir + key); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Sweep: lstat %s: %v", key, err)
	}
}

// TestPythonPackageHandover hands segments over a Unix socket between Go's
// SendSegment and ReceiveSegment and the Python package's send_segment and
// receive_segment, each way, with the seals checked on the receiving side:
// Python's map_fd(require_sealed=True) takes Go's sealed anonymous segment
// and refuses an unsealed one; Go's MapFile with RequireSealed takes
// Python's create_anonymous and refuses an unsealed memfd.
func TestPythonPackageHandover(t *testing.T) {
	checkLeaks(t)
	// start runs shmmap_peer.py cmd with a socket as its fd 3 (startFDPeer).
	start := func(t *testing.T, cmd string) (*net.UnixConn, *bytes.Buffer, func() error) {
		t.Helper()
		return startFDPeer(t, pythonPeer(t, cmd, strconv.Itoa(interopFloats)))
	}

	t.Run("GoSends", func(t *testing.T) {
		checkLeaks(t)
		if v, want, out, ok := sendQuarters(t, start); ok {
			checkDoubled(t, v, out, want)
		}
	})
	t.Run("GoSendsUnsealed", func(t *testing.T) {
		keys := checkLeaks(t)
		m := newHandle(t, keys, interopFloats*8) // a key's file, which cannot be sealed
		conn, out, wait := start(t, "recv-unsealed")
		if err := SendSegment(conn, m.File()); err != nil {
			t.Fatal(err)
		}
		if wait() != nil {
			return
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "NotSealed: ") || lines[1] != "sealed: False" {
			t.Errorf("Python's map_fd of an unsealed segment printed %q, want NotSealed with require_sealed and sealed False without", lines)
		}
	})
	t.Run("PythonSends", func(t *testing.T) {
		checkLeaks(t)
		conn, _, wait := start(t, "send-fd")
		f, err := ReceiveSegment(conn)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() != "/memfd:shmmap (deleted)" {
			t.Errorf("the received file is named %q", f.Name())
		}
		m, err := MapFile(f, 0, RequireSealed())
		f.Close()
		if err != nil {
			t.Fatalf("MapFile with RequireSealed of Python's create_anonymous: %v", err)
		}
		t.Cleanup(func() { m.Close() })
		if !m.Sealed() {
			t.Error("Python's create_anonymous: Sealed() is false")
		}
		checkHalves(t, m.Bytes())
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		conn.Close() // done: Python checks the negation
		wait()
	})
	t.Run("PythonSendsUnsealed", func(t *testing.T) {
		checkLeaks(t)
		conn, _, wait := start(t, "send-unsealed")
		f, err := ReceiveSegment(conn)
		if err != nil {
			t.Fatal(err)
		}
		m, err := MapFile(f, 0, RequireSealed())
		if !errors.Is(err, ErrNotSealed) {
			t.Errorf("MapFile with RequireSealed of an unsealed memfd: %v, want ErrNotSealed", err)
		}
		if err == nil {
			m.Close()
		}
		f.Close()
		conn.Close()
		wait()
	})
}
