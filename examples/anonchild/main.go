// Command anonchild is examples/parentchild with an anonymous segment: the
// parent makes 4 MiB with CreateAnonymous and fills its first half, and
// hands the segment to a child process (this program re-executed) as fd 3
// through os/exec's ExtraFiles. The child maps fd 3 with MapFile,
// sums the first half and writes 100 at index 0, and the parent sees that
// write in place. No key, and no name anywhere: once both have closed the
// segment, nothing of it is left, whichever of them dies first and however.
//
//	go run ./examples/anonchild
//
// prints what parentchild prints:
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

	"github.com/shmmap-go/shmmap"
)

const (
	size = 4 << 20
	half = size / 2
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("anonchild: ")
	if len(os.Args) == 2 && os.Args[1] == "child" {
		child()
		return
	}
	if err := parent(); err != nil {
		log.Fatal(err)
	}
}

// parent creates the segment, runs the child and prints what it sees; the
// segment is closed on every path.
func parent() error {
	m, err := shmmap.CreateAnonymous(size)
	if err != nil {
		return err
	}
	err = share(m)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

func share(m *shmmap.Mapping) error {
	data := m.Bytes()
	for i := range half {
		data[i] = byte(i % 255)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "child")
	cmd.ExtraFiles = []*os.File{m.File()} // fd 3 in the child
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("child: %v", err)
	}
	fmt.Println("parent sum:", sum(data[:half]))
	fmt.Println("parent 0:", data[0])
	return nil
}

func child() {
	f := os.NewFile(3, "segment") // ExtraFiles[0]
	seg, err := shmmap.MapFile(f, 0)
	f.Close() // the mapping does not need it
	if err != nil {
		log.Fatalf("child: %v", err)
	}
	data := seg.Bytes()
	fmt.Println("child sum:", sum(data[:half]))
	data[0] = 100
	if err := seg.Close(); err != nil {
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
