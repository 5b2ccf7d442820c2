//go:build linux

package shmmap

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
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

// Raw syscalls. unix.Syscall tells the scheduler that the thread is leaving
// (entersyscall/exitsyscall), so that a call that blocks does not hold up the
// goroutines behind it; on this package's hot path that costs 0.1 to 0.4 µs a
// call, 10 to 20% of the call itself (BENCHMARKS.md). unix.RawSyscall skips
// it, and is used where the kernel's work is short and bounded whatever the
// size: open and unlink of a name in a tmpfs directory, fchmod, fstat,
// close of an fd whose file a mapping still holds, mmap without
// MAP_POPULATE, and munmap or the last unlink of at most rawLimit bytes.
// fallocate, and mmap with MAP_POPULATE, zero or map every page, and munmap
// and the final unlink free every page, so they go through unix.Syscall past
// rawLimit: a multi-GiB call must not keep its P (and a GC stop) waiting.
const rawLimit = 1 << 20

// atFDCWD is AT_FDCWD, a variable so that uintptr(atFDCWD) converts the
// negative int at run time; the paths are absolute anyway.
var atFDCWD = unix.AT_FDCWD

// shmPath holds "/dev/shm/<name>\x00" on the caller's stack, so that no call
// allocates.
type shmPath [len(shmDir) + maxKeyLen + 1]byte

func (p *shmPath) ptr(name string) uintptr {
	n := copy(p[:], shmDir)
	n += copy(p[n:], name)
	p[n] = 0
	return uintptr(unsafe.Pointer(&p[0]))
}

// shmOpen opens segment name (canonical form, "/..."), close-on-exec.
// O_NOFOLLOW keeps a symlink planted in /dev/shm from redirecting the open;
// normalize has already kept the name to one component.
func shmOpen(name string, flag int, mode uint32) (int, error) {
	var p shmPath
	for {
		fd, _, errno := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(atFDCWD), p.ptr(name),
			uintptr(flag|unix.O_NOFOLLOW|unix.O_CLOEXEC), uintptr(mode), 0, 0)
		switch errno {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		}
		return -1, errno
	}
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

// reserveChunk bounds one fallocate call. tmpfs gives up a fallocate that a
// signal interrupts and frees what it had allocated, and Go's runtime signals
// its threads often, so a multi-GiB fallocate in one call could be retried
// forever; in chunks, each retry repeats at most one chunk.
const reserveChunk = 1 << 30

// initSegment gives a new segment its mode and size. fchmod makes the mode
// 0600 whatever the umask. fallocate(2) with mode 0 both sets the size and
// reserves the pages, so no ftruncate is needed: a full /dev/shm is ENOSPC
// here and not a SIGBUS at first write. Where the filesystem has no
// fallocate (EOPNOTSUPP; ENODEV for some special files; ENOSYS under some
// seccomp filters), ftruncate(2) alone sets the size. It returns the
// failing operation's name with the error.
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
		if st.Blocks != 0 && uint64(size) > st.Bavail*uint64(st.Bsize) {
			return "fallocate", unix.ENOSPC
		}
	}
	for off := 0; off < size; off += reserveChunk {
		n := min(size-off, reserveChunk)
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
// rawLimit on a 64-bit system, where each argument is one register.
func fallocate(fd, off, n int) error {
	if strconv.IntSize == 64 && n <= rawLimit {
		if _, _, errno := unix.RawSyscall6(unix.SYS_FALLOCATE, uintptr(fd), 0, uintptr(off), uintptr(n), 0, 0); errno != 0 {
			return errno
		}
		return nil
	}
	return unix.Fallocate(fd, 0, int64(off), int64(n))
}

// processStart returns the start time of process pid in clock ticks since
// boot, field 22 of /proc/<pid>/stat (proc(5)). Without /proc (some
// sandboxes) it is 0, and Sweep then relies on the pid alone.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, fs.ErrNotExist) && pid == os.Getpid() {
		return 0, nil // no /proc at all
	}
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces and
	// parentheses itself: count fields from the last ')'.
	fields := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:]) // fields[0] is field 3
	if len(fields) < 20 {
		return 0, fmt.Errorf("shmmap: %d fields in /proc/%d/stat", len(fields), pid)
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}

// list reads /dev/shm. A creator is alive if /proc/<pid>/stat exists and
// records the start time that the key does.
func list() ([]Segment, error) {
	ents, err := os.ReadDir(shmDir)
	if err != nil {
		return nil, err
	}
	segs := make([]Segment, 0, len(ents))
	for _, e := range ents {
		key := "/" + e.Name()
		if _, err := normalize(key); err != nil {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(shmDir+key, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue // gone meanwhile, or not a segment (a symlink, a directory)
		}
		s := Segment{
			Key:     key,
			Size:    st.Size,
			Mode:    fs.FileMode(st.Mode & 0o777),
			UID:     int(st.Uid),
			Changed: time.Unix(st.Ctim.Unix()),
		}
		if pid, start, ok := parseKey(key); ok && pid > 0 {
			s.Creator = CreatorGone
			if alive(pid, start) {
				s.Creator = CreatorAlive
			}
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// startModulus: keys hold the start time modulo 62^startDigits.
const startModulus = 62 * 62 * 62 * 62 * 62 * 62

// alive reports whether process pid runs and started at start (clock
// ticks since boot, as keys record it). A process that exists but whose
// start time cannot be read, or a key without one, counts as alive: Sweep
// errs on the safe side.
func alive(pid int, start uint64) bool {
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return false
	}
	now, err := processStart(pid)
	if err != nil || now == 0 || start == 0 {
		return true
	}
	// The key holds the start time modulo 62^6 (see key.go).
	return now%startModulus == start
}
