// Command pipeline streams frames from a parent to a child worker through a
// ring of package ring: the parent makes the ring, starts the worker (this
// program re-executed) with its key, and writes each frame in place in the
// ring; the worker reads each frame in place, folds it into a checksum and
// prints it once the parent has closed its end.
//
//	go run ./examples/pipeline
//
// prints
//
//	worker: 1000 frames, 1523500 bytes, checksum 0e83d2a61344bf6d
//
// If the worker dies, or exits before it has read every frame, the parent
// stops with an error instead of hanging: its next Reserve that has to wait
// returns ring.ErrPeerGone within a second once the worker has opened the
// ring, and ends with the worker's exit (the context) before that. The
// worker gets ring.ErrPeerGone if the parent dies.
package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"os"
	"os/exec"

	"github.com/shmmap-go/shmmap/ring"
)

const (
	frames   = 1000
	ringSize = 64 << 10 // room for a few frames: the parent waits for the worker
)

func main() {
	log.SetFlags(0)
	if len(os.Args) == 3 && os.Args[1] == "worker" {
		log.SetPrefix("pipeline worker: ")
		if err := worker(os.Args[2]); err != nil {
			log.Fatal(err)
		}
		return
	}
	log.SetPrefix("pipeline: ")
	if err := parent(); err != nil {
		log.Fatal(err)
	}
}

// parent makes the ring, starts the worker and streams the frames to it.
func parent() error {
	p, err := ring.CreateProducer(ringSize)
	if err != nil {
		return err
	}
	defer p.Close() // on every path: the ring's name goes with it

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "worker", p.Key())
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return stream(p, cmd)
}

// stream starts the worker cmd and writes the frames to it through p,
// which it closes. A ring tells the producer of a consumer that died, but
// not of one that never opened it: the worker's exit ends the context.
func stream(p *ring.Producer, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		if err == nil {
			cancel(errors.New("the worker exited before the last frame"))
		} else {
			cancel(fmt.Errorf("the worker exited before the last frame: %w", err))
		}
		exited <- err
	}()
	for i := range frames {
		frame, err := p.Reserve(ctx, frameSize(i))
		if err != nil {
			cmd.Process.Kill()
			<-exited
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return err // ring.ErrPeerGone if the worker died
		}
		render(frame, i) // written in place, in shared memory
		p.Commit(len(frame))
	}
	p.Close() // the worker sees io.EOF after the last frame
	return <-exited
}

// worker opens the ring by key and checksums every frame in place.
func worker(key string) error {
	c, err := ring.OpenConsumer(key)
	if err != nil {
		return err
	}
	defer c.Close()
	sum := fnv.New64a()
	n, bytes := 0, 0
	for {
		frame, err := c.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err // ring.ErrPeerGone if the parent died
		}
		sum.Write(frame) // read in place
		n, bytes = n+1, bytes+len(frame)
		c.Release()
	}
	fmt.Printf("worker: %d frames, %d bytes, checksum %016x\n", n, bytes, sum.Sum64())
	return nil
}

// frameSize and render make frame i: sizes from 1 KiB to 4 KiB, content
// that depends on i alone.
func frameSize(i int) int { return 1024 + i*3073%3072 }

func render(frame []byte, i int) {
	for j := range frame {
		frame[j] = byte(i + j*j)
	}
}
