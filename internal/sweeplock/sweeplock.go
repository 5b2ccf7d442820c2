// Package sweeplock serialises the tests that sweep: go test runs packages
// in parallel, and a sweep in one package (the shmmap command's test) would
// remove the dead creator's segments that another (the package's TestSweep)
// has just made in order to sweep them itself and check what it removed.
package sweeplock

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Lock blocks until no other test process holds the lock, then holds it
// until t and its subtests are done.
func Lock(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "shmmap-test-sweep.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing the fd releases the lock
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		t.Fatalf("flock %s: %v", f.Name(), err)
	}
}
