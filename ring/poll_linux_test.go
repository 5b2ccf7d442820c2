package ring

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// waitInFutex waits until a thread of this process sleeps in futex(2) on
// w, by /proc/self/task/*/syscall (the call's number and arguments while a
// thread blocks in one): a wake-up sent then is not lost.
func waitInFutex(t *testing.T, w *uint32) {
	t.Helper()
	want := fmt.Sprintf("%d %#x ", unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)))
	for end := time.Now().Add(prompt); ; time.Sleep(time.Millisecond) {
		tasks, _ := filepath.Glob("/proc/self/task/*/syscall")
		for _, f := range tasks {
			if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), want) {
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("no thread in futex on %p after %v", w, prompt)
		}
	}
}
