package shmmap_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"

	"github.com/shmmap-go/shmmap"
)

// Create a segment, write to it, and release it. The key is what another
// process needs to map the same memory.
func ExampleCreate() {
	key, data, err := shmmap.Create(1 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key) // unmaps and, as the creator, removes the name

	copy(data, "hello, other process")
	fmt.Println(len(data), string(data[:5]))
	// Output: 1048576 hello
}

// Another process (here the same one, for brevity) maps the segment by key,
// writes in place, and releases its mapping. The creator sees the write.
func ExampleReadWrite() {
	key, data, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)

	// In the other process, given key:
	view, err := shmmap.ReadWrite(key, 4096)
	if err != nil {
		log.Fatal(err)
	}
	view[0] = 42

	fmt.Println(data[0])
	// Output: 42
}

// Size 0 maps the whole segment, whatever its size, as Python's
// SharedMemory(name) does.
func ExampleRead() {
	key, data, err := shmmap.Create(10000)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	data[9999] = 7

	all, err := shmmap.Read(key, 0) // read-only: writing to all faults
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(all), all[9999])

	_, err = shmmap.Read(key, 20000)
	fmt.Println(errors.Is(err, shmmap.ErrInvalidSize))
	// Output:
	// 10000 7
	// true
}

// Unlink removes the name at once: once the other side has attached, no
// crash of either process can leave the segment behind.
func ExampleUnlink() {
	key, data, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	// ... the other process attaches with ReadWrite(key, 0) ...
	if err := shmmap.Unlink(key); err != nil {
		log.Fatal(err)
	}
	data[0] = 1 // still mapped

	_, err = shmmap.Read(key, 0)
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	fmt.Println(shmmap.Release(key)) // unmaps; no name left to remove
	// Output:
	// true
	// <nil>
}

// Release of a key this process does not hold is an error, never a panic.
func ExampleRelease() {
	err := shmmap.Release("/no-such-key")
	fmt.Println(errors.Is(err, shmmap.ErrNotMapped))
	// Output: true
}

// ReleaseAll in main releases whatever the program still holds when it
// ends, as the node original does at exit.
func ExampleReleaseAll() {
	defer shmmap.ReleaseAll()

	for range 3 {
		if _, _, err := shmmap.Create(4096); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("made 3 segments")
	// Output: made 3 segments
}
