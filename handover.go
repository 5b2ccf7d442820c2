package shmmap

import (
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

// The message of SendSegment and ReceiveSegment is what Python's socket.send_fds
// and recv_fds exchange, and what C sends with sendmsg(2): one byte of data
// with one descriptor attached (SCM_RIGHTS). The byte is there because a
// stream socket carries no descriptor without data; its value is 0 and is
// ignored on receipt.

// SendSegment sends f, the file of a segment (m.File() of a Mapping, or a file
// received earlier), over the Unix domain socket c, for the process at the
// other end to receive with ReceiveSegment, Python's socket.recv_fds(sock, 1,
// 1), or recvmsg(2). The receiver gets a descriptor of its own for the same
// segment: f stays the caller's, and may be closed as soon as SendSegment
// returns. Like c.Write, it waits until the socket takes the message, as
// long as c's write deadline allows.
//
// f must be a segment, as for MapFileReadOnly: a nil f is an error wrapping
// fs.ErrInvalid, a closed one fs.ErrClosed, and anything else, a pipe, a
// socket, a regular file on disk, ErrNotSegment; those errors are of type
// *fs.PathError naming f. The errors of the socket are c's own, of type
// *net.OpError: net.ErrClosed for a closed c, os.ErrDeadlineExceeded,
// syscall.EPIPE once the other end is closed. A nil c is an *net.OpError
// wrapping fs.ErrInvalid. Like ReceiveSegment, it asks f's filesystem
// whether f is a segment, which for a file on FUSE or NFS can wait on the
// server, beyond c's write deadline.
func SendSegment(c *net.UnixConn, f *os.File) error {
	if c == nil {
		return &net.OpError{Op: "write", Net: "unix", Err: fs.ErrInvalid}
	}
	var err error
	if ferr := shm.WithFD(f, func(fd int) {
		var st unix.Stat_t
		if _, err = shm.CheckFile(fd, f.Name(), "sendmsg", &st); err != nil {
			return
		}
		_, _, err = c.WriteMsgUnix([]byte{0}, unix.UnixRights(fd), nil)
	}); ferr != nil {
		return &fs.PathError{Op: "sendmsg", Path: fileName(f), Err: ferr}
	}
	return err
}

// ReceiveSegment receives the file of a segment over the Unix domain socket
// c, as SendSegment, Python's socket.send_fds(sock, [b"\0"], [fd]) or C's
// sendmsg(2) sends it: one message of one byte carrying one descriptor. It
// waits for the message, like c.Read, as long as c's read deadline allows.
// The file is the caller's, to map with MapFileReadOnly or MapFile and to
// close; its descriptor is close-on-exec from the moment it arrives (on
// Linux the kernel sets the flag as it installs it, MSG_CMSG_CLOEXEC; on
// macOS, which lacks that, it is set under syscall.ForkLock, so that no
// child that os/exec starts meanwhile inherits it). On Linux the file is
// named as /proc shows it ("/memfd:NAME (deleted)" for a memfd); on macOS
// "fd N".
//
// Once the other end has closed the connection, ReceiveSegment returns io.EOF.
// A message that carries no descriptor, several, or more than ReceiveSegment
// has room for (a dozen at least) is an *net.OpError wrapping
// ErrBadMessage, and a descriptor that is not of a segment (a pipe,
// socket, directory, device, a regular file on disk) an *fs.PathError
// wrapping ErrNotSegment naming it; either way every descriptor that came
// with the message is closed before ReceiveSegment returns, so none leaks.
// If c asks for the sender's credentials (SO_PASSCRED) or, on Linux 6.5
// and later, its pidfd (SO_PASSPIDFD), they do not stand in the way:
// ReceiveSegment has room for them, returns neither, and closes the pidfd
// that the kernel installs with every message.
//
// An empty message, which a datagram or SOCK_SEQPACKET socket can carry,
// is ErrBadMessage too: no peer can end a receiver's loop with it while the
// connection stays open. On a stream socket, which carries no empty
// message, reading nothing is the end. A SOCK_SEQPACKET socket reads
// nothing both for an empty message and at the end: there it is the end
// once the other end has closed or shut down writing (an empty message
// sent just before that counts as the end too), and ErrBadMessage before.
// A datagram socket has no end: ReceiveSegment waits on it for the next
// message.
//
// A segment's descriptor that this process cannot map as it wants is
// received all the same, and MapFileReadOnly and MapFile say why: one
// opened read-only is fs.ErrPermission to MapFile, one opened with
// O_PATH is fs.ErrPermission to both, and one that is not sealed is
// ErrNotSealed to either with RequireSealed. The errors of the socket are
// of type *net.OpError, wrapping net.ErrClosed for a closed c or
// os.ErrDeadlineExceeded; a nil c is one wrapping fs.ErrInvalid.
//
// c's read deadline covers the wait for the message, not the check of
// the descriptor that comes with it: to learn whether it is a segment,
// ReceiveSegment asks the file's filesystem (fstat, fstatfs). A file on a
// filesystem that a process serves (FUSE, which an unprivileged sender
// can mount in a user namespace of its own) or on one over a network (NFS)
// can make that call wait on the server, in the kernel, for as long as
// the server does not answer: beyond the deadline, and, for FUSE, past
// every signal but a fatal one. A receiver that cannot afford that must
// not take descriptors from a peer that can make such files.
func ReceiveSegment(c *net.UnixConn) (*os.File, error) {
	if c == nil {
		return nil, &net.OpError{Op: "read", Net: "unix", Err: fs.ErrInvalid}
	}
	opError := func(err error) error {
		return &net.OpError{Op: "read", Net: "unix", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, opError(err)
	}
	var (
		p         [1]byte
		oob       = make([]byte, shm.ControlSpace)
		n         int
		fds       []int
		truncated bool
		eof       bool
		rerr      error
	)
	if err := rc.Read(func(s uintptr) bool {
		n, fds, truncated, rerr = shm.RecvFDs(int(s), p[:], oob)
		if rerr == nil && n == 0 && len(fds) == 0 && !truncated {
			eof = shm.EndOfStream(int(s))
		}
		return rerr != unix.EAGAIN
	}); err != nil {
		return nil, opError(err)
	}
	if rerr != nil {
		return nil, opError(rerr)
	}
	switch {
	case truncated || len(fds) > 1:
		closeAll(fds)
		return nil, opError(fmt.Errorf("%w: it carried %d descriptors (cut short: %v)", ErrBadMessage, len(fds), truncated))
	case eof:
		return nil, io.EOF
	case len(fds) == 0 && n == 0:
		return nil, opError(fmt.Errorf("%w: an empty message", ErrBadMessage))
	case len(fds) == 0:
		return nil, opError(fmt.Errorf("%w: %d byte of data without a descriptor", ErrBadMessage, n))
	}
	fd := fds[0]
	name := shm.FDName(fd)
	var st unix.Stat_t
	if _, err := shm.CheckFile(fd, name, "recvmsg", &st); err != nil {
		shm.CloseFile(fd, -1)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// closeAll closes fds, which may be the last references to their files.
func closeAll(fds []int) {
	for _, fd := range fds {
		shm.CloseFile(fd, -1)
	}
}
