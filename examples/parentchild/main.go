// Command parentchild is the node package shmmap's parent/child example in
// Go: the parent makes a 4 MiB segment and fills its first half, a child
// process (this program re-executed) maps it by key, sums the first half and
// writes 100 at index 0, and the parent sees that write in place.
//
//	go run ./examples/parentchild
//
// prints
//
//	child sum: 266334736
//	parent sum: 266334836
//	parent 0: 100
package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"strconv"

	"github.com/shmmap-go/shmmap"
)

const (
	size = 4 << 20
	half = size / 2
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("parentchild: ")
	if len(os.Args) == 4 && os.Args[1] == "child" {
		child(os.Args[2], os.Args[3])
		return
	}
	if err := parent(); err != nil {
		log.Fatal(err)
	}
}

// parent creates the segment, runs the child and prints what it sees; the
// segment is released on every path, so nothing is left in /dev/shm.
func parent() error {
	key, data, err := shmmap.Create(size)
	if err != nil {
		return err
	}
	err = share(key, data)
	if rerr := shmmap.Release(key); err == nil {
		err = rerr
	}
	return err
}

func share(key string, data []byte) error {
	for i := range half {
		data[i] = byte(i % 255)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "child", key, strconv.Itoa(size))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("child: %v", err)
	}
	fmt.Println("parent sum:", sum(data[:half]))
	fmt.Println("parent 0:", data[0])
	return nil
}

func child(key, sizeArg string) {
	n, err := strconv.Atoi(sizeArg)
	if err != nil {
		log.Fatalf("child: size %q: %v", sizeArg, err)
	}
	data, err := shmmap.ReadWrite(key, n)
	if err != nil {
		log.Fatalf("child: %v", err)
	}
	fmt.Println("child sum:", sum(data[:n/2]))
	data[0] = 100
	if err := shmmap.Release(key); err != nil {
		log.Fatalf("child: %v", err)
	}
}

func sum(b []byte) int {
	total := 0
	for _, v := range b {
		total += int(v)
	}
	return total
}
