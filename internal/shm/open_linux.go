//go:build linux

package shm

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux, shm_open(3) is open(2) under /dev/shm, a tmpfs: glibc builds the
// path and adds O_NOFOLLOW|O_CLOEXEC; so do we, without cgo.
const Dir = "/dev/shm"

// MapPopulate is the mmap flag of the Populate option.
const MapPopulate = unix.MAP_POPULATE

// HoldsName: Create's process keeps the segment's fd, with the creator's
// lock on it (live_linux.go), for as long as it owns the name.
const HoldsName = true

// openFlags are added to every open: O_NOFOLLOW keeps a symlink planted in
// /dev/shm from redirecting it (normalize has already kept the name to one
// component); O_NONBLOCK keeps a FIFO planted under a key from blocking it
// until a writer comes, which may be never (when the open was raw, that
// froze the whole program: it held its P, and the next garbage collection
// waited for it); O_LARGEFILE lets a 32-bit process
// open a segment of 2 GiB or more (it is 0 on 64-bit systems, where the
// kernel implies it), as glibc's shm_open does.
const openFlags = unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_LARGEFILE

// OpenName opens segment name (canonical form, "/..."), close-on-exec.
// O_NONBLOCK makes the open of a FIFO return at once, a socket is ENXIO,
// and a regular file or directory in a tmpfs opens without waiting; a
// device node, which only root can put there, is opened by its driver, and
// the open is an ordinary call (sys_linux.go) so that even that cannot hold
// up other goroutines.
func OpenName(name string, flag int, mode uint32) (fd int, err error) {
	return openIn(name, flag|openFlags, mode)
}

// openIn opens Dir+name with flag as it is.
func openIn(name string, flag int, mode uint32) (fd int, err error) {
	var p cpath
	err = ignoringEINTR(func() error {
		fd, err = openat(p.ptr(Dir, name), flag, mode)
		return err
	})
	return fd, err
}

// UnlinkName removes segment name, as shm_unlink(3) does.
func UnlinkName(name string) error {
	var p cpath
	return ignoringEINTR(func() error { return unlinkat(p.ptr(Dir, name)) })
}

// NoTmpfile is set once an O_TMPFILE open fails for want of support (a
// kernel before 3.11, or a /dev/shm that is not a tmpfs).
var NoTmpfile atomic.Bool

// openNew opens a new segment for Create, with mode 0 until the creator's
// lock is taken (InitSegment gives it 0600). Normally the file has no name
// yet (O_TMPFILE: named is false), and linkName gives it one once it is
// locked, sized and mapped. Where /dev/shm has no O_TMPFILE, it is made
// under name with O_EXCL (named is true); with mode 0, Sweep leaves it alone
// until InitSegment has run, which is after the lock.
func openNew(name string) (fd int, named bool, err error) {
	if !NoTmpfile.Load() {
		fd, err := openTmpfile()
		switch err {
		case nil:
			return fd, false, nil
		case unix.EOPNOTSUPP, unix.EISDIR, unix.EINVAL:
			// Kernels before 3.11 take O_TMPFILE for O_DIRECTORY: EISDIR.
			NoTmpfile.Store(true)
		default:
			return -1, false, err
		}
	}
	fd, err = OpenName(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0)
	return fd, true, err
}

// openTmpfile opens a new unnamed file in /dev/shm (O_TMPFILE), read-write,
// mode 0. The directory itself is opened: without O_NOFOLLOW, which would
// refuse a /dev/shm that is a symlink (/run/shm on some systems); only
// names in it are never followed.
func openTmpfile() (int, error) {
	return openIn("", unix.O_TMPFILE|unix.O_RDWR|openFlags&^unix.O_NOFOLLOW, 0)
}

// NoEmptyPathLink is set once linkat with AT_EMPTY_PATH is refused: before
// Linux 6.10 it needs CAP_DAC_READ_SEARCH.
var NoEmptyPathLink atomic.Bool

// linkName gives the unnamed file fd (from openNew) the name name; EEXIST if
// the name is taken. linkat(2) with AT_EMPTY_PATH links fd itself; where
// that is refused (ENOENT), the same file is reached through
// /proc/self/fd/N with AT_SYMLINK_FOLLOW, as linkat(2) describes. Where
// that fails too for want of /proc (ENOENT, and /proc/self is missing), no
// unnamed file can be named here: it returns errCannotLink, and openNew
// makes named files from then on.
func linkName(fd int, name string) error {
	var empty, proc, p cpath
	if !NoEmptyPathLink.Load() {
		err := linkat(fd, empty.ptr("", ""), p.ptr(Dir, name), unix.AT_EMPTY_PATH)
		if err != unix.ENOENT {
			return err
		}
		NoEmptyPathLink.Store(true)
	}
	err := linkat(atFDCWD, proc.ptr("/proc/self/fd/", strconv.Itoa(fd)), p.ptr(Dir, name), unix.AT_SYMLINK_FOLLOW)
	if err == unix.ENOENT {
		var st unix.Stat_t
		if unix.Stat("/proc/self/fd", &st) != nil {
			NoTmpfile.Store(true)
			return errCannotLink
		}
	}
	return err
}

// isSegment reports whether st describes a segment: a regular file in
// /dev/shm. Anyone may put a FIFO, socket or directory there under a name.
func isSegment(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFREG }

// notSegment tells, after an open of name failed with err, whether that is
// because something other than a segment stands under the name (a symlink:
// ELOOP from O_NOFOLLOW; a socket: ENXIO; a directory opened for writing:
// EISDIR), and returns its mode if so.
func notSegment(name string, err error) (mode uint32, ok bool) {
	if err != unix.ELOOP && err != unix.ENXIO && err != unix.EISDIR {
		return 0, false
	}
	var st unix.Stat_t
	if unix.Lstat(Dir+name, &st) != nil || isSegment(&st) {
		return 0, false
	}
	return st.Mode, true
}

// ReserveChunk bounds one fallocate call. tmpfs gives up a fallocate that a
// signal interrupts and frees what it had allocated, and Go's runtime signals
// its threads often, so a multi-GiB fallocate in one call could be retried
// forever; in chunks, each retry repeats at most one chunk.
const ReserveChunk = 1 << 30

// InitSegment gives a new, locked segment its mode and size. fchmod makes
// the mode 0600 whatever the umask. fallocate(2) with mode 0 both sets the
// size and reserves the pages, so no ftruncate is needed: a full /dev/shm is
// ENOSPC here and not a SIGBUS at first write. Where the filesystem has no
// fallocate (EOPNOTSUPP; ENODEV for some special files; ENOSYS under some
// seccomp filters), ftruncate(2) alone sets the size. Offsets are int64, so
// that a 32-bit process reserves past 2 GiB. It returns the failing
// operation's name with the error.
func InitSegment(fd, size int) (op string, err error) {
	if err := fchmod(fd, 0o600); err != nil {
		return "fchmod", err
	}
	if size > ReserveChunk {
		// tmpfs refuses a single fallocate larger than the filesystem at
		// once, but each chunk passes that check, and where /dev/shm is as
		// large as memory (the default: half of RAM, or all of it) the
		// chunks would run the machine out of memory before ENOSPC. So
		// refuse what cannot fit now, as one call would. A filesystem
		// without a size (Blocks 0: a memfd's, or a tmpfs mounted with
		// size=0) has no such check at all: there, refuse what is more
		// than the machine's memory and swap, which could only end with
		// the OOM killer.
		var st unix.Statfs_t
		if err := unix.Fstatfs(fd, &st); err != nil {
			return "fstatfs", err
		}
		if st.Blocks != 0 && uint64(size) > uint64(st.Bavail)*uint64(st.Bsize) {
			return "fallocate", unix.ENOSPC
		}
		var si unix.Sysinfo_t
		if st.Blocks == 0 && unix.Sysinfo(&si) == nil {
			if total := (uint64(si.Totalram) + uint64(si.Totalswap)) * uint64(si.Unit); uint64(size) > total {
				return "fallocate", fmt.Errorf("%w: %d bytes are more than this machine's memory and swap (%d)", unix.ENOMEM, size, total)
			}
		}
	}
	for off := int64(0); off < int64(size); off += ReserveChunk {
		n := min(int64(size)-off, ReserveChunk)
		err := ignoringEINTR(func() error { return Fallocate(fd, off, n) })
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
	var p cpath
	fd, err := openat(p.ptr(path, ""), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer CloseFD(fd)
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

// ListNames returns the names in /dev/shm, each with a leading slash.
func ListNames() ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = "/" + e.Name()
	}
	return names, nil
}

// StatName describes segment name without opening it; ok is false if it is
// gone or is not a segment (a symlink, a FIFO, a directory).
func StatName(name string) (size int64, mode uint32, uid int, changed time.Time, ok bool) {
	var st unix.Stat_t
	if err := unix.Lstat(Dir+name, &st); err != nil || !isSegment(&st) {
		return 0, 0, 0, time.Time{}, false
	}
	return st.Size, st.Mode, int(st.Uid), time.Unix(st.Ctim.Unix()), true
}
