package shmmap

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
)

// A key made by Create is keyPrefix followed by randDigits base62 digits of
// 128 random bits from crypto/rand: unguessable, and unique without any
// coordination between processes. 30 bytes in all, within every system's
// limit. The key says nothing about its creator: liveness comes from the
// creator's lock (see Creator), which, unlike a pid, means the same in every
// pid, time and user namespace.
//
// Keys of this form with 21 digits were made by earlier versions, which
// recorded the creator's pid and start time instead of holding a lock; they
// are not taken for Create's, so Sweep never removes them.
const (
	keyPrefix  = "/shmmap_"
	randDigits = 22 // 62^22 > 2^128
	keyLen     = len(keyPrefix) + randDigits
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

// newKey returns a fresh key for Create.
func newKey() string {
	var r [16]byte
	rand.Read(r[:]) // never fails (Go 1.24); it would crash the program rather than return
	hi, lo := binary.LittleEndian.Uint64(r[8:]), binary.LittleEndian.Uint64(r[:8])
	var b [keyLen]byte
	copy(b[:], keyPrefix)
	for i := keyLen - 1; i >= len(keyPrefix); i-- {
		// (hi, lo) /= 62, the remainder being the digit.
		var rem uint64
		hi, rem = bits.Div64(0, hi, 62)
		lo, rem = bits.Div64(rem, lo, 62)
		b[i] = base62[rem]
	}
	return string(b[:])
}

// isCreateKey reports whether name (canonical form) has the form of the keys
// that Create makes. Another program could make such a name too; Sweep
// removes one only if its owner is the sweeping user and no process holds
// its lock.
func isCreateKey(name string) bool {
	if len(name) != keyLen || name[:len(keyPrefix)] != keyPrefix {
		return false
	}
	for _, c := range []byte(name[len(keyPrefix):]) {
		if strings.IndexByte(base62, c) < 0 {
			return false
		}
	}
	return true
}

// normalize checks that key is a valid POSIX shared memory name and returns
// it in its canonical form, with exactly one leading slash. The rules are
// stricter than some systems' so that a key means the same segment on every
// system and never names a file outside the shm namespace: one path
// component, not "." or "..", no NUL, at most maxKeyLen bytes with the slash.
func normalize(key string) (string, error) {
	name := strings.TrimPrefix(key, "/")
	switch {
	case name == "", name == ".", name == "..":
		return "", fmt.Errorf("%w: %q is not a name", ErrInvalidKey, key)
	case strings.ContainsAny(name, "/\x00"):
		return "", fmt.Errorf("%w: %q has a slash or NUL after its first byte", ErrInvalidKey, key)
	case len(name)+1 > maxKeyLen:
		return "", fmt.Errorf("%w: %q is %d bytes with its leading slash, more than %d", ErrInvalidKey, key, len(name)+1, maxKeyLen)
	}
	if len(name) == len(key) {
		return "/" + name, nil
	}
	return key, nil
}

// canonical returns a valid key in its canonical form.
func canonical(key string) string {
	name, _ := normalize(key)
	return name
}
