package shmmap

import (
	"crypto/rand"
	"encoding/binary"
	"os"
	"strings"
	"sync/atomic"
)

// A key made by Create is keyPrefix followed by three fixed-width base62
// numbers: the creating process' pid (4 digits, enough for Linux's largest
// pid_max of 2^22), its start time in clock ticks since boot (6 digits, 18
// years of uptime at 100 Hz; 0 where the system has no such notion), and 64
// random bits from crypto/rand (11 digits). The pid and start time let Sweep
// tell a dead creator from a live one, even after the pid is reused; the
// random bits make keys unguessable. 29 bytes in all, within macOS's 30.
const (
	keyPrefix   = "/shmmap_"
	pidDigits   = 4
	startDigits = 6
	randDigits  = 11
	keyLen      = len(keyPrefix) + pidDigits + startDigits + randDigits
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// The first use of crypto/rand in a process arms a timer (a warning if
// entropy blocks), and the first timer starts the runtime's network poller,
// which needs an fd: in a process out of fds that is a fatal runtime error.
// So the first use happens at init, never inside Create.
func init() {
	var b [1]byte
	rand.Read(b[:])
}

// creatorID is this process' identity as keys record it, once known.
var creatorID atomic.Pointer[[pidDigits + startDigits]byte]

// creator returns creatorID, reading it first if need be. A failure to read
// it (out of fds, say) is Create's error and is not cached: a key with a
// wrong start time would make Sweep take a live creator for a dead one.
func creator() (*[pidDigits + startDigits]byte, error) {
	if c := creatorID.Load(); c != nil {
		return c, nil
	}
	start, err := processStart(os.Getpid())
	if err != nil {
		return nil, err
	}
	c := new([pidDigits + startDigits]byte)
	putBase62(c[:pidDigits], uint64(os.Getpid()))
	putBase62(c[pidDigits:], start)
	creatorID.Store(c)
	return c, nil
}

// newKey returns a fresh key for Create.
func newKey() (string, error) {
	c, err := creator()
	if err != nil {
		return "", err
	}
	var b [keyLen]byte
	var r [8]byte
	rand.Read(r[:]) // never fails (Go 1.24); it would crash the program rather than return
	n := copy(b[:], keyPrefix)
	n += copy(b[n:], c[:])
	putBase62(b[n:], binary.LittleEndian.Uint64(r[:]))
	return string(b[:]), nil
}

// putBase62 writes v into b in base62, most significant digit first, padded
// with zeros; digits that do not fit are dropped (a pid or start time that
// large then names a different process, which Sweep treats as alive only if
// that one is).
func putBase62(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = base62[v%62]
		v /= 62
	}
}

// parseKey returns the pid and start time recorded in a key that Create
// made, and ok false for any other name (one made by another program, or
// one that merely looks alike, down to a pid no system gives).
func parseKey(name string) (pid int, start uint64, ok bool) {
	if len(name) != keyLen || name[:len(keyPrefix)] != keyPrefix {
		return 0, 0, false
	}
	digits := name[len(keyPrefix):]
	var vals [3]uint64
	widths := [3]int{pidDigits, startDigits, randDigits}
	for i, w := range widths {
		for _, c := range []byte(digits[:w]) {
			d := strings.IndexByte(base62, c)
			if d < 0 {
				return 0, 0, false
			}
			vals[i] = vals[i]*62 + uint64(d)
		}
		digits = digits[w:]
	}
	if vals[0] == 0 || vals[0] > pidMaxLimit {
		return 0, 0, false // no process has that pid: not a key of Create's
	}
	return int(vals[0]), vals[1], true
}

// pidMaxLimit is the largest pid Linux can give (PID_MAX_LIMIT, 2^22);
// macOS's are smaller.
const pidMaxLimit = 1 << 22
