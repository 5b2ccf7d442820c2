package ring

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/internal/testproc"
)

// testShmDir is where Linux shows shm names.
const testShmDir = "/dev/shm"

// helpers are the child processes' commands, by name (internal/testproc).
var helpers = testproc.New("SHMMAP_RING_TEST_HELPER")

func TestMain(m *testing.M) {
	flag.Parse()
	helpers.Run(nil, shmmap.ReleaseAll)
	os.Exit(m.Run())
}

// A child is a running helper (helpers.Start).
type child = testproc.Child

// checkLeaks registers a check, run after every other cleanup of t, that t
// left no fd or mapping of /dev/shm open in this process and none of the
// ring names it recorded in /dev/shm. Call it first in a test.
func checkLeaks(t *testing.T) *[]string {
	t.Helper()
	keys := new([]string)
	if runtime.GOOS != "linux" {
		return keys
	}
	before := shmHeld(t)
	t.Cleanup(func() {
		if after := shmHeld(t); after != before {
			t.Errorf("held on /dev/shm before the test: %s\nafter: %s", before, after)
		}
		for _, k := range *keys {
			if _, err := os.Lstat(testShmDir + k); !os.IsNotExist(err) {
				t.Errorf("segment %s left in /dev/shm (lstat: %v)", k, err)
				os.Remove(testShmDir + k)
			}
		}
	})
	return keys
}

// shmHeld describes the fds and mappings of /dev/shm that this process holds.
func shmHeld(t *testing.T) string {
	t.Helper()
	var held []string
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, testShmDir) {
			held = append(held, "fd "+target)
		}
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(maps), "\n") {
		if i := strings.Index(l, testShmDir); i >= 0 {
			held = append(held, "map "+l[i:])
		}
	}
	sort.Strings(held)
	return fmt.Sprint(len(held), held)
}
