//go:build linux

package shmmap

// Anonymous segments on Linux, against each hazard of named ones:
//
//   - a crashed creator leaves a name: TestAnonymousCreatorKilled (no name
//     ever, and the memory goes with the last holder);
//   - /dev/shm's size caps every segment: TestFullShm (64 MiB anonymous
//     while /dev/shm is a 1 MiB tmpfs, where Create fails);
//   - another process may shrink a segment under a mapping:
//     TestAnonymousPeerTruncate (its ftruncate is EPERM).

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

func init() {
	registerHelper("anon-child", helperAnonChild)
	registerHelper("anon-truncate", helperAnonTruncate)
	registerHelper("anon-creator", helperAnonCreator)
	registerHelper("anon-no-memfd", helperAnonNoMemfd)
}

// sumMod251 is the sum of fill's bytes over n bytes.
func sumMod251(n int) int {
	sum := 0
	for i := range n {
		sum += i % 251
	}
	return sum
}

// helperAnonChild: maps fd 3, inherited through ExtraFiles, read-write,
// prints the sum of its bytes, its length and whether it is sealed, writes
// 100 at index 0, unmaps it, and prints every fd and mapping of shared
// memory it has left (helperFDs): fd 3 alone, which stays its own.
func helperAnonChild(args ...string) error {
	seg, err := MapFile(os.NewFile(3, "segment"), 0)
	if err != nil {
		return err
	}
	sum := 0
	for _, b := range seg.Bytes() {
		sum += int(b)
	}
	fmt.Println(sum, len(seg.Bytes()), seg.Sealed())
	seg.Bytes()[0] = 100
	if err := seg.Close(); err != nil {
		return err
	}
	return helperFDs()
}

// TestAnonymousExtraFiles hands a segment to a child through os/exec's
// ExtraFiles: the child maps fd 3, sees the parent's bytes, and the parent
// sees its write. The child inherits that segment and nothing else: not
// the mapping, and not the fd of another anonymous segment (close-on-exec);
// its Close unmaps and leaves fd 3, which is not its to close.
func TestAnonymousExtraFiles(t *testing.T) {
	checkLeaks(t)
	const size = 1 << 20
	m := newAnonymous(t, size)
	newAnonymous(t, 4096) // not handed over: the child must not have it
	fill(m.Bytes())
	cmd := helperCommand(t, "anon-child")
	cmd.ExtraFiles = []*os.File{m.File()}
	out, _ := runPeer(t, cmd)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if want := fmt.Sprintf("%d %d true", sumMod251(size), size); lines[0] != want {
		t.Errorf("the child printed %q, want %q", lines[0], want)
	}
	if m.Bytes()[0] != 100 {
		t.Errorf("the child's write is not seen: byte 0 is %d", m.Bytes()[0])
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "fd 3 -> /memfd:shmmap ") {
		t.Errorf("the child holds, of shared memory:\n%s\nwant fd 3 alone", strings.Join(lines[1:], "\n"))
	}
}

// helperAnonTruncate: tries to change the size of fd 3, inherited through
// ExtraFiles, every way there is, and to seal it against writing, and
// prints each error.
func helperAnonTruncate(args ...string) error {
	size, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return err
	}
	fmt.Println("shrink:", unix.Ftruncate(3, size/2))
	fmt.Println("shrink to 0:", unix.Ftruncate(3, 0))
	fmt.Println("grow:", unix.Ftruncate(3, size*2))
	fmt.Println("fallocate:", unix.Fallocate(3, 0, 0, size*2))
	_, err = unix.FcntlInt(3, unix.F_ADD_SEALS, unix.F_SEAL_WRITE)
	fmt.Println("seal writes:", err)
	return nil
}

// TestAnonymousPeerTruncate: a process that is handed a sealed segment
// cannot change its size (EPERM), so the creator's mapping can never fault
// for it; for a named segment, TestTruncatedByAnother shows that it can.
func TestAnonymousPeerTruncate(t *testing.T) {
	checkLeaks(t)
	const size = 1 << 20
	m := newAnonymous(t, size)
	fill(m.Bytes())
	cmd := helperCommand(t, "anon-truncate", strconv.Itoa(size))
	cmd.ExtraFiles = []*os.File{m.File()}
	out, _ := runPeer(t, cmd)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(line, ": operation not permitted") {
			t.Errorf("the peer: %q, want EPERM", line)
		}
	}
	fi, err := m.File().Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != size {
		t.Errorf("after the peer's tries the segment has %d bytes, want %d", fi.Size(), size)
	}
	if err := check(m.Bytes()); err != nil { // every page still there
		t.Error(err)
	}
}

// TestAnonymousSealed: CreateAnonymous's segment carries exactly the seals
// the doc promises, and its size cannot change in this process either.
func TestAnonymousSealed(t *testing.T) {
	checkLeaks(t)
	m := newAnonymous(t, 8192)
	if !m.Sealed() {
		t.Fatal("Sealed() is false")
	}
	fd := int(m.File().Fd())
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL; seals&^unix.F_SEAL_EXEC != want {
		t.Errorf("seals %#x, want %#x (and F_SEAL_EXEC where the kernel has it)", seals, want)
	}
	for _, n := range []int64{0, 4096, 16384} {
		if err := unix.Ftruncate(fd, n); err != unix.EPERM {
			t.Errorf("ftruncate to %d: %v, want EPERM", n, err)
		}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); err != unix.EPERM {
		t.Errorf("F_ADD_SEALS F_SEAL_WRITE: %v, want EPERM", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 0 || st.Mode&0o777 != 0o600 {
		t.Errorf("the segment's file: %d links, mode %#o; want 0 (no name anywhere), 0600", st.Nlink, st.Mode&0o777)
	}
}

// helperAnonCreator SIZE: makes an anonymous segment of SIZE bytes, fills
// it, sends its file over the socket at fd 3, prints "sent", and waits to
// be killed.
func helperAnonCreator(args ...string) error {
	size, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	c, err := net.FileConn(os.NewFile(3, "socket"))
	if err != nil {
		return err
	}
	m, err := CreateAnonymous(size)
	if err != nil {
		return err
	}
	fill(m.Bytes())
	if err := SendSegment(c.(*net.UnixConn), m.File()); err != nil {
		return err
	}
	fmt.Println("sent")
	waitStdinClosed()
	return m.Close()
}

// shmemBytes returns Shmem of /proc/meminfo: the shared memory of the whole
// machine, memfds included.
func shmemBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "Shmem:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no Shmem in /proc/meminfo")
	return 0
}

// TestAnonymousCreatorKilled: the creator of an anonymous segment hands it
// over and is killed with SIGKILL. No name was ever made (the file has no
// link, before and after), the survivor's mapping keeps the memory and its
// bytes, and once the survivor closes the last mapping the memory is
// freed: nothing to sweep, unlike a named segment (TestSweep*).
//
// Freed is read from the machine's Shmem, which other processes on a
// shared machine move too: the segment is 64 MiB, the drop across Close
// must be three quarters of it, and the whole run is tried up to three
// times, so that another process freeing as much at the same moment is
// needed to fail it three times over, while a segment that is not freed
// fails every time.
func TestAnonymousCreatorKilled(t *testing.T) {
	checkLeaks(t)
	const size = 64 << 20
	for trial := 1; ; trial++ {
		drop := creatorKilled(t, size)
		if drop >= size*3/4 {
			return
		}
		if trial == 3 {
			t.Fatalf("Shmem fell by %d bytes across the Close of the last mapping of a %d-byte segment, want at least %d, in each of 3 tries", drop, size, size*3/4)
		}
		t.Logf("try %d: Shmem fell by %d bytes across Close; trying again", trial, drop)
	}
}

// creatorKilled runs one try of TestAnonymousCreatorKilled and returns how
// much Shmem fell across the last Close.
func creatorKilled(t *testing.T, size int) (drop int64) {
	t.Helper()
	ours, theirs := socketPairFiles(t)
	conn := fileConn(t, ours)
	cmd := helperCommand(t, "anon-creator", strconv.Itoa(size))
	cmd.ExtraFiles = []*os.File{theirs}
	_, stdout, wait := startCommand(t, cmd)
	if line := readLine(t, stdout); line != "sent" {
		t.Fatalf("the creator printed %q", line)
	}
	f, err := ReceiveSegment(conn)
	if err != nil {
		t.Fatal(err)
	}
	noName := func(when string) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		if st.Nlink != 0 {
			t.Errorf("%s: the segment has %d links, want none: no name anywhere", when, st.Nlink)
		}
	}
	noName("while the creator lives")
	m, err := MapFile(f, 0)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the creator: %v, want killed", err)
	}
	noName("after the creator's death")
	if err := f.Close(); err != nil { // the mapping is now the last reference
		t.Fatal(err)
	}
	if err := check(m.Bytes()); err != nil {
		t.Fatalf("after the creator's death: %v", err)
	}
	m.Bytes()[size-1] = 1 // and writable
	before := shmemBytes(t)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return before - shmemBytes(t)
}

// TestAnonymousBadFiles: what MapFileReadOnly, MapFile and SendSegment make of
// what a careless caller would pass: a nil or closed file, things that are
// not segments (a regular file on disk, a pipe, a directory, a socket, a
// device), an empty segment, a file opened read-only, a segment sealed
// against writing. Each is an *fs.PathError naming the file and wrapping
// the sentinel; nothing is mapped (checkLeaks).
func TestAnonymousBadFiles(t *testing.T) {
	checkLeaks(t)
	open := func(path string, flag int) *os.File {
		t.Helper()
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}

	closed := open(os.DevNull, os.O_RDONLY)
	closed.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	sock, _ := socketPairFiles(t)
	m := newAnonymous(t, 4096)
	readOnly := open(fmt.Sprintf("/proc/self/fd/%d", m.File().Fd()), os.O_RDONLY)

	type bad struct {
		name     string
		f        *os.File
		read     error // of MapFileReadOnly(f, 0); nil if it works
		write    error // of MapFile(f, 0)
		sendable bool
	}
	cases := []bad{
		{"nil", nil, fs.ErrInvalid, fs.ErrInvalid, false},
		{"closed", closed, fs.ErrClosed, fs.ErrClosed, false},
		{"pipe", r, ErrNotSegment, ErrNotSegment, false},
		{"directory", open(t.TempDir(), os.O_RDONLY), ErrNotSegment, ErrNotSegment, false},
		{"socket", sock, ErrNotSegment, ErrNotSegment, false},
		{"device", open(os.DevNull, os.O_RDWR), ErrNotSegment, ErrNotSegment, false},
		{"empty segment", sealedMemfd(t, 0, 0), ErrInvalidSize, ErrInvalidSize, true},
		{"read-only", readOnly, nil, fs.ErrPermission, true},
		{"sealed against writes", sealedMemfd(t, 4096, unix.F_SEAL_WRITE), nil, fs.ErrPermission, true},
	}
	disk := t.TempDir() + "/file"
	if err := os.WriteFile(disk, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(disk, &sfs); err != nil {
		t.Fatal(err)
	}
	if uint32(sfs.Type) != unix.TMPFS_MAGIC {
		cases = append(cases, bad{"regular file on disk", open(disk, os.O_RDWR), ErrNotSegment, ErrNotSegment, false})
	} else {
		t.Logf("%s is on a tmpfs: no regular file on disk to try", disk)
	}

	a, _ := socketPair(t)
	for _, c := range cases {
		for _, try := range []struct {
			op   string
			want error
			do   func() (*Mapping, error)
		}{
			{"MapFileReadOnly", c.read, func() (*Mapping, error) { return MapFileReadOnly(c.f, 0) }},
			{"MapFile", c.write, func() (*Mapping, error) { return MapFile(c.f, 0) }},
		} {
			m, err := try.do()
			if m != nil {
				m.Close()
			}
			what := try.op + " of " + c.name
			if try.want == nil {
				if err != nil {
					t.Errorf("%s: %v", what, err)
				}
				continue
			}
			isPathError(t, what, err, fileName(c.f), try.want)
		}
		err := SendSegment(a, c.f)
		if c.sendable {
			if err != nil {
				t.Errorf("SendSegment of %s: %v", c.name, err)
			}
			continue
		}
		isPathError(t, "SendSegment of "+c.name, err, fileName(c.f), c.read)
	}
}

// countFDs returns how many fds this process has open.
func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // ReadDir's own
}

// TestReceiveSegmentBadMessages: what ReceiveSegment makes of what a careless or
// hostile peer sends: data alone, several fds, more fds than it has room
// for, a fd that is not a segment; then the end of the connection, a
// deadline and a closed connection. No fd that came is left open.
func TestReceiveSegmentBadMessages(t *testing.T) {
	checkLeaks(t)
	raw, ours := socketPairFiles(t)
	conn := fileConn(t, ours)
	send := func(fds ...int) {
		t.Helper()
		var oob []byte
		if len(fds) > 0 {
			oob = unix.UnixRights(fds...)
		}
		if err := unix.Sendmsg(int(raw.Fd()), []byte{'x'}, oob, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	seg := int(newAnonymous(t, 4096).File().Fd())
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() })
	disk, err := os.Open("go.mod") // a regular file on disk, if the source tree is
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })

	many := make([]int, 40)
	for i := range many {
		many[i] = seg
	}
	for _, c := range []struct {
		name string
		fds  []int
		want error
		path bool // an *fs.PathError, not an *net.OpError
	}{
		{"data alone", nil, ErrBadMessage, false},
		{"two fds", []int{seg, seg}, ErrBadMessage, false},
		{"40 fds", many, ErrBadMessage, false},
		{"a pipe", []int{int(pr.Fd())}, ErrNotSegment, true},
		{"a directory", []int{int(openDir(t).Fd())}, ErrNotSegment, true},
		{"a segment", []int{seg}, nil, false},
	} {
		send(c.fds...)
		before := countFDs(t)
		f, err := ReceiveSegment(conn)
		if c.want == nil {
			if err != nil {
				t.Fatalf("ReceiveSegment of %s: %v", c.name, err)
			}
			f.Close()
			continue
		}
		if f != nil {
			f.Close()
			t.Errorf("ReceiveSegment of %s returned a file", c.name)
		}
		if after := countFDs(t); after != before {
			t.Errorf("ReceiveSegment of %s: %d fds before, %d after", c.name, before, after)
		}
		var pe *fs.PathError
		var oe *net.OpError
		switch {
		case !errors.Is(err, c.want):
			t.Errorf("ReceiveSegment of %s: %v, want %v", c.name, err, c.want)
		case c.path && !errors.As(err, &pe):
			t.Errorf("ReceiveSegment of %s: %#v, want an *fs.PathError", c.name, err)
		case !c.path && !errors.As(err, &oe):
			t.Errorf("ReceiveSegment of %s: %#v, want an *net.OpError", c.name, err)
		}
	}
	var sfs unix.Statfs_t
	if unix.Fstatfs(int(disk.Fd()), &sfs) == nil && uint32(sfs.Type) != unix.TMPFS_MAGIC {
		send(int(disk.Fd()))
		before := countFDs(t)
		if _, err := ReceiveSegment(conn); !errors.Is(err, ErrNotSegment) {
			t.Errorf("ReceiveSegment of a regular file on disk: %v, want ErrNotSegment", err)
		}
		if after := countFDs(t); after != before {
			t.Errorf("ReceiveSegment of a regular file on disk: %d fds before, %d after", before, after)
		}
	}

	conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := ReceiveSegment(conn); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReceiveSegment past its deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	conn.SetReadDeadline(time.Time{})
	raw.Close()
	if _, err := ReceiveSegment(conn); err != io.EOF {
		t.Errorf("ReceiveSegment once the other end is closed: %v, want io.EOF", err)
	}
	conn.Close()
	if _, err := ReceiveSegment(conn); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReceiveSegment on a closed connection: %v, want net.ErrClosed", err)
	}
	if _, err := ReceiveSegment(nil); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReceiveSegment(nil): %v, want fs.ErrInvalid", err)
	}
	if err := SendSegment(nil, nil); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("SendSegment(nil, nil): %v, want fs.ErrInvalid", err)
	}
}

// openDir opens a directory of t's, closed in cleanup.
func openDir(t *testing.T) *os.File {
	t.Helper()
	d, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// fakeMemfd makes memfdCreate fn until t ends, and starts from a process
// that has not yet tried MFD_NOEXEC_SEAL: each caller is a phase of its
// own, which no earlier phase's memory can pass for it.
func fakeMemfd(t *testing.T, fn func(flags int) (int, error)) {
	t.Helper()
	orig, origNoexec := shm.MemfdCreate, shm.NoNoexecSeal.Load()
	t.Cleanup(func() { shm.MemfdCreate = orig; shm.NoNoexecSeal.Store(origNoexec) })
	shm.MemfdCreate = fn
	shm.NoNoexecSeal.Store(false)
}

// TestAnonymousFallbacks: where memfd_create refuses MFD_NOEXEC_SEAL
// (before Linux 6.3) the segment is made without it, and where there is no
// memfd_create at all, it is an unnamed O_TMPFILE in /dev/shm, unsealed.
// Other errors of memfd_create are CreateAnonymous's. Each phase starts
// afresh; TestAnonymousWithoutMemfd has the fallback in a process where
// the kernel itself refuses memfd_create.
func TestAnonymousFallbacks(t *testing.T) {
	checkLeaks(t)
	orig := shm.MemfdCreate

	t.Run("EINVAL for MFD_NOEXEC_SEAL", func(t *testing.T) {
		var calls []int
		fakeMemfd(t, func(flags int) (int, error) {
			calls = append(calls, flags)
			if flags&unix.MFD_NOEXEC_SEAL != 0 {
				return -1, unix.EINVAL
			}
			return orig(flags)
		})
		m := newAnonymous(t, 4096)
		if !m.Sealed() || !shm.NoNoexecSeal.Load() {
			t.Errorf("without MFD_NOEXEC_SEAL: sealed %v, remembered %v; want both", m.Sealed(), shm.NoNoexecSeal.Load())
		}
		newAnonymous(t, 4096)
		if len(calls) != 3 || calls[2]&unix.MFD_NOEXEC_SEAL != 0 {
			t.Errorf("memfd_create's flags: %#x, want MFD_NOEXEC_SEAL tried once, then not again", calls)
		}
	})

	t.Run("ENOSYS", func(t *testing.T) {
		if shm.NoTmpfile.Load() {
			t.Skip("/dev/shm has no O_TMPFILE here: there is no fallback")
		}
		fakeMemfd(t, func(int) (int, error) { return -1, unix.ENOSYS })
		const size = 1 << 20
		m := newAnonymous(t, size)
		checkTmpfile(t, m, size)
		m, err := CreateAnonymous(size, RequireSealed())
		if m != nil {
			m.Close()
			t.Error("without memfd_create, CreateAnonymous with RequireSealed made an unsealed segment")
		}
		isPathError(t, "CreateAnonymous with RequireSealed", err, shm.AnonTmpfileName, ErrNotSealed)
	})

	t.Run("EMFILE", func(t *testing.T) {
		fakeMemfd(t, func(int) (int, error) { return -1, unix.EMFILE })
		m, err := CreateAnonymous(4096)
		if m != nil {
			m.Close()
		}
		var pe *fs.PathError
		if !errors.Is(err, syscall.EMFILE) || !errors.As(err, &pe) || pe.Op != "memfd_create" || pe.Path != "memfd:shmmap" {
			t.Errorf("memfd_create failing: %v, want a memfd_create *fs.PathError naming memfd:shmmap, wrapping EMFILE", err)
		}
	})
}

// checkTmpfile checks that m is the fallback of a process without
// memfd_create, of size bytes: an unsealed O_TMPFILE with no name, mode
// 0600, which a second mapping of its file sees.
func checkTmpfile(t *testing.T, m *Mapping, size int) {
	t.Helper()
	if m.Sealed() || m.File().Name() != shm.AnonTmpfileName {
		t.Errorf("without memfd_create: sealed %v, named %q; want false, %q", m.Sealed(), m.File().Name(), shm.AnonTmpfileName)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(m.File().Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 0 || st.Size != int64(size) || st.Mode&0o777 != 0o600 {
		t.Errorf("without memfd_create: %d links, %d bytes, mode %#o; want 0, %d, 0600", st.Nlink, st.Size, st.Mode&0o777, size)
	}
	fill(m.Bytes())
	other, err := MapFileReadOnly(m.File(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := check(other.Bytes()); err != nil {
		t.Error(err)
	}
	other.Close()
}

// denySyscall installs a seccomp filter, on every thread of this process
// and for good, that fails system call nr with errno: what a container's
// filter does to a call it does not know.
func denySyscall(nr int, errno unix.Errno) error {
	_, err := filterSyscall(nr, unix.SECCOMP_RET_ERRNO|uint32(errno), unix.SECCOMP_FILTER_FLAG_TSYNC)
	return err
}

// helperAnonNoMemfd: makes memfd_create fail with ENOSYS in this process,
// as a seccomp filter or an old kernel does, then makes an anonymous
// segment of 1 MiB and prints what the test checks of it: Sealed, its
// name, links, size and mode, the sum of a second mapping's bytes, and
// how many names in /dev/shm lead to its file.
func helperAnonNoMemfd(args ...string) error {
	if err := denySyscall(unix.SYS_MEMFD_CREATE, unix.ENOSYS); err != nil {
		return err
	}
	if _, err := unix.MemfdCreate("x", 0); err != unix.ENOSYS {
		return fmt.Errorf("memfd_create under the filter: %v, want ENOSYS", err)
	}
	const size = 1 << 20
	m, err := CreateAnonymous(size)
	if err != nil {
		return err
	}
	defer m.Close()
	fill(m.Bytes())
	other, err := MapFileReadOnly(m.File(), 0)
	if err != nil {
		return err
	}
	defer other.Close()
	sum := 0
	for _, b := range other.Bytes() {
		sum += int(b)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(m.File().Fd()), &st); err != nil {
		return err
	}
	ents, err := os.ReadDir(shm.Dir)
	if err != nil {
		return err
	}
	names := 0
	for _, e := range ents {
		var est unix.Stat_t
		if unix.Lstat(shm.Dir+"/"+e.Name(), &est) == nil && est.Ino == st.Ino && est.Dev == st.Dev {
			names++
		}
	}
	fmt.Printf("sealed %v, %q, %d links, %d bytes, mode %#o, sum %d, %d names\n",
		m.Sealed(), m.File().Name(), st.Nlink, st.Size, st.Mode&0o777, sum, names)
	return nil
}

// TestAnonymousWithoutMemfd: in a process where the kernel refuses
// memfd_create (ENOSYS, here from a seccomp filter, as gVisor, an old
// kernel or a strict container gives it), CreateAnonymous falls back to an
// unnamed O_TMPFILE in /dev/shm: unsealed, with no name in /dev/shm at any
// time, and mapped by others as any segment. The process is fresh: nothing
// that an earlier call in it learnt helps the fallback along.
func TestAnonymousWithoutMemfd(t *testing.T) {
	checkLeaks(t)
	if shm.NoTmpfile.Load() {
		t.Skip("/dev/shm has no O_TMPFILE here: there is no fallback")
	}
	out := runHelper(t, "anon-no-memfd")
	want := fmt.Sprintf("sealed false, %q, 0 links, %d bytes, mode 0600, sum %d, 0 names\n", shm.AnonTmpfileName, 1<<20, sumMod251(1<<20))
	if out != want {
		t.Errorf("the helper without memfd_create printed\n%s\nwant\n%s", out, want)
	}
}

// TestAnonymousFailureLeavesNothing: a CreateAnonymous whose reservation
// fails (a memory limit) returns the error and leaves no fd and no
// mapping; TestEMFILE and TestENOMEM have the failures of memfd_create and
// mmap.
func TestAnonymousFailureLeavesNothing(t *testing.T) {
	checkLeaks(t)
	orig := shm.Fallocate
	t.Cleanup(func() { shm.Fallocate = orig })
	shm.Fallocate = func(fd int, off, n int64) error { return unix.ENOMEM }
	m, err := CreateAnonymous(1 << 20)
	if m != nil {
		m.Close()
	}
	var pe *fs.PathError
	if !errors.Is(err, syscall.ENOMEM) || !errors.As(err, &pe) || pe.Op != "fallocate" || pe.Path != "memfd:shmmap" {
		t.Errorf("CreateAnonymous with fallocate failing: %v, want a fallocate *fs.PathError naming memfd:shmmap, wrapping ENOMEM", err)
	}
}

// TestAnonymousTooBig: a memfd's filesystem has no size, so tmpfs would
// reserve chunk after chunk until the OOM killer came; more than memory
// and swap is refused before any fallocate. fallocate is replaced for the
// test by one that reserves nothing, so that a regression fails the test
// instead of running the machine out of memory.
func TestAnonymousTooBig(t *testing.T) {
	checkLeaks(t)
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	total := (uint64(si.Totalram) + uint64(si.Totalswap)) * uint64(si.Unit)
	if total+1<<30 > shm.MaxSize {
		t.Skipf("memory and swap (%d bytes) are more than a process can map", total)
	}
	orig := shm.Fallocate
	t.Cleanup(func() { shm.Fallocate = orig })
	fallocated := false
	shm.Fallocate = func(fd int, off, n int64) error {
		fallocated = true
		return unix.ENOSPC
	}
	m, err := CreateAnonymous(int(total + 1<<30))
	if m != nil {
		m.Close()
	}
	var pe *fs.PathError
	if !errors.Is(err, syscall.ENOMEM) || !errors.As(err, &pe) || pe.Op != "fallocate" || fallocated {
		t.Errorf("CreateAnonymous of more than memory and swap: %v (fallocate called: %v), want an ENOMEM before any fallocate", err, fallocated)
	}
}
