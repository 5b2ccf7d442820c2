//go:build unix

package shmmap

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// rightsFDs returns the fds that the SCM_RIGHTS control messages in oob,
// as recvmsg(2) filled it, carry, in order; the caller owns them. Other
// control messages are skipped. The kernel writes only whole messages, so
// parsing never stops short of an fd it installed.
func rightsFDs(oob []byte) []int {
	var fds []int
	for len(oob) >= unix.CmsgLen(0) {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_RIGHTS {
			for ; len(data) >= 4; data = data[4:] {
				fds = append(fds, int(int32(binary.NativeEndian.Uint32(data))))
			}
		}
		oob = rest
	}
	return fds
}
