// Package peer finds the other programs that the module's interop tests
// run against, and skips a test that lacks one, or fails it where CI
// requires the interop tests.
package peer

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireEnv, when set (as .ci/run sets it), turns a missing peer program
// from a skip into a failure, so that CI cannot pass without running the
// interop tests.
const RequireEnv = "SHMMAP_REQUIRE_INTEROP"

// Missing skips t for want of a peer program, or fails it if RequireEnv is
// set.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s (and %s is set)", msg, RequireEnv)
	}
	t.Skip(msg)
}

// Python returns a python3 that can import modules: Debian's
// /usr/bin/python3, which Debian's python3-* packages serve, else the first
// python3 on PATH. Where there is none, or it cannot import them, it calls
// Missing.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		if python, err = exec.LookPath("python3"); err != nil {
			Missing(t, "no python3: %v", err)
		}
	}
	if len(modules) == 0 {
		return python
	}
	out, err := exec.Command(python, "-I", "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
	if err != nil {
		Missing(t, "%s cannot import %s (%v: %s); on Debian: apt-get install python3-numpy for numpy",
			python, strings.Join(modules, ", "), err, bytes.TrimSpace(out))
	}
	return python
}
