package peer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// PythonPackage returns Debian's python3 (as Python does) and the
// environment in which it imports the module's Python package, shmmap (the
// python/ directory), with its C extension built: this process'
// environment with PYTHONPATH naming the build. A python run with -I or -E
// ignores PYTHONPATH: run it without them. modules are further modules the
// test needs, as for Python.
//
// The package is built once per content and interpreter, with setuptools
// (setup.py build, the build pip runs), into a directory named by a hash of
// both under the user's cache directory, and reused after that: go test
// ./... runs several test binaries at once, so the build happens under a
// file lock. Where python3, setuptools, Python.h or a C compiler is
// missing, PythonPackage calls Missing; a build that fails otherwise fails
// t.
func PythonPackage(t testing.TB, modules ...string) (python string, env []string) {
	t.Helper()
	python = Python(t, modules...)
	src, err := pythonSource()
	if err != nil {
		t.Fatalf("the Python package's source: %v", err)
	}
	probe, err := exec.Command(python, "-I", "-c", pyProbe).CombinedOutput()
	if err != nil {
		Missing(t, "%s cannot build a C extension: %v: %s (on Debian: apt-get install python3-dev python3-setuptools gcc)",
			python, err, bytes.TrimSpace(probe))
	}
	sum, err := hashTree(src, string(probe))
	if err != nil {
		t.Fatalf("hashing %s: %v", src, err)
	}
	root, err := os.UserCacheDir()
	if err != nil {
		root = os.TempDir()
	}
	root = filepath.Join(root, "shmmap-go", fmt.Sprintf("pypkg-%d", os.Geteuid()))
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(root, sum)
	if err := buildOnce(root, lib, func(tmp string) error { return buildPackage(python, src, tmp) }); err != nil {
		t.Fatalf("building the Python package in %s: %v", src, err)
	}
	env = []string{"PYTHONPATH=" + lib, "PYTHONNOUSERSITE=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHONPATH=") && !strings.HasPrefix(kv, "PYTHONNOUSERSITE=") {
			env = append(env, kv)
		}
	}
	return python, env
}

// pyProbe prints what the build depends on, and fails where setuptools,
// Python.h or the compiler is missing.
const pyProbe = `
import os, shutil, sys, sysconfig
import setuptools
h = os.path.join(sysconfig.get_paths()["include"], "Python.h")
if not os.path.exists(h):
    sys.exit("no " + h)
cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
if shutil.which(cc) is None:
    sys.exit("no C compiler " + cc)
print(sys.version, sysconfig.get_config_var("EXT_SUFFIX"), setuptools.__version__, cc)
`

// pythonSource returns the module's python/ directory, found from the
// working directory (a package's, under go test) upward.
func pythonSource() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/shmmap-go/shmmap\n")) {
			return filepath.Join(dir, "python"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of github.com/shmmap-go/shmmap above the working directory")
		}
		dir = parent
	}
}

// skipped are what a build or a run leaves in python/, not its source.
func skipped(name string) bool {
	return name == "build" || name == "__pycache__" || strings.HasSuffix(name, ".egg-info") ||
		strings.HasSuffix(name, ".so") || strings.HasSuffix(name, ".pyc")
}

// hashTree returns a hash of the files under dir (their names and bytes)
// and of extra.
func hashTree(dir, extra string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && skipped(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	fmt.Fprintf(h, "%q\n", extra)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%q %d\n", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// buildOnce makes directory dir with build, unless it exists: build fills
// a fresh directory next to it, which is then renamed to dir, all under an
// exclusive flock(2) of root/.lock, so that concurrent test binaries build
// once and never see half a build.
func buildOnce(root, dir string, build func(tmp string) error) error {
	lock, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close() // drops the lock
	for {
		if err = unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(root, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := build(tmp); err != nil {
		return err
	}
	return os.Rename(filepath.Join(tmp, "lib"), dir)
}

// buildPackage builds the package in src with python into tmp/lib, from a
// copy of src (tmp/src), so that the build leaves nothing in the module.
func buildPackage(python, src, tmp string) error {
	cp := filepath.Join(tmp, "src")
	if err := copyTree(src, cp); err != nil {
		return err
	}
	cmd := exec.Command(python, "-I", "setup.py", "-q", "build",
		"--build-base", filepath.Join(tmp, "build"), "--build-lib", filepath.Join(tmp, "lib"))
	cmd.Dir = cp
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %v\n%s", cmd.Args, err, out)
	}
	return nil
}

// copyTree copies the source files under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if path != src && skipped(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
