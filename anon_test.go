package shmmap

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

// socketPair returns the two ends of a connected Unix stream socket, closed
// in cleanup.
func socketPair(t *testing.T) (a, b *net.UnixConn) {
	t.Helper()
	fa, fb := socketPairFiles(t)
	return fileConn(t, fa), fileConn(t, fb)
}

// socketPairFiles returns the two ends of a connected Unix stream socket as
// files (for ExtraFiles, or for raw sendmsg), close-on-exec, closed in
// cleanup.
func socketPairFiles(t *testing.T) (a, b *os.File) {
	t.Helper()
	return socketPairOf(t, unix.SOCK_STREAM)
}

// socketPairOf is socketPairFiles for a Unix socket of type typ.
func socketPairOf(t *testing.T, typ int) (a, b *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.CloseOnExec(fds[0])
	unix.CloseOnExec(fds[1])
	a, b = os.NewFile(uintptr(fds[0]), "socket a"), os.NewFile(uintptr(fds[1]), "socket b")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// fileConn returns a *net.UnixConn of its own on the socket f (net dups
// the fd), closed in cleanup.
func fileConn(t *testing.T, f *os.File) *net.UnixConn {
	t.Helper()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UnixConn)
}

// newAnonymous creates an anonymous segment of size bytes for t, closed in
// cleanup even if the test fails (the test may close it first).
func newAnonymous(t *testing.T, size int) *Mapping {
	t.Helper()
	m, err := CreateAnonymous(size)
	if err != nil {
		t.Fatalf("CreateAnonymous(%d): %v", size, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// isPathError checks that err is an *fs.PathError on path that wraps want.
func isPathError(t *testing.T, what string, err error, path string, want error) {
	t.Helper()
	var pe *fs.PathError
	switch {
	case !errors.Is(err, want):
		t.Errorf("%s: %v, want an error wrapping %v", what, err, want)
	case !errors.As(err, &pe):
		t.Errorf("%s: %#v is not an *fs.PathError", what, err)
	case pe.Path != path:
		t.Errorf("%s: %v names %q, want %q", what, err, pe.Path, path)
	}
}

// TestCreateAnonymous: a new segment of every size is zero-filled, as long
// as asked, writable, and seen through a second mapping of its file; Close
// unmaps it and closes the file, and a second Close is fs.ErrClosed.
func TestCreateAnonymous(t *testing.T) {
	checkLeaks(t)
	for _, size := range []int{1, 4095, 4096, 10000, 1 << 20} {
		m := newAnonymous(t, size)
		data := m.Bytes()
		if len(data) != size {
			t.Fatalf("CreateAnonymous(%d): %d bytes", size, len(data))
		}
		for i, b := range data {
			if b != 0 {
				t.Fatalf("CreateAnonymous(%d): byte %d is %d", size, i, b)
			}
		}
		fill(data)
		fi, err := m.File().Stat()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < int64(size) { // macOS rounds up to pages
			t.Errorf("CreateAnonymous(%d): the file has %d bytes", size, fi.Size())
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("CreateAnonymous(%d): mode %v, want 0600", size, fi.Mode())
		}
		other, err := MapFileReadOnly(m.File(), size)
		if err != nil {
			t.Fatal(err)
		}
		if err := check(other.Bytes()); err != nil {
			t.Errorf("a second mapping of the file: %v", err)
		}
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.File().Stat(); err != nil {
			t.Errorf("closing a MapFileReadOnly mapping closed the file: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if m.Bytes() != nil {
			t.Errorf("Bytes after Close: %d bytes, want nil", len(m.Bytes()))
		}
		if _, err := m.File().Stat(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("Stat of the file after Close: %v, want fs.ErrClosed", err)
		}
		isPathError(t, "second Close", m.Close(), m.File().Name(), fs.ErrClosed)
		isPathError(t, "second Close of a MapFileReadOnly mapping", other.Close(), m.File().Name(), fs.ErrClosed)
	}
}

// TestNilMapping: a Mapping that a failed call returned (nil), or one made
// by hand, is an error to Close and has nothing to give, but never a panic:
// defer m.Close() before the error check must not crash the program.
func TestNilMapping(t *testing.T) {
	for _, m := range []*Mapping{nil, {}} {
		isPathError(t, "Close", m.Close(), "", fs.ErrInvalid)
		if m.Bytes() != nil || m.File() != nil || m.Sealed() {
			t.Errorf("%#v: Bytes %v, File %v, Sealed %v; want nil, nil, false", m, m.Bytes(), m.File(), m.Sealed())
		}
	}
}

func TestCreateAnonymousBadSizes(t *testing.T) {
	checkLeaks(t)
	for _, size := range append([]int{0, -1, -4096}, ints(int64(shm.MaxSize)+1)...) {
		m, err := CreateAnonymous(size)
		if m != nil {
			m.Close()
			t.Errorf("CreateAnonymous(%d) made a mapping", size)
		}
		isPathError(t, "CreateAnonymous", err, newSegmentPath, ErrInvalidSize)
	}
}

// TestMapFile: MapFile and MapFileReadOnly of a segment's file, whole and in
// part, see the same memory as the creator; sizes past the file, or
// negative, are ErrInvalidSize.
func TestMapFile(t *testing.T) {
	checkLeaks(t)
	const size = 3*4096 + 100
	m := newAnonymous(t, size)
	f := m.File()

	rw, err := MapFile(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if len(rw.Bytes()) < size {
		t.Fatalf("MapFile(f, 0) maps %d bytes, want at least %d", len(rw.Bytes()), size)
	}
	rw.Bytes()[size-1] = 42
	if m.Bytes()[size-1] != 42 {
		t.Error("a write through MapFile's mapping is not seen by the creator")
	}
	m.Bytes()[0] = 7
	ro, err := MapFileReadOnly(f, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if len(ro.Bytes()) != 10 || ro.Bytes()[0] != 7 {
		t.Errorf("MapFileReadOnly(f, 10): %d bytes, first %d; want 10, 7", len(ro.Bytes()), ro.Bytes()[0])
	}
	if ro.File() != f || rw.File() != f {
		t.Error("File of a MapFileReadOnly or MapFile mapping is not the file it maps")
	}
	if ro.Sealed() != m.Sealed() || rw.Sealed() != m.Sealed() {
		t.Errorf("Sealed: %v and %v for mappings of the creator's file, which says %v", ro.Sealed(), rw.Sealed(), m.Sealed())
	}

	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{-1, int(fi.Size()) + 1, int(fi.Size()) + 1<<20} {
		for _, mapper := range []func(*os.File, int, ...Option) (*Mapping, error){MapFileReadOnly, MapFile} {
			got, err := mapper(f, size)
			if got != nil {
				got.Close()
			}
			isPathError(t, "size "+strconv.Itoa(size), err, f.Name(), ErrInvalidSize)
		}
	}
}

// TestSendReceiveSegment passes a segment's file over a socket: the received
// file is of the same segment, close-on-exec, and a second descriptor of
// its own, which outlives the sender's.
func TestSendReceiveSegment(t *testing.T) {
	checkLeaks(t)
	a, b := socketPair(t)
	m := newAnonymous(t, 8192)
	fill(m.Bytes())
	if err := SendSegment(a, m.File()); err != nil {
		t.Fatal(err)
	}
	f, err := ReceiveSegment(b)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("the received fd's flags: %#x, %v; want FD_CLOEXEC", flags, err)
	}
	if err := m.Close(); err != nil { // the sender is done: the segment lives on in f
		t.Fatal(err)
	}
	got, err := MapFile(f, 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if err := check(got.Bytes()); err != nil {
		t.Errorf("the received segment: %v", err)
	}
	if got.Sealed() != m.Sealed() {
		t.Errorf("the received segment's Sealed: %v, the sender's %v", got.Sealed(), m.Sealed())
	}
}

// TestRequireSealedAnonymous: CreateAnonymous's segments meet RequireSealed
// on every system, mapped read-only or read-write, and keys meet it only
// where every segment's size is fixed by the kernel (macOS): never on
// Linux, where a file in /dev/shm cannot be sealed.
func TestRequireSealedAnonymous(t *testing.T) {
	keys := checkLeaks(t)
	m, err := CreateAnonymous(8192, RequireSealed(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, mapper := range []func(*os.File, int, ...Option) (*Mapping, error){MapFileReadOnly, MapFile} {
		other, err := mapper(m.File(), 0, RequireSealed())
		if err != nil {
			t.Fatalf("the file of CreateAnonymous with RequireSealed: %v", err)
		}
		other.Close()
	}

	key, _ := newSegment(t, keys, 4096)
	_, rerr := Read(key, 0, RequireSealed())
	_, werr := ReadWrite(key, 0, RequireSealed())
	if runtime.GOOS == "darwin" {
		if rerr != nil || werr != nil {
			t.Errorf("Read and ReadWrite of a key with RequireSealed on macOS: %v, %v; want both to work", rerr, werr)
		}
		return
	}
	isPathError(t, "Read of a key with RequireSealed", rerr, key, ErrNotSealed)
	isPathError(t, "ReadWrite of a key with RequireSealed", werr, key, ErrNotSealed)
}
