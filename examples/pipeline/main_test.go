package main

import (
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/ring"
)

// TestWorkerExitsEarly: a worker that exits without opening the ring, or
// after opening it, stops the parent with an error; it does not wait for
// room forever. The ring's creator cannot tell a consumer that never came
// from a slow one: the worker's exit must end the wait.
func TestWorkerExitsEarly(t *testing.T) {
	for _, worker := range [][]string{
		{"true"},               // never opens the ring
		{"sh", "-c", "exit 3"}, // fails before it opens the ring
		{"sleep", "0.3"},       // waits, then goes
	} {
		t.Run(worker[0], func(t *testing.T) {
			p, err := ring.CreateProducer(ringSize)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			done := make(chan error, 1)
			go func() { done <- stream(p, exec.Command(worker[0], worker[1:]...)) }()
			select {
			case err := <-done:
				if err == nil || errors.Is(err, ring.ErrPeerGone) {
					t.Fatalf("stream: %v, want the worker's early exit", err)
				}
				t.Log(err)
			case <-time.After(10 * time.Second):
				t.Fatal("stream still waiting 10s after a worker that never opened the ring")
			}
		})
	}
}
