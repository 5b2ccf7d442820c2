package shmmap_test

import (
	"fmt"
	"log"
	"os"

	"github.com/shmmap-go/shmmap"
)

// List shows every segment on the machine, whoever made it; keys made by
// this package also tell their creator. (On macOS List is unsupported.)
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
			fmt.Println(s.Size, s.Mode, s.Creator == os.Getpid(), s.CreatorAlive)
		}
	}
	// Output: 1048576 -rw------- true true
}

// A Segment describes one segment, as List finds it.
func ExampleSegment() {
	segs, err := shmmap.List()
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range segs {
		if s.Creator != 0 && !s.CreatorAlive {
			fmt.Printf("%s: %d bytes left by process %d, made %s\n", s.Key, s.Size, s.Creator, s.Changed.Format("15:04"))
		}
	}
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
