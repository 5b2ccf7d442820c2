package shmmap

// Interop with the runtimes people hand arrays to, tested against the real
// programs: Python's multiprocessing.shared_memory with NumPy, and the node
// package shmmap (the original this package ports). Their sides are the
// README's worker.py and worker.js, run as the README shows them, and
// testdata/python/interop.py and testdata/node/interop.js.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/internal/peer"
	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

// interopFloats is how many float64s the interop tests share: 8 MiB.
const interopFloats = 1 << 20

// numPy returns a python3 that has NumPy (internal/peer).
func numPy(t *testing.T) string {
	t.Helper()
	return peer.Python(t, "numpy", "multiprocessing.shared_memory")
}

// peerCommand returns a command that is killed if it runs for more than a
// minute, so that a peer stuck waiting cannot hang the tests.
func peerCommand(t *testing.T, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return exec.CommandContext(ctx, name, args...)
}

// runPeer runs a peer command to completion and returns its stdout and
// stderr; it fails t if the command fails.
func runPeer(t *testing.T, cmd *exec.Cmd) (stdout, stderr string) {
	t.Helper()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", cmd, err, out, errb.Bytes())
	}
	return string(out), errb.String()
}

// startFDPeer starts c, a peer program, with one end of a socket pair as
// its fd 3, and returns the other end, the peer's stdout, and a wait that
// fails t unless the peer exits 0 and quietly.
func startFDPeer(t *testing.T, c *exec.Cmd) (*net.UnixConn, *bytes.Buffer, func() error) {
	t.Helper()
	ours, theirs := socketPairFiles(t)
	c.ExtraFiles = []*os.File{theirs}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	theirs.Close() // the peer's now: it must see our end alone
	conn := fileConn(t, ours)
	ours.Close()
	return conn, &stdout, func() error {
		err := c.Wait()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("%s: %v\nstdout:\n%s\nstderr:\n%s", c, err, stdout.Bytes(), stderr.Bytes())
		}
		return err
	}
}

// readmeBlock returns the first code block in lang of the README's section
// on Python and Node: the tests run them exactly as the README shows them.
func readmeBlock(t *testing.T, lang string) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Sharing with Python and Node\n")
	if ok {
		_, section, ok = strings.Cut(section, "\n```"+lang+"\n")
	}
	if ok {
		section, _, ok = strings.Cut(section, "\n```\n")
	}
	if !ok {
		t.Fatalf("README.md has no ```%s block under \"Sharing with Python and Node\"", lang)
	}
	return section + "\n"
}

// readmeWorker writes the README's worker in lang to dir/name and returns
// its path.
func readmeWorker(t *testing.T, lang, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(readmeBlock(t, lang)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReadmeSharing builds the README's Go function share into a program
// and runs it with the README's Python and Node workers: what a user who
// copies the three snippets gets.
func TestReadmeSharing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	checkLeaks(t)
	dir := t.TempDir()
	repo, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod": "module readme\n\ngo 1.26\n\n" +
			"require github.com/shmmap-go/shmmap v0.0.0\n\n" +
			"replace github.com/shmmap-go/shmmap => " + repo + "\n",
		"go.sum": string(sum),
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n\t\"os/exec\"\n\t\"strconv\"\n\n" +
			"\t\"github.com/shmmap-go/shmmap\"\n)\n\n" +
			"func main() {\n\tif err := share(os.Args[1:]...); err != nil {\n\t\tfmt.Fprintln(os.Stderr, err)\n\t\tos.Exit(1)\n\t}\n}\n\n" +
			readmeBlock(t, "go"),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", "share", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the README's share function: %v\n%s", err, out)
	}

	// The program passes its key to the worker as the next to last
	// argument: record runs the worker through a script that writes it to
	// a file first, so that the test knows the one name the program made.
	record := filepath.Join(dir, "record")
	if err := os.WriteFile(record, []byte(recordScript), 0o755); err != nil {
		t.Fatal(err)
	}

	// run runs the program with a worker (worker[0] found on env's PATH)
	// and checks what it printed; the program must have removed its
	// segment when done. Cleanup removes it in any case, if the program
	// made one and left it (killed at its timeout, say).
	run := func(t *testing.T, worker []string, env []string, want string) {
		t.Helper()
		keys := checkLeaks(t)
		keyFile := filepath.Join(t.TempDir(), "key")
		made := func() string {
			b, _ := os.ReadFile(keyFile)
			return strings.TrimSpace(string(b))
		}
		t.Cleanup(func() {
			if key := made(); isCreateKey(key) {
				Unlink(key) // by then the program has exited: its name, if left, is no one's
			}
		})
		cmd := peerCommand(t, filepath.Join(dir, "share"), append([]string{record, keyFile}, worker...)...)
		cmd.Env = env
		out, _ := runPeer(t, cmd)
		if out != want {
			t.Errorf("the README's program printed %q, want %q", out, want)
		}
		key := made()
		if !isCreateKey(key) {
			t.Fatalf("the README's program gave its worker %q, not a key of Create's", key)
		}
		keys.add(key) // and checkLeaks checks that the name is gone
		if runtime.GOOS != "linux" {
			return
		}
		if _, err := os.Lstat(shm.Dir + key); err == nil {
			t.Errorf("the README's program left %s behind", key)
		}
	}
	const sumQuarters = 0.25 * interopFloats * (interopFloats - 1) / 2

	t.Run("Python", func(t *testing.T) {
		python := numPy(t)
		worker := readmeWorker(t, "python", dir, "worker.py")
		// The README runs "python3": make that the one with NumPy.
		env := append(os.Environ(), "PATH="+filepath.Dir(python)+string(os.PathListSeparator)+os.Getenv("PATH"))
		run(t, []string{"python3", worker}, env, fmt.Sprintf("%.1f\n0.5\n", sumQuarters))
	})
	t.Run("Node", func(t *testing.T) {
		modules := nodeShmmap(t)
		worker := readmeWorker(t, "js", dir, "worker.js")
		env := append(os.Environ(), "NODE_PATH="+modules)
		run(t, []string{"node", worker}, env, fmt.Sprintf("%.0f\n0.5\n", sumQuarters))
	})
}

// recordScript is record KEYFILE WORKER...: it writes its next to last
// argument (the key that the README's program passes its worker) to
// KEYFILE, then runs WORKER... in its place.
const recordScript = `#!/bin/sh
out=$1
shift
prev= last=
for a do prev=$last; last=$a; done
printf '%s\n' "$prev" >"$out"
exec "$@"
`

// goCreates makes a segment of float64s, runs the peer command that
// worker returns for its key and length, and checks that the peer printed
// their sum, doubled them in place, left the segment in place and wrote
// nothing to stderr. keys are from the test's checkLeaks.
func goCreates(t *testing.T, keys *keySet, worker func(key string, n int) *exec.Cmd) {
	t.Helper()
	key, data := newSegment(t, keys, interopFloats*8)
	v, err := View[float64](data)
	if err != nil {
		t.Fatal(err)
	}
	want := fillQuarters(v)
	cmd := worker(key, len(v))
	out, stderr := runPeer(t, cmd)
	checkDoubled(t, v, out, want)
	stillThere(t, key)
	if stderr != "" {
		t.Errorf("%s wrote to stderr:\n%s", cmd.Args[0], stderr)
	}
	if err := Release(key); err != nil {
		t.Error(err)
	}
}

// peerCreates runs a peer command that makes a segment of float64s (i +
// 0.5), prints its key and waits for stdin to close; Go maps it with size
// 0, checks and negates the values and releases it, and the peer, which
// checks the negation and removes its segment, must succeed. keys are from
// the test's checkLeaks.
func peerCreates(t *testing.T, keys *keySet, cmd *exec.Cmd) {
	t.Helper()
	stdin, stdout, wait := startCommand(t, cmd)
	key := readLine(t, stdout)
	keys.add(key) // the peer must remove it: checkLeaks checks
	data, err := ReadWrite(key, 0)
	if err != nil {
		t.Fatalf("ReadWrite(%q, 0) of a segment %s made: %v", key, cmd.Args[0], err)
	}
	t.Cleanup(func() { Release(key) })
	checkHalves(t, data)
	if err := Release(key); err != nil {
		t.Errorf("Release of a segment %s made: %v", cmd.Args[0], err)
	}
	stdin.Close() // done: the peer checks and removes its segment
	if err := wait(); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
}

// fillQuarters sets v[i] = i/4, which every runtime sums exactly, and
// returns the sum.
func fillQuarters(v []float64) float64 {
	sum := 0.0
	for i := range v {
		v[i] = float64(i) * 0.25
		sum += v[i]
	}
	return sum
}

// sendQuarters sends the peer that start starts with cmd recv-fd a new
// anonymous segment of interopFloats values set by fillQuarters, and waits
// for the peer. It returns the values, their sum, what the peer printed,
// and whether it exited as it should (startFDPeer's wait has reported it
// if not).
func sendQuarters(t *testing.T, start func(*testing.T, string) (*net.UnixConn, *bytes.Buffer, func() error)) (v []float64, sum float64, out string, ok bool) {
	t.Helper()
	m := newAnonymous(t, interopFloats*8)
	v, err := View[float64](m.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	sum = fillQuarters(v)
	conn, stdout, wait := start(t, "recv-fd")
	if err := SendSegment(conn, m.File()); err != nil {
		t.Fatal(err)
	}
	if wait() != nil {
		return v, sum, stdout.String(), false
	}
	return v, sum, stdout.String(), true
}

// checkDoubled checks that a peer doubled every value fillQuarters set and
// printed their sum.
func checkDoubled(t *testing.T, v []float64, printed string, want float64) {
	t.Helper()
	got, err := strconv.ParseFloat(strings.TrimSpace(printed), 64)
	if err != nil || got != want {
		t.Errorf("peer's sum: %q, want %v", printed, want)
	}
	for i := range v {
		if v[i] != float64(i)*0.5 {
			t.Fatalf("value %d after the peer doubled it: %v, want %v", i, v[i], float64(i)*0.5)
		}
	}
}

// checkHalves checks the values a peer made (i + 0.5) and negates them for
// the peer to check.
func checkHalves(t *testing.T, data []byte) {
	t.Helper()
	v, err := View[float64](data)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != interopFloats {
		t.Fatalf("the peer's segment holds %d float64s, want %d", len(v), interopFloats)
	}
	for i := range v {
		if v[i] != float64(i)+0.5 {
			t.Fatalf("value %d: %v, want %v", i, v[i], float64(i)+0.5)
		}
		v[i] = -v[i]
	}
}

// stillThere fails t if segment key is gone from /dev/shm.
func stillThere(t *testing.T, key string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	if _, err := os.Stat(shm.Dir + canonical(key)); err != nil {
		t.Errorf("the peer removed our segment: %v", err)
	}
}

func TestPythonNumPy(t *testing.T) {
	checkLeaks(t)
	python := numPy(t)
	script := filepath.Join("testdata", "python", "interop.py")

	t.Run("GoCreates", func(t *testing.T) {
		keys := checkLeaks(t)
		// Had the worker's attach() not unregistered the segment from
		// the resource tracker, the tracker would have removed it and
		// warned on stderr: goCreates checks both.
		worker := readmeWorker(t, "python", t.TempDir(), "worker.py")
		goCreates(t, keys, func(key string, n int) *exec.Cmd {
			return peerCommand(t, python, "-I", worker, key, strconv.Itoa(n))
		})
	})
	t.Run("PythonCreates", func(t *testing.T) {
		keys := checkLeaks(t)
		peerCreates(t, keys, peerCommand(t, python, "-I", script, "create", strconv.Itoa(interopFloats)))
	})

	// What attach() guards against: Python's SharedMemory(name) registers
	// the segment with the resource tracker, which unlinks it at exit.
	t.Run("ResourceTrackerUnlinks", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("looks in /dev/shm")
		}
		keys := checkLeaks(t)
		key, _ := newSegment(t, keys, 4096)
		_, stderr := runPeer(t, peerCommand(t, python, "-I", script, "attach-naive", key))
		if _, err := os.Stat(shm.Dir + key); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after a plain SharedMemory(name): stat %s: %v; if this Python no longer unlinks segments it did not create, README.md and interop.py say otherwise", key, err)
		}
		if !strings.Contains(stderr, "leaked shared_memory") {
			t.Logf("python3's stderr, without the resource tracker's warning:\n%s", stderr)
		}
		// The creator's Release finds the name gone, which is no error.
		if err := Release(key); err != nil {
			t.Error(err)
		}
	})
}

// TestPythonFD passes anonymous segments between Go and Python by file
// descriptor over a Unix socket, each way: Go's CreateAnonymous and
// SendSegment to Python's socket.recv_fds and mmap, and Python's sealed
// os.memfd_create and socket.send_fds to ReceiveSegment and MapFile.
// The socket reaches Python as fd 3, through ExtraFiles.
func TestPythonFD(t *testing.T) {
	checkLeaks(t)
	python := numPy(t)
	script := filepath.Join("testdata", "python", "interop.py")
	// start runs interop.py cmd with a socket as its fd 3 (startFDPeer).
	start := func(t *testing.T, cmd string) (*net.UnixConn, *bytes.Buffer, func() error) {
		t.Helper()
		return startFDPeer(t, peerCommand(t, python, "-I", script, cmd, strconv.Itoa(interopFloats)))
	}

	t.Run("GoSends", func(t *testing.T) {
		checkLeaks(t)
		v, want, out, ok := sendQuarters(t, start)
		if !ok {
			return
		}
		sum, truncate, _ := strings.Cut(strings.TrimSpace(out), "\n")
		checkDoubled(t, v, sum, want)
		if want := map[string]string{"linux": "ftruncate: EPERM", "darwin": "ftruncate: EINVAL"}[runtime.GOOS]; truncate != want {
			t.Errorf("Python's ftruncate of the segment: %q, want %q", truncate, want)
		}
	})
	t.Run("PythonSends", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("Python has os.memfd_create on Linux only")
		}
		checkLeaks(t)
		conn, _, wait := start(t, "send-fd")
		f, err := ReceiveSegment(conn)
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() != "/memfd:python (deleted)" {
			t.Errorf("the received file is named %q", f.Name())
		}
		m, err := MapFile(f, 0)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if !m.Sealed() {
			t.Error("Python's sealed memfd: Sealed() is false")
		}
		checkHalves(t, m.Bytes())
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		conn.Close() // done: Python checks the negation
		wait()
	})
}

// nodeInstall is the outcome of installing the node package shmmap, once
// per test process.
var nodeInstall struct {
	once sync.Once
	path string // for NODE_PATH
	err  error
}

// nodeShmmap installs the node package shmmap with testdata/node/install.sh
// into a cache directory ($SHMMAP_NODE_CACHE, else the user cache directory),
// at most once per test process and under a file lock across processes, and
// returns the node_modules directory for NODE_PATH.
func nodeShmmap(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		peer.Missing(t, "the node interop test needs node: %v", err)
	}
	nodeInstall.once.Do(func() {
		dir := os.Getenv("SHMMAP_NODE_CACHE")
		if dir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				nodeInstall.err = err
				return
			}
			dir = filepath.Join(cache, "shmmap-go", "node")
		}
		nodeInstall.path, nodeInstall.err = installNode(dir)
	})
	if nodeInstall.err != nil {
		peer.Missing(t, "cannot install the node package shmmap: %v", nodeInstall.err)
	}
	return nodeInstall.path
}

func installNode(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	script, err := filepath.Abs(filepath.Join("testdata", "node", "install.sh"))
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "bash", script, dir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return filepath.Join(dir, "node_modules"), nil
}

func TestNodeShmmap(t *testing.T) {
	checkLeaks(t)
	modules := nodeShmmap(t)
	script := filepath.Join("testdata", "node", "interop.js")
	node := func(t *testing.T, args ...string) *exec.Cmd {
		cmd := peerCommand(t, "node", args...)
		cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
		return cmd
	}

	t.Run("GoCreates", func(t *testing.T) {
		keys := checkLeaks(t)
		worker := readmeWorker(t, "js", t.TempDir(), "worker.js")
		goCreates(t, keys, func(key string, n int) *exec.Cmd {
			return node(t, worker, key, strconv.Itoa(n))
		})
	})
	t.Run("NodeCreates", func(t *testing.T) {
		keys := checkLeaks(t)
		peerCreates(t, keys, node(t, script, "create", strconv.Itoa(interopFloats)))
	})
}
