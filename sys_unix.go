//go:build unix

package shmmap

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// rightsFDs returns the fds that the SCM_RIGHTS control messages in oob,
// as recvmsg(2) filled it, carry, in order; the caller owns them. The fds
// of the other control messages that carry one, which the receiver's
// socket options ask for (scmPIDFD: the sender's pidfd, SO_PASSPIDFD on
// Linux), are closed; the rest are skipped. The kernel writes only whole
// messages, so parsing never stops short of an fd it installed.
func rightsFDs(oob []byte) []int {
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
					closeFD(fd)
				}
			}
		}
		oob = rest
	}
	return fds
}
