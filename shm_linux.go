//go:build linux

package shmmap

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux, shm_open(3) is open(2) under /dev/shm, a tmpfs: glibc builds the
// path and adds O_NOFOLLOW|O_CLOEXEC; so do we, without cgo. A name is a
// single file name there (NAME_MAX, 255 bytes) after the leading slash.
const (
	shmDir    = "/dev/shm"
	maxKeyLen = 1 + 255
)

// mapPopulate is the mmap flag of the Populate option.
const mapPopulate = unix.MAP_POPULATE

// holdsName: Create's process keeps the segment's fd, with the creator's
// lock on it (live_linux.go), for as long as it owns the name.
const holdsName = true

// Raw syscalls. unix.Syscall tells the scheduler that the thread is leaving
// (entersyscall/exitsyscall), so that a call that blocks does not hold up the
// goroutines behind it; on this package's hot path that costs 0.1 to 0.4 µs a
// call, 10 to 20% of the call itself (BENCHMARKS.md). unix.RawSyscall skips
// it, and is used where the kernel's work is short and bounded whatever the
// size and whatever another user put in /dev/shm: open (always O_NONBLOCK:
// see shmOpen), link and unlink of a name in a tmpfs directory, fchmod,
// fstat, close of an fd whose file a mapping still holds, mmap without
// MAP_POPULATE, and munmap or the last unlink of at most rawLimit bytes.
// fallocate, and mmap with MAP_POPULATE, zero or map every page, and munmap
// and the final unlink free every page, so they go through unix.Syscall past
// rawLimit: a multi-GiB call must not keep its P (and a GC stop) waiting.
const rawLimit = 1 << 20

// atFDCWD is AT_FDCWD, a variable so that uintptr(atFDCWD) converts the
// negative int at run time; the paths are absolute anyway.
var atFDCWD = unix.AT_FDCWD

// shmPath holds "/dev/shm<name>\x00" on the caller's stack, so that no call
// allocates.
type shmPath [len(shmDir) + maxKeyLen + 1]byte

func (p *shmPath) ptr(name string) uintptr {
	n := copy(p[:], shmDir)
	n += copy(p[n:], name)
	p[n] = 0
	return uintptr(unsafe.Pointer(&p[0]))
}

// openFlags are added to every open: O_NOFOLLOW keeps a symlink planted in
// /dev/shm from redirecting it (normalize has already kept the name to one
// component); O_NONBLOCK keeps a FIFO planted under a key from blocking it
// (a raw open that blocked would hold its P, and the next garbage
// collection would wait for it for ever); O_LARGEFILE lets a 32-bit process
// open a segment of 2 GiB or more (it is 0 on 64-bit systems, where the
// kernel implies it), as glibc's shm_open does.
const openFlags = unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_LARGEFILE

// shmOpen opens segment name (canonical form, "/..."), close-on-exec. It
// cannot block: O_NONBLOCK makes the open of a FIFO return at once, a
// socket is ENXIO, and a regular file or directory in a tmpfs opens without
// waiting. (A device node, which only root can put there, is opened by its
// driver; root's files are trusted.)
func shmOpen(name string, flag int, mode uint32) (int, error) {
	var p shmPath
	for {
		fd, _, errno := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(atFDCWD), p.ptr(name),
			uintptr(flag|openFlags), uintptr(mode), 0, 0)
		switch errno {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		}
		return -1, errno
	}
}

// noTmpfile is set once an O_TMPFILE open fails for want of support (a
// kernel before 3.11, or a /dev/shm that is not a tmpfs).
var noTmpfile atomic.Bool

// openNew opens a new segment for Create, with mode 0 until the creator's
// lock is taken (initSegment gives it 0600). Normally the file has no name
// yet (O_TMPFILE: named is false), and linkName gives it one once it is
// locked, sized and mapped. Where /dev/shm has no O_TMPFILE, it is made
// under name with O_EXCL (named is true); with mode 0, Sweep leaves it alone
// until initSegment has run, which is after the lock.
func openNew(name string) (fd int, named bool, err error) {
	if !noTmpfile.Load() {
		fd, err := shmOpen("", unix.O_TMPFILE|unix.O_RDWR, 0)
		switch err {
		case nil:
			return fd, false, nil
		case unix.EOPNOTSUPP, unix.EISDIR, unix.EINVAL:
			// Kernels before 3.11 take O_TMPFILE for O_DIRECTORY: EISDIR.
			noTmpfile.Store(true)
		default:
			return -1, false, err
		}
	}
	fd, err = shmOpen(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0)
	return fd, true, err
}

// noEmptyPathLink is set once linkat with AT_EMPTY_PATH is refused: before
// Linux 6.10 it needs CAP_DAC_READ_SEARCH.
var noEmptyPathLink atomic.Bool

// linkName gives the unnamed file fd (from openNew) the name name; EEXIST if
// the name is taken. linkat(2) with AT_EMPTY_PATH links fd itself; where
// that is refused (ENOENT), the same file is reached through
// /proc/self/fd/N with AT_SYMLINK_FOLLOW, as linkat(2) describes.
func linkName(fd int, name string) error {
	var p shmPath
	if !noEmptyPathLink.Load() {
		var empty byte
		_, _, errno := unix.RawSyscall6(unix.SYS_LINKAT, uintptr(fd), uintptr(unsafe.Pointer(&empty)),
			uintptr(atFDCWD), p.ptr(name), unix.AT_EMPTY_PATH, 0)
		if errno != unix.ENOENT {
			if errno == 0 {
				return nil
			}
			return errno
		}
		noEmptyPathLink.Store(true)
	}
	var proc [32]byte
	n := copy(proc[:], "/proc/self/fd/")
	n += len(strconv.AppendInt(proc[n:n], int64(fd), 10))
	proc[n] = 0
	_, _, errno := unix.RawSyscall6(unix.SYS_LINKAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&proc[0])),
		uintptr(atFDCWD), p.ptr(name), unix.AT_SYMLINK_FOLLOW, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// shmUnlink removes segment name, as shm_unlink(3) does. size is the
// segment's size if known, else -1: removing the last reference to a large
// segment frees its pages, which is not a raw call's work.
func shmUnlink(name string, size int) error {
	var p shmPath
	call := unix.Syscall
	if 0 <= size && size <= rawLimit {
		call = unix.RawSyscall
	}
	if _, _, errno := call(unix.SYS_UNLINKAT, uintptr(atFDCWD), p.ptr(name), 0); errno != 0 {
		return errno
	}
	return nil
}

// closeFD and munmap: see "Raw syscalls" above; fstat and mmapFD are in
// raw_linux.go or, on architectures where they differ, xsys.go.

func closeFD(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

func munmap(b []byte) error {
	call := unix.RawSyscall
	if len(b) > rawLimit {
		call = unix.Syscall
	}
	if _, _, errno := call(unix.SYS_MUNMAP, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0); errno != 0 {
		return errno
	}
	return nil
}

// isSegment reports whether st describes a segment: a regular file in
// /dev/shm. Anyone may put a FIFO, socket or directory there under a name.
func isSegment(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFREG }

// notSegment tells, after an open of name failed with err, whether that is
// because something other than a segment stands under the name, and what:
// a symlink (ELOOP, from O_NOFOLLOW), a socket (ENXIO) or a directory
// opened for writing (EISDIR). It returns "" otherwise.
func notSegment(name string, err error) string {
	if err != unix.ELOOP && err != unix.ENXIO && err != unix.EISDIR {
		return ""
	}
	var st unix.Stat_t
	if unix.Lstat(shmDir+name, &st) != nil || isSegment(&st) {
		return ""
	}
	return fileKind(st.Mode)
}

// reserveChunk bounds one fallocate call. tmpfs gives up a fallocate that a
// signal interrupts and frees what it had allocated, and Go's runtime signals
// its threads often, so a multi-GiB fallocate in one call could be retried
// forever; in chunks, each retry repeats at most one chunk.
const reserveChunk = 1 << 30

// initSegment gives a new, locked segment its mode and size. fchmod makes
// the mode 0600 whatever the umask. fallocate(2) with mode 0 both sets the
// size and reserves the pages, so no ftruncate is needed: a full /dev/shm is
// ENOSPC here and not a SIGBUS at first write. Where the filesystem has no
// fallocate (EOPNOTSUPP; ENODEV for some special files; ENOSYS under some
// seccomp filters), ftruncate(2) alone sets the size. Offsets are int64, so
// that a 32-bit process reserves past 2 GiB. It returns the failing
// operation's name with the error.
func initSegment(fd, size int) (op string, err error) {
	if _, _, errno := unix.RawSyscall(unix.SYS_FCHMOD, uintptr(fd), 0o600, 0); errno != 0 {
		return "fchmod", errno
	}
	if size > reserveChunk {
		// tmpfs refuses a single fallocate larger than the filesystem at
		// once, but each chunk passes that check, and where /dev/shm is as
		// large as memory (the default: half of RAM, or all of it) the
		// chunks would run the machine out of memory before ENOSPC. So
		// refuse what cannot fit now, as one call would.
		var st unix.Statfs_t
		if err := unix.Fstatfs(fd, &st); err != nil {
			return "fstatfs", err
		}
		if st.Blocks != 0 && uint64(size) > uint64(st.Bavail)*uint64(st.Bsize) {
			return "fallocate", unix.ENOSPC
		}
	}
	for off := int64(0); off < int64(size); off += reserveChunk {
		n := min(int64(size)-off, reserveChunk)
		err := ignoringEINTR(func() error { return fallocate(fd, off, n) })
		switch {
		case err == nil:
		case off == 0 && (err == unix.EOPNOTSUPP || err == unix.ENODEV || err == unix.ENOSYS):
			return "ftruncate", ignoringEINTR(func() error { return unix.Ftruncate(fd, int64(size)) })
		default:
			return "fallocate", err
		}
	}
	return "", nil
}

// fallocate reserves n bytes of fd at off (mode 0), raw when n is at most
// rawLimit on a 64-bit system, where each argument is one register. It is a
// variable so that tests can make it fail.
var fallocate = func(fd int, off, n int64) error {
	if strconv.IntSize == 64 && n <= rawLimit {
		if _, _, errno := unix.RawSyscall6(unix.SYS_FALLOCATE, uintptr(fd), 0, uintptr(off), uintptr(n), 0, 0); errno != 0 {
			return errno
		}
		return nil
	}
	return unix.Fallocate(fd, 0, off, n)
}

// explainENOMEM returns ENOMEM from mmap with what ran out: the process'
// count of mappings (vm.max_map_count), or else its address space. A
// process at its map count is one mapping away from a fatal error in the
// runtime, which maps memory for a new span or for the poller's record of
// an fd that os.Open makes: so /proc is read with plain syscalls into a
// buffer on the stack.
func explainENOMEM(size int) error {
	var buf [4096]byte
	limit, count := -1, 0
	readProc("/proc/sys/vm/max_map_count", buf[:], func(b []byte) {
		limit = 0
		for _, c := range b {
			if '0' <= c && c <= '9' {
				limit = limit*10 + int(c-'0')
			}
		}
	})
	readProc("/proc/self/maps", buf[:], func(b []byte) { count += bytes.Count(b, []byte{'\n'}) })
	if limit > 0 && count+2 >= limit {
		return fmt.Errorf("%w: this process has %d mappings, at the limit vm.max_map_count = %d (release segments, or raise the limit)", unix.ENOMEM, count, limit)
	}
	return fmt.Errorf("%w: no room for %d bytes in this process' address space", unix.ENOMEM, size)
}

// readProc reads the file at path through buf, handing each part to use.
func readProc(path string, buf []byte, use func([]byte)) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			return
		}
		use(buf[:n])
	}
}

// listNames returns the names in /dev/shm that are valid keys, in canonical
// form.
func listNames() ([]string, error) {
	ents, err := os.ReadDir(shmDir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if _, err := normalize(e.Name()); err == nil {
			names = append(names, "/"+e.Name())
		}
	}
	return names, nil
}

// statSegment describes segment name without opening it; ok is false if it
// is gone or is not a segment (a symlink, a FIFO, a directory).
func statSegment(name string) (s Segment, ok bool) {
	var st unix.Stat_t
	if err := unix.Lstat(shmDir+name, &st); err != nil || !isSegment(&st) {
		return s, false
	}
	return Segment{
		Key:     name,
		Size:    int64(st.Size),
		Mode:    fs.FileMode(st.Mode & 0o777),
		UID:     int(st.Uid),
		Changed: time.Unix(st.Ctim.Unix()),
	}, true
}
