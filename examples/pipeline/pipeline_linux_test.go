package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestPipeline builds the example, runs it and checks that it prints the
// checksum its documentation shows, and that it leaves nothing in /dev/shm.
// Other programs may use /dev/shm meanwhile, so the example runs in a mount
// namespace of its own, on an empty tmpfs that only it uses, where one can
// be made.
func TestPipeline(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "pipeline")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	doc, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^//\t(worker: .*)$`).FindSubmatch(doc)
	if want == nil {
		t.Fatal("main.go's documentation shows no output")
	}
	out, left, err := runOnOwnShm(exe)
	if errors.Is(err, errNoNamespace) {
		t.Logf("%v: the example runs, but what it leaves in /dev/shm is not judged", err)
		out, err = exec.Command(exe).Output()
	}
	if err != nil {
		t.Fatalf("pipeline: %v\n%s", err, out)
	}
	if got := string(out); got != string(want[1])+"\n" {
		t.Fatalf("got %q, want %q", got, string(want[1])+"\n")
	}
	if left != "" {
		t.Fatalf("the example left in /dev/shm: %s", left)
	}
}

var errNoNamespace = errors.New("no mount namespace can be made here")

// runOnOwnShm runs exe in a new mount namespace (and a user namespace when
// not root) with a fresh tmpfs on /dev/shm, and returns its stdout and the
// names it left there. Mounts made there do not reach this namespace: Go
// makes every mount in the new namespace private first.
func runOnOwnShm(exe string) (stdout []byte, left string, err error) {
	const script = `mount -t tmpfs -o size=16m,mode=1777 shmmap-pipeline-test /dev/shm || exit 125
"$0" >&3; rc=$?
ls -A /dev/shm
exit $rc`
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if os.Geteuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	cmd := exec.Command("sh", "-c", script, exe)
	cmd.SysProcAttr = attr
	cmd.ExtraFiles = []*os.File{w}
	var names, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &names, &stderr
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(r); got <- b }()
	err = cmd.Run()
	w.Close()
	stdout = <-got
	var exit *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &exit): // EPERM, EINVAL: no namespace
		return nil, "", fmt.Errorf("%w: %v", errNoNamespace, err)
	case exit != nil && exit.ExitCode() == 125:
		return nil, "", fmt.Errorf("%w: %s", errNoNamespace, bytes.TrimSpace(stderr.Bytes()))
	case err != nil:
		return append(stdout, stderr.Bytes()...), "", err
	}
	return stdout, strings.Join(strings.Fields(names.String()), " "), nil
}
