//go:build linux

package shm

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Anonymous segments on Linux are memfds (memfd_create(2), Linux 3.17):
// files in the kernel's internal shmem mount, which no directory lists and
// whose size no mount limits, so a container's small /dev/shm does not
// cap them, and which can be sealed (fcntl(2), "File Sealing"), so that no
// process that is handed one can shrink it under a mapping.

// AnonNeedsKey: memfds have no name, so CreateAnonymous draws no key.
const AnonNeedsKey = false

// memfdFlags are the flags of every memfd_create: close-on-exec, and
// sealable. MFD_NOEXEC_SEAL (Linux 6.3) is added where the kernel knows it:
// the file can never be made executable, and with vm.memfd_noexec = 2 a
// memfd_create without it is refused.
const memfdFlags = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING

// NoNoexecSeal is set once memfd_create refuses MFD_NOEXEC_SEAL (EINVAL:
// a kernel before 6.3).
var NoNoexecSeal atomic.Bool

// AnonTmpfileName is what the file of openAnon's fallback goes by.
const AnonTmpfileName = Dir + " (O_TMPFILE)"

// openAnon makes a new, empty anonymous file, close-on-exec, and returns
// the name it goes by ("memfd:shmmap", as /proc shows it without its slash)
// and the name of the failing operation with an error. key is unused: a
// memfd has no name to choose. Where memfd_create does not exist (ENOSYS:
// a kernel before 3.17, or a seccomp filter that does not know it), the
// file is an O_TMPFILE in /dev/shm instead: unnamed too, but counted
// against /dev/shm's size, and not sealable.
func openAnon(key string) (fd int, name, op string, err error) {
	name, op = "memfd:shmmap", "memfd_create"
	if NoNoexecSeal.Load() {
		fd, err = MemfdCreate(memfdFlags)
	} else if fd, err = MemfdCreate(memfdFlags | unix.MFD_NOEXEC_SEAL); err == unix.EINVAL {
		NoNoexecSeal.Store(true)
		fd, err = MemfdCreate(memfdFlags)
	}
	// Where there is no memfd_create, the first call says so, whichever it
	// was.
	if err == unix.ENOSYS && !NoTmpfile.Load() {
		if tfd, terr := openTmpfile(); terr == nil {
			return tfd, AnonTmpfileName, "", nil
		}
	}
	return fd, name, op, err
}

// anonSeals are the seals of CreateAnonymous's segments: the size is fixed
// (no shrinking, no growing), and no other seal can be added, so that no
// process handed the file can make it read-only under a writer either.
const anonSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// seal seals fd with anonSeals and reports whether it could: a memfd can
// be; the O_TMPFILE of openAnon's fallback cannot (EPERM: a tmpfs file
// comes with F_SEAL_SEAL).
func seal(fd int) (bool, error) {
	switch _, err := fcntlInt(fd, unix.F_ADD_SEALS, anonSeals); err {
	case nil:
		return true, nil
	case unix.EPERM, unix.EINVAL:
		return false, nil
	default:
		return false, err
	}
}

// fileSeals returns the seals of fd (F_GET_SEALS). A file that cannot be
// sealed (EINVAL) has none, and so, to this package, has an O_PATH
// descriptor (EBADF), which it never maps.
func fileSeals(fd int) int {
	seals, err := fcntlInt(fd, unix.F_GET_SEALS, 0)
	if err != nil {
		return 0
	}
	return seals
}

// sealedShrink reports whether seals hold F_SEAL_SHRINK: then no
// ftruncate, by any process, can make the file smaller than it is.
func sealedShrink(seals int) bool { return seals&unix.F_SEAL_SHRINK != 0 }

// checkSealed returns nil if seals fix the size as RequireSealed demands
// (F_SEAL_SHRINK, and for a writable mapping F_SEAL_GROW), else an error
// wrapping ErrNotSealed that names the seals there are.
func checkSealed(seals int, writable bool) error {
	want := unix.F_SEAL_SHRINK
	if writable {
		want |= unix.F_SEAL_GROW
	}
	if seals&want == want {
		return nil
	}
	return fmt.Errorf("%w: it has %s, RequireSealed wants %s", ErrNotSealed, sealNames(seals), sealNames(want))
}

// writeSeals are the seals that stop hole punching: with either,
// fallocate(FALLOC_FL_PUNCH_HOLE) of the file is EPERM, on hugetlbfs
// (hugetlbfs_punch_hole in fs/hugetlbfs/inode.c) as on tmpfs
// (shmem_fallocate in mm/shmem.c), and so is madvise(MADV_REMOVE), which
// punches through it.
const writeSeals = unix.F_SEAL_WRITE | unix.F_SEAL_FUTURE_WRITE

// checkFileSealed returns nil if seals, those of a handed-over segment of
// kind, make it sealed as RequireSealed demands: checkSealed's seals, and
// on hugetlbfs a write seal too, for there a hole punched into the file
// gives its huge page back to the pool, and an access to the hole needs
// a huge page from the pool again (hugetlb_no_page in mm/hugetlb.c, whose
// failure for want of one is SIGBUS), which the sender can take first.
// F_SEAL_SHRINK and F_SEAL_GROW do not stop the punch; F_SEAL_WRITE and
// F_SEAL_FUTURE_WRITE do (writeSeals). Else it is an error wrapping
// ErrNotSealed that says why.
func checkFileSealed(kind segKind, seals int, writable bool) error {
	if err := checkSealed(seals, writable); err != nil {
		return err
	}
	if kind == hugeSeg && seals&writeSeals == 0 {
		return fmt.Errorf("%w: it is on hugetlbfs and has %s, which do not stop a hole being punched into it "+
			"(fallocate FALLOC_FL_PUNCH_HOLE), which gives its huge pages back to the pool, so an access to "+
			"the hole can fault; RequireSealed wants F_SEAL_WRITE or F_SEAL_FUTURE_WRITE there",
			ErrNotSealed, sealNames(seals))
	}
	return nil
}

// fileSealed reports whether a handed-over segment of kind with seals is
// Sealed: sealed against shrinking, and on hugetlbfs against hole
// punching too (see checkFileSealed).
func fileSealed(kind segKind, seals int) bool {
	return sealedShrink(seals) && (kind != hugeSeg || seals&writeSeals != 0)
}

// sealNames spells seals out: "F_SEAL_SHRINK|F_SEAL_GROW", or "no seals".
func sealNames(seals int) string {
	var names []string
	for _, s := range []struct {
		bit  int
		name string
	}{
		{unix.F_SEAL_SEAL, "F_SEAL_SEAL"},
		{unix.F_SEAL_SHRINK, "F_SEAL_SHRINK"},
		{unix.F_SEAL_GROW, "F_SEAL_GROW"},
		{unix.F_SEAL_WRITE, "F_SEAL_WRITE"},
		{unix.F_SEAL_FUTURE_WRITE, "F_SEAL_FUTURE_WRITE"},
		{unix.F_SEAL_EXEC, "F_SEAL_EXEC"},
	} {
		if seals&s.bit != 0 {
			names = append(names, s.name)
			seals &^= s.bit
		}
	}
	if seals != 0 {
		names = append(names, fmt.Sprintf("%#x", seals))
	}
	if len(names) == 0 {
		return "no seals"
	}
	return strings.Join(names, "|")
}

// pathOnly reports whether fd was opened with O_PATH: a handle that can be
// passed on (a peer can send one) but not read, written or mapped (mmap
// says EBADF).
func pathOnly(fd int) bool {
	flags, err := fcntlInt(fd, unix.F_GETFL, 0)
	return err == nil && flags&unix.O_PATH != 0
}

// statFile fills st with fstat of fd, a file that a caller or a peer handed
// over, and reports whether it is a segment: a regular file in memory, on
// tmpfs (shmSeg: memfds, /dev/shm, O_TMPFILEs) or hugetlbfs (hugeSeg). A
// regular file on disk is not: a mapping of it writes to the disk, and a
// page that cannot be read or written back (an I/O error, a full disk under
// a sparse file) is a SIGBUS at the access. The calls are ordinary ones, not
// raw: the file may be on NFS or FUSE, where fstat and fstatfs wait on a
// server.
func statFile(fd int, st *unix.Stat_t) (segKind, error) {
	if err := unix.Fstat(fd, st); err != nil {
		return notSeg, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return notSeg, nil
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return notSeg, err
	}
	switch uint32(sfs.Type) {
	case unix.TMPFS_MAGIC:
		return shmSeg, nil
	case unix.HUGETLBFS_MAGIC:
		return hugeSeg, nil
	}
	return notSeg, nil
}

// FDName is the name of a received fd: what /proc/self/fd says of it
// ("/memfd:NAME (deleted)" for a memfd), else "fd N".
func FDName(fd int) string {
	var buf [256]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf[:])
	if err != nil || n == 0 || n == len(buf) {
		return "fd " + strconv.Itoa(fd)
	}
	return string(buf[:n])
}

// ControlSpace is the room for the control messages of one message that
// ReceiveSegment gives recvmsg. The kernel writes them in this order
// (__scm_recv_common and scm_recv_unix in net/core/scm.c): the sender's
// credentials if the socket has SO_PASSCRED, its security label if
// SO_PASSSEC, the descriptors (scm_detach_fds), and last the sender's
// pidfd if SO_PASSPIDFD, which scm_pidfd_recv installs only if its message
// fits, else it sets MSG_CTRUNC. So there is room for credentials, a pidfd
// and roomFDs descriptors: a socket that asks for credentials and pidfds
// still receives a segment, instead of its message being cut short
// (ErrBadMessage).
var ControlSpace = unix.CmsgSpace(unix.SizeofUcred) + unix.CmsgSpace(4) + unix.CmsgSpace(4*roomFDs)

// RecvFDs receives one message from the socket s, without waiting (EAGAIN
// if there is none), into p, and returns the fds that came with it, which
// are close-on-exec from the start: MSG_CMSG_CLOEXEC has the kernel set
// FD_CLOEXEC as it installs them, so no fork can ever see them without.
// truncated is true if the kernel cut the fds short for want of room in oob
// (MSG_CTRUNC); it closes those that did not fit.
func RecvFDs(s int, p, oob []byte) (n int, fds []int, truncated bool, err error) {
	var oobn, flags int
	err = ignoringEINTR(func() error {
		var err error
		n, oobn, flags, _, err = unix.Recvmsg(s, p, oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
		return err
	})
	if err != nil {
		return 0, nil, false, err
	}
	return n, RightsFDs(oob[:oobn]), flags&unix.MSG_CTRUNC != 0, nil
}

// EndOfStream reports whether a read of nothing, without a descriptor,
// from the socket s is the end of the connection rather than an empty
// message. On a stream socket it is: a stream carries no empty message. A
// SOCK_SEQPACKET socket carries them, and its non-blocking read also gives
// nothing once the other end has closed or shut down writing
// (unix_dgram_recvmsg): there it is the end once the reading side is shut
// down (POLLRDHUP). A datagram socket has no end (its non-blocking read is
// EAGAIN, shut down or not): nothing from it is an empty datagram, unless
// this process shut it down for reading after one came.
func EndOfStream(s int) bool {
	if typ, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE); err == nil && typ == unix.SOCK_STREAM {
		return true
	}
	pfd := []unix.PollFd{{Fd: int32(s), Events: unix.POLLRDHUP}}
	var n int
	err := ignoringEINTR(func() error {
		var err error
		n, err = unix.Poll(pfd, 0)
		return err
	})
	return err == nil && n > 0 && pfd[0].Revents&(unix.POLLRDHUP|unix.POLLHUP) != 0
}
