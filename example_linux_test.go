package shmmap_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"time"

	"github.com/shmmap-go/shmmap"
	"golang.org/x/sys/unix"
)

// List shows every segment on the machine, whoever made it; for keys made
// by Create it also tells whether the creator still holds the segment.
// (On macOS List is unsupported.)
func ExampleList() {
	key, _, err := shmmap.Create(1 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)

	segs, err := shmmap.List()
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range segs {
		if s.Key == key {
			fmt.Println(s.Size, s.Mode, s.Creator == shmmap.CreatorAlive)
		}
	}
	// Output: 1048576 -rw------- true
}

// A Segment describes one segment, as List finds it: here a segment that
// another program made, which List can tell nothing of the creator of, and
// one of Create's, whose creator (this process) is alive.
func ExampleSegment() {
	key, _, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	foreign := "/dev/shm/example_segment"
	if err := os.WriteFile(foreign, make([]byte, 100), 0o600); err != nil {
		log.Fatal(err)
	}
	defer os.Remove(foreign)

	segs, err := shmmap.List()
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range segs {
		if s.Key == key || s.Key == "/example_segment" {
			fmt.Printf("%d bytes, %v, made %s ago at most, creator %v\n",
				s.Size, s.Mode, time.Since(s.Changed).Round(time.Hour), s.Creator)
		}
	}
	// Unordered output:
	// 4096 bytes, -rw-------, made 0s ago at most, creator alive
	// 100 bytes, -rw-------, made 0s ago at most, creator none
}

// Sweep at service start removes what crashed processes left behind. It
// never removes a segment whose creator still runs.
func ExampleSweep() {
	key, _, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)

	removed, err := shmmap.Sweep()
	if err != nil {
		log.Fatal(err)
	}
	kept := true
	for _, k := range removed {
		if k == key {
			kept = false
		}
	}
	fmt.Println("our live segment kept:", kept)
	// Output: our live segment kept: true
}

// Creator tells whether a segment's creator still holds it. A process that
// exits without Release leaves its segment behind, with no holder: that is
// what Sweep removes.
func ExampleCreator() {
	key, _, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	segs, err := shmmap.List()
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range segs {
		if s.Key == key {
			fmt.Println("while held:", s.Creator)
		}
	}
	if err := shmmap.Release(key); err != nil {
		log.Fatal(err)
	}
	// Output: while held: alive
}

// On Linux an anonymous segment is a memfd sealed against any change of
// size: a process that is handed it cannot shrink it under the others'
// mappings, so no access to them can fault for that.
func ExampleMapping_Sealed() {
	m, err := shmmap.CreateAnonymous(1 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Println(m.Sealed())

	// What a careless or hostile peer would try:
	err = m.File().Truncate(4096)
	fmt.Println(errors.Is(err, fs.ErrPermission))
	// Output:
	// true
	// true
}

// A receiver that does not trust the sender maps with RequireSealed: a
// memfd that the sender could still shrink is refused before anything is
// mapped, where a mapping of it would kill the receiver with SIGBUS at the
// first access past a truncation.
func ExampleRequireSealed() {
	// What a careless or hostile sender could hand over: a memfd that it
	// can truncate at any moment.
	fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC)
	if err != nil {
		log.Fatal(err)
	}
	unsealed := os.NewFile(uintptr(fd), "unsealed")
	defer unsealed.Close()
	if err := unsealed.Truncate(4096); err != nil {
		log.Fatal(err)
	}
	_, err = shmmap.MapFileReadOnly(unsealed, 0, shmmap.RequireSealed())
	fmt.Println(errors.Is(err, shmmap.ErrNotSealed))

	// CreateAnonymous's segments are sealed.
	m, err := shmmap.CreateAnonymous(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	seg, err := shmmap.MapFile(m.File(), 0, shmmap.RequireSealed())
	if err != nil {
		log.Fatal(err)
	}
	defer seg.Close()
	fmt.Println(seg.Sealed())
	// Output:
	// true
	// true
}
