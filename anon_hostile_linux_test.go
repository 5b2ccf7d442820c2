//go:build linux

package shmmap

// What a hostile sender of a segment's file can do to the receiver, and
// what it cannot.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestSealedWhileMapped: a sender truncates an unsealed memfd to 0 bytes
// and then seals it against shrinking, while the receiver maps it. Sealed
// must never vouch for a mapping longer than the file, whose first access
// would kill the receiver with SIGBUS. The test never touches the bytes:
// it compares the mapping's length with fstat of the file once both sides
// are done.
//
// The attacker spins on another thread until the receiver is about to
// call MapFileReadOnly; then, after a random delay on one side or the other, it
// truncates and seals. The run lasts a few seconds (less with
// -short), and goes on, up to a limit, until it has seen the attack land
// both before MapFileReadOnly's fstat (an empty file: refused) and after it (a
// mapping, which the truncation then leaves longer than the file): short
// of that it proves nothing, and fails.
func TestSealedWhileMapped(t *testing.T) {
	checkLeaks(t)
	const size = 1 << 20
	run := 2 * time.Second
	if testing.Short() {
		run = 300 * time.Millisecond
	}
	var tries, refused, overhang int
	start, limit := time.Now(), 10*time.Second
	for ; time.Since(start) < run || (refused == 0 || overhang == 0) && time.Since(start) < limit; tries++ {
		fd, err := unix.MemfdCreate("shmmap-test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fd), "memfd:shmmap-test")
		if err := f.Truncate(size); err != nil {
			f.Close()
			t.Fatal(err)
		}
		// The attacker waits delay steps, or the receiver -delay.
		delay := rand.IntN(600) - 100
		var ready, begin atomic.Bool
		done := make(chan error)
		go func() {
			ready.Store(true)
			for !begin.Load() {
				runtime.Gosched()
			}
			for i := 0; i < delay; i++ {
				ready.Store(true) // a store the compiler keeps: a delay
			}
			if err := unix.Ftruncate(fd, 0); err != nil {
				done <- err
				return
			}
			_, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK)
			done <- err
		}()
		for !ready.Load() {
			runtime.Gosched()
		}
		begin.Store(true)
		for i := 0; i < -delay; i++ {
			ready.Store(true)
		}
		m, err := MapFileReadOnly(f, 0)
		aerr := <-done
		var st unix.Stat_t
		serr := unix.Fstat(fd, &st)
		sealed := m.Sealed()
		if err == nil {
			m.Close()
		}
		f.Close()
		switch {
		case aerr != nil:
			t.Fatalf("the attacker: %v", aerr)
		case serr != nil:
			t.Fatal(serr)
		case err != nil:
			refused++ // it saw the truncation: 0 bytes
		case st.Size >= size:
			t.Fatalf("try %d: the file has %d bytes after the attack", tries, st.Size)
		case sealed:
			t.Fatalf("try %d: Sealed() is true for a %d-byte mapping of a %d-byte file: its first access is SIGBUS", tries, size, st.Size)
		default:
			overhang++
		}
	}
	t.Logf("%d tries: %d refused as empty, %d mapped and then truncated, none sealed", tries, refused, overhang)
	if refused == 0 || overhang == 0 {
		t.Fatalf("in %d tries over %v the attack never landed on both sides of MapFileReadOnly's fstat: the test proves nothing", tries, limit)
	}
}

// sealedMemfd makes a memfd of size bytes carrying exactly the seals
// given, as another program could hand one over; closed in cleanup.
func sealedMemfd(t *testing.T, size int64, seals int) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("shmmap-test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "memfd:shmmap-test")
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if seals != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestRequireSealed: what Sealed says of files with each set of seals, and
// which of them MapFileReadOnly and MapFile take with RequireSealed:
// F_SEAL_SHRINK for reading, and F_SEAL_GROW too for writing. A file in
// /dev/shm, which the kernel gives F_SEAL_SEAL alone, is not sealed, and
// no segment with a key is: Create, Read and ReadWrite with RequireSealed
// fail, leaving nothing. Every refusal is ErrNotSealed, naming the file,
// and maps nothing.
func TestRequireSealed(t *testing.T) {
	keys := checkLeaks(t)
	const (
		seal   = unix.F_SEAL_SEAL
		shrink = unix.F_SEAL_SHRINK
		grow   = unix.F_SEAL_GROW
	)
	key, _ := newSegment(t, keys, 8192)
	named, err := openFile(key, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { named.Close() })
	var got int
	if got, err = unix.FcntlInt(named.Fd(), unix.F_GET_SEALS, 0); err != nil || got != seal {
		t.Fatalf("a file in /dev/shm has seals %#x (%v), want F_SEAL_SEAL alone", got, err)
	}
	anon := newAnonymous(t, 8192)

	for _, c := range []struct {
		name          string
		f             *os.File
		sealed        bool // Sealed()
		read, written bool // taken with RequireSealed
	}{
		{"no seals", sealedMemfd(t, 8192, 0), false, false, false},
		{"F_SEAL_SEAL", sealedMemfd(t, 8192, seal), false, false, false},
		{"F_SEAL_GROW", sealedMemfd(t, 8192, grow), false, false, false},
		{"F_SEAL_GROW|F_SEAL_SEAL", sealedMemfd(t, 8192, grow|seal), false, false, false},
		{"F_SEAL_SHRINK", sealedMemfd(t, 8192, shrink), true, true, false},
		{"F_SEAL_SHRINK|F_SEAL_GROW", sealedMemfd(t, 8192, shrink|grow), true, true, true},
		{"a file in /dev/shm", named, false, false, false},
		{"CreateAnonymous's", anon.File(), true, true, true},
	} {
		for _, try := range []struct {
			op     string
			mapper func(*os.File, int, ...Option) (*Mapping, error)
			taken  bool
		}{
			{"MapFileReadOnly", MapFileReadOnly, c.read},
			{"MapFile", MapFile, c.written},
		} {
			what := try.op + " of " + c.name
			m, err := try.mapper(c.f, 0)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if m.Sealed() != c.sealed {
				t.Errorf("%s: Sealed() is %v, want %v", what, m.Sealed(), c.sealed)
			}
			m.Close()
			m, err = try.mapper(c.f, 0, Populate(), RequireSealed())
			if m != nil {
				if !m.Sealed() {
					t.Errorf("%s with RequireSealed: Sealed() is false", what)
				}
				m.Close()
			}
			if try.taken {
				if err != nil {
					t.Errorf("%s with RequireSealed: %v", what, err)
				}
				continue
			}
			isPathError(t, what+" with RequireSealed", err, c.f.Name(), ErrNotSealed)
		}
	}

	for _, try := range []struct {
		op string
		do func() error
	}{
		{"Read", func() error { _, err := Read(key, 0, RequireSealed()); return err }},
		{"ReadWrite", func() error { _, err := ReadWrite(key, 0, RequireSealed()); return err }},
	} {
		isPathError(t, try.op+" with RequireSealed", try.do(), key, ErrNotSealed)
	}
	k, data, err := Create(4096, RequireSealed())
	if k != "" || data != nil {
		keys.add(k)
		Release(k)
		t.Errorf("Create with RequireSealed made %q", k)
	}
	var pe *fs.PathError
	if !errors.Is(err, ErrNotSealed) || !errors.As(err, &pe) {
		t.Errorf("Create with RequireSealed: %v, want an *fs.PathError wrapping ErrNotSealed", err)
	}
}

// TestFaultRecoverable: what the docs promise of a peer that truncates an
// unsealed segment under a mapping. An access past the new end faults,
// which kills the process unless debug.SetPanicOnFault is set; with it,
// the fault is a panic that recover takes, a runtime.Error with the
// address. RequireSealed refuses such a file before it is mapped.
func TestFaultRecoverable(t *testing.T) {
	checkLeaks(t)
	f := sealedMemfd(t, 8192, 0)
	m, err := MapFileReadOnly(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if refused, err := MapFileReadOnly(f, 0, RequireSealed()); !errors.Is(err, ErrNotSealed) {
		refused.Close()
		t.Errorf("MapFileReadOnly of an unsealed memfd with RequireSealed: %v, want ErrNotSealed", err)
	}
	if err := f.Truncate(4096); err != nil { // the peer
		t.Fatal(err)
	}
	data := m.Bytes()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var last byte
	err = func() (err error) {
		defer func() {
			if e, ok := recover().(runtime.Error); ok {
				err = e
			}
		}()
		last = data[4095] // still there
		last += data[4096]
		return nil
	}()
	if err == nil {
		t.Fatal("a read past the end of a truncated segment did not fault")
	}
	if a, ok := err.(interface{ Addr() uintptr }); !ok || a.Addr() != uintptr(unsafe.Pointer(&data[4096])) {
		t.Fatalf("fault %v, want one at the first byte past the new end", err)
	}
	t.Logf("recovered: %v (byte before it: %d)", err, last)
}

// TestOPathFile: an O_PATH descriptor of a segment, which a peer can send
// (SCM_RIGHTS takes it) and ReceiveSegment takes as a segment's, can be
// neither read nor written through: MapFileReadOnly and MapFile refuse it
// with fs.ErrPermission, as they refuse a file opened without the access
// they need, RequireSealed or not (its seals cannot be read through it).
func TestOPathFile(t *testing.T) {
	checkLeaks(t)
	m := newAnonymous(t, 4096)
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", m.File().Fd()), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	opath := os.NewFile(uintptr(fd), "O_PATH")
	t.Cleanup(func() { opath.Close() })

	raw, ours := socketPairFiles(t)
	if err := unix.Sendmsg(int(raw.Fd()), []byte{0}, unix.UnixRights(fd), nil, 0); err != nil {
		t.Fatal(err)
	}
	received, err := ReceiveSegment(fileConn(t, ours))
	if err != nil {
		t.Fatalf("ReceiveSegment of an O_PATH descriptor: %v", err)
	}
	t.Cleanup(func() { received.Close() })

	for _, f := range []*os.File{opath, received} {
		for _, try := range []struct {
			op     string
			mapper func(*os.File, int, ...Option) (*Mapping, error)
		}{
			{"MapFileReadOnly", MapFileReadOnly},
			{"MapFile", MapFile},
		} {
			for _, opts := range [][]Option{nil, {RequireSealed()}} {
				got, err := try.mapper(f, 0, opts...)
				if got != nil {
					got.Close()
				}
				isPathError(t, fmt.Sprintf("%s of %s with %d options", try.op, f.Name(), len(opts)), err, f.Name(), fs.ErrPermission)
			}
		}
	}
}

// TestReceiveSegmentEmptyMessage: an empty message, which a datagram or
// SOCK_SEQPACKET socket carries, is ErrBadMessage, as an *net.OpError,
// and not io.EOF, so that no peer can end a receiver's loop with it while
// the connection stays open; the next message is received as ever. On a
// SOCK_SEQPACKET socket, nothing is the end once the other end has closed,
// an empty message sent just before included; a datagram socket has no
// end, and ReceiveSegment waits on it for the next message. (A stream
// socket's end: TestReceiveSegmentBadMessages.)
func TestReceiveSegmentEmptyMessage(t *testing.T) {
	checkLeaks(t)
	seg := int(newAnonymous(t, 4096).File().Fd())
	for _, c := range []struct {
		name string
		typ  int
	}{
		{"SOCK_DGRAM", unix.SOCK_DGRAM},
		{"SOCK_SEQPACKET", unix.SOCK_SEQPACKET},
	} {
		raw, ours := socketPairOf(t, c.typ)
		conn := fileConn(t, ours)
		send := func(p []byte, fds ...int) {
			t.Helper()
			var oob []byte
			if len(fds) > 0 {
				oob = unix.UnixRights(fds...)
			}
			if err := unix.Sendmsg(int(raw.Fd()), p, oob, nil, 0); err != nil {
				t.Fatal(err)
			}
		}

		send(nil)
		f, err := ReceiveSegment(conn)
		var oe *net.OpError
		if f != nil || !errors.Is(err, ErrBadMessage) || !errors.As(err, &oe) {
			t.Errorf("%s: ReceiveSegment of an empty message: %v, %v; want an *net.OpError wrapping ErrBadMessage", c.name, f, err)
		}
		send([]byte{0}, seg)
		f, err = ReceiveSegment(conn)
		if err != nil {
			t.Fatalf("%s: ReceiveSegment after an empty message: %v", c.name, err)
		}
		f.Close()

		if c.typ == unix.SOCK_DGRAM {
			raw.Close()
			conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := ReceiveSegment(conn); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("%s: ReceiveSegment once the other end is closed: %v, want to wait until the deadline", c.name, err)
			}
			continue
		}
		send(nil)
		raw.Close()
		for range 2 {
			if f, err := ReceiveSegment(conn); f != nil || err != io.EOF {
				t.Errorf("%s: ReceiveSegment at the end: %v, %v; want io.EOF", c.name, f, err)
			}
		}
	}
}
