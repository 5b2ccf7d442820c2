//go:build darwin

package shm

import (
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// macOS has no memfd and no unnamed shm object. An anonymous segment is a
// named one whose name is removed at once: xnu's shm_unlink only takes the
// object out of its name tree (pshm_unlink_internal in
// bsd/kern/posix_shm.c) and drops the name's reference; the fd keeps its
// own (pshm_usecount), on which ftruncate and mmap work as before
// (pshm_truncate and pshm_mmap reach the object through the fd, never the
// name), and the memory goes with the last fd and mapping (pshm_deref). No
// seals exist; but neither can such a segment shrink: xnu sets a segment's
// size once (pshm_truncate refuses a second ftruncate with EINVAL).

// AnonNeedsKey: the segment needs a name for a moment, drawn as Create's.
const AnonNeedsKey = true

// openAnon makes segment key as Create does (openNew: O_CREAT|O_EXCL, mode
// 0600, checked) and removes its name at once, so that nothing is left to
// remove even if the process dies the next instant. It returns key as the
// name the file goes by, and the name of the failing operation with an
// error; EEXIST if the key is taken.
func openAnon(key string) (fd int, name, op string, err error) {
	fd, _, err = openNew(key)
	if err != nil {
		return -1, key, "shm_open", err
	}
	if err := UnlinkName(key); err != nil {
		CloseFD(fd)
		return -1, key, "shm_unlink", err
	}
	return fd, key, "", nil
}

// seal does nothing: macOS has no seals (and no shrinking; see above).
func seal(fd int) (bool, error) { return false, nil }

// fileSeals is 0: macOS has no seals.
func fileSeals(fd int) int { return 0 }

// checkSealed is nil: every segment's size is fixed as RequireSealed
// demands. xnu's pshm_truncate allows one ftruncate in a shm object's life
// (a second, or one while the first runs, is EINVAL: PSHM_ALLOCATED,
// PSHM_ALLOCATING), and pshm_mmap maps nothing past pshm_length, nor an
// object whose size is not yet set; so no mapping can outgrow its object.
func checkSealed(seals int, writable bool) error { return nil }

// checkFileSealed is nil, as checkSealed: a handed-over shm object is
// one as any other.
func checkFileSealed(kind segKind, seals int, writable bool) error { return nil }

// fileSealed is false: macOS has no seals.
func fileSealed(kind segKind, seals int) bool { return false }

// pathOnly is false: macOS has no O_PATH.
func pathOnly(fd int) bool { return false }

// statFile fills st with fstat of fd, a file that a caller or a peer handed
// over, and reports whether it is a segment (shmSeg) or not (notSeg). xnu's
// pshm_stat fills st_mode with the object's mode alone, which shm_open
// masked with ALLPERMS: a shm object, and nothing else, has no file type
// bits. A regular file (on disk) is not a segment: a mapping of it writes to
// the disk, and a page that cannot be read or written back is a SIGBUS at
// the access.
func statFile(fd int, st *unix.Stat_t) (segKind, error) {
	if err := unix.Fstat(fd, st); err != nil {
		return notSeg, err
	}
	if st.Mode&unix.S_IFMT != 0 {
		return notSeg, nil
	}
	return shmSeg, nil
}

// FDName is the name of a received fd: a shm object has no path to ask for.
func FDName(fd int) string { return "fd " + strconv.Itoa(fd) }

// ControlSpace is the room for the control messages of one message that
// ReceiveSegment gives recvmsg: roomFDs descriptors. A Unix domain socket
// in xnu carries SCM_RIGHTS and nothing else (unp_internalize in
// bsd/kern/uipc_usrreq.c refuses a sender's other control messages with
// EINVAL, and the local domain adds none of its own).
var ControlSpace = unix.CmsgSpace(4 * roomFDs)

// RecvFDs receives one message from the socket s, without waiting (EAGAIN
// if there is none), into p, and returns the fds that came with it,
// close-on-exec. macOS has no MSG_CMSG_CLOEXEC, so FD_CLOEXEC is set on
// each fd after recvmsg, and all of it happens under syscall.ForkLock's
// read lock, as syscall's own opens do: os/exec forks only under its write
// lock, so no child can start between the fd's arrival and FD_CLOEXEC and
// inherit it. (net's ReadMsgUnix sets the flag without the lock.) truncated
// is true if the kernel cut the fds short for want of room in oob
// (MSG_CTRUNC).
func RecvFDs(s int, p, oob []byte) (n int, fds []int, truncated bool, err error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	var oobn, flags int
	err = ignoringEINTR(func() error {
		var err error
		n, oobn, flags, _, err = unix.Recvmsg(s, p, oob, unix.MSG_DONTWAIT)
		return err
	})
	if err != nil {
		return 0, nil, false, err
	}
	fds = RightsFDs(oob[:oobn])
	for _, fd := range fds {
		unix.CloseOnExec(fd)
	}
	return n, fds, flags&unix.MSG_CTRUNC != 0, nil
}

// EndOfStream reports whether a read of nothing, without a descriptor,
// from the socket s is the end of the connection rather than an empty
// message. xnu's local domain has stream and datagram sockets alone
// (localsw in bsd/kern/uipc_proto.c): a stream carries no empty message,
// so nothing is its end; a datagram socket has no end that a peer can
// signal, so nothing is an empty datagram.
func EndOfStream(s int) bool {
	typ, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE)
	return err != nil || typ == unix.SOCK_STREAM
}
