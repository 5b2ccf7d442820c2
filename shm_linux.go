//go:build linux

package shmmap

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// On Linux, shm_open(3) is open(2) under /dev/shm, a tmpfs: glibc builds the
// path and adds O_NOFOLLOW|O_CLOEXEC; so do we, without cgo. A name is a
// single file name there (NAME_MAX, 255 bytes) after the leading slash.
const (
	shmDir    = "/dev/shm"
	maxKeyLen = 1 + 255
)

// shmOpen opens segment name (canonical form, "/..."), close-on-exec.
// O_NOFOLLOW keeps a symlink planted in /dev/shm from redirecting the open;
// normalize has already kept the name to one component.
func shmOpen(name string, flag int, mode uint32) (fd int, err error) {
	err = ignoringEINTR(func() error {
		fd, err = unix.Open(shmDir+name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		return err
	})
	return fd, err
}

// shmUnlink removes segment name, as shm_unlink(3) does.
func shmUnlink(name string) error {
	return unix.Unlink(shmDir + name)
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
	if err := unix.Fchmod(fd, 0o600); err != nil {
		return "fchmod", err
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
		err := ignoringEINTR(func() error { return unix.Fallocate(fd, 0, int64(off), int64(n)) })
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

// processStart returns the start time of process pid in clock ticks since
// boot, field 22 of /proc/<pid>/stat (proc(5)), or 0 if it cannot be read.
func processStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces and
	// parentheses itself: count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fields := bytes.Fields(b[i+1:]) // fields[0] is field 3
	if len(fields) < 20 {
		return 0
	}
	v, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0
	}
	return v
}
