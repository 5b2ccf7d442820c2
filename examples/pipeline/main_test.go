package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestPipeline builds the example, runs it and checks that it prints the
// checksum its documentation shows, and that it leaves nothing in /dev/shm.
func TestPipeline(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "pipeline")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	before, _ := filepath.Glob("/dev/shm/*")
	out, err := exec.Command(exe).CombinedOutput()
	if err != nil {
		t.Fatalf("pipeline: %v\n%s", err, out)
	}
	doc, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^//\t(worker: .*)$`).FindSubmatch(doc)
	if want == nil {
		t.Fatal("main.go's documentation shows no output")
	}
	if got := string(out); got != string(want[1])+"\n" {
		t.Fatalf("got %q, want %q", got, string(want[1])+"\n")
	}
	after, _ := filepath.Glob("/dev/shm/*")
	if len(after) > len(before) {
		t.Fatalf("/dev/shm: %d names before, %d after", len(before), len(after))
	}
}
