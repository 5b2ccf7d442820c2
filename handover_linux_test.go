//go:build linux

package shmmap

import (
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

// TestReceiveSegmentPassPidfd: a receiver whose socket asks for the
// sender's pidfd (SO_PASSPIDFD, Linux 6.5), with or without its
// credentials (SO_PASSCRED), receives a segment as any other, and the
// pidfd that the kernel installs with each message is closed, whether the
// message carries a segment or nothing; on stream, datagram and
// SOCK_SEQPACKET sockets.
func TestReceiveSegmentPassPidfd(t *testing.T) {
	checkLeaks(t)
	seg := int(newAnonymous(t, 4096).File().Fd())
	for _, typ := range []struct {
		name string
		typ  int
	}{{"stream", unix.SOCK_STREAM}, {"datagram", unix.SOCK_DGRAM}, {"seqpacket", unix.SOCK_SEQPACKET}} {
		for _, cred := range []bool{false, true} {
			raw, ours := socketPairOf(t, typ.typ)
			conn := fileConn(t, ours)
			rc, err := conn.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			rc.Control(func(s uintptr) {
				if serr = unix.SetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_PASSPIDFD, 1); serr == nil && cred {
					serr = unix.SetsockoptInt(int(s), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
				}
			})
			if errors.Is(serr, unix.ENOPROTOOPT) {
				t.Skipf("SO_PASSPIDFD: %v (a kernel before 6.5)", serr)
			}
			if serr != nil {
				t.Fatal(serr)
			}
			what := typ.name
			if cred {
				what += ", SO_PASSCRED"
			}

			if err := unix.Sendmsg(int(raw.Fd()), []byte{0}, unix.UnixRights(seg), nil, 0); err != nil {
				t.Fatal(err)
			}
			before := countFDs(t)
			f, err := ReceiveSegment(conn)
			if err != nil {
				t.Errorf("%s: ReceiveSegment of a segment: %v", what, err)
			} else {
				f.Close()
			}
			if after := countFDs(t); after != before {
				t.Errorf("%s: ReceiveSegment of a segment: %d fds before, %d after closing the file", what, before, after)
			}

			if err := unix.Sendmsg(int(raw.Fd()), []byte{0}, nil, nil, 0); err != nil {
				t.Fatal(err)
			}
			before = countFDs(t)
			if _, err := ReceiveSegment(conn); !errors.Is(err, ErrBadMessage) {
				t.Errorf("%s: ReceiveSegment of a byte alone: %v, want ErrBadMessage", what, err)
			}
			if after := countFDs(t); after != before {
				t.Errorf("%s: ReceiveSegment of a byte alone: %d fds before, %d after", what, before, after)
			}
		}
	}
}

// TestRightsFDsClosesPidfd: rightsFDs returns the descriptors of
// SCM_RIGHTS, in order, and closes that of each SCM_PIDFD, before or
// after them.
func TestRightsFDsClosesPidfd(t *testing.T) {
	checkLeaks(t)
	var oob []byte
	var want []int
	for i := range 3 {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		// An SCM_PIDFD message is laid out as an SCM_RIGHTS one of one fd.
		pidfd := unix.UnixRights(p[0])
		(*unix.Cmsghdr)(unsafe.Pointer(&pidfd[0])).Type = unix.SCM_PIDFD
		if i%2 == 0 {
			oob = append(append(oob, pidfd...), unix.UnixRights(p[1])...)
		} else {
			oob = append(append(oob, unix.UnixRights(p[1])...), pidfd...)
		}
		want = append(want, p[1])
	}
	got := shm.RightsFDs(oob)
	for _, fd := range got {
		unix.Close(fd)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rightsFDs: %v, want %v", got, want)
	}
}
