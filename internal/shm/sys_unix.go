//go:build unix

package shm

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// RightsFDs returns the fds that the SCM_RIGHTS control messages in oob,
// as recvmsg(2) filled it, carry, in order; the caller owns them. The fds
// of the other control messages that carry one, which the receiver's
// socket options ask for (scmPIDFD: the sender's pidfd, SO_PASSPIDFD on
// Linux), are closed; the rest are skipped. The kernel writes only whole
// messages, so parsing never stops short of an fd it installed.
func RightsFDs(oob []byte) []int {
	var fds []int
	for len(oob) >= unix.CmsgLen(0) {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		if h.Level == unix.SOL_SOCKET && (h.Type == unix.SCM_RIGHTS || h.Type == scmPIDFD) {
			for ; len(data) >= 4; data = data[4:] {
				fd := int(int32(binary.NativeEndian.Uint32(data)))
				if h.Type == unix.SCM_RIGHTS {
					fds = append(fds, fd)
				} else {
					CloseFD(fd)
				}
			}
		}
		oob = rest
	}
	return fds
}

// roomFDs is how many descriptors ReceiveSegment has room for at least,
// beside the control messages that the receiver's socket options add
// (ControlSpace). The kernel installs no more than fit, and drops the
// rest (MSG_CTRUNC).
const roomFDs = 12

// A segKind is what statFile found a file to be.
type segKind uint8

const (
	notSeg  segKind = iota // not a segment
	shmSeg                 // a segment: on Linux a file on tmpfs, on macOS a shm object
	hugeSeg                // a segment on hugetlbfs (Linux)
)
