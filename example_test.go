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

	part, err := shmmap.Read(key, 10000) // read-only: writing to it faults
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(part), part[9999])

	// Size 0 maps the whole segment, as fstat reports it: on macOS that is
	// whole pages, so at least the 10000 bytes asked of Create.
	all, err := shmmap.Read(key, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(all) >= 10000, all[9999])

	_, err = shmmap.Read(key, 1<<30)
	fmt.Println(errors.Is(err, shmmap.ErrInvalidSize))
	// Output:
	// 10000 7
	// true 7
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

// The life of a segment: the creator makes it and passes the key on; a
// worker maps it by key and works in place; each releases what it mapped.
// Both sides run in one process here; examples/parentchild runs them in two.
func Example() {
	// In the creator:
	key, data, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key) // unmaps and removes the name
	copy(data, "job 1")

	// Pass key to a worker: on its command line, in its environment, down a
	// pipe. In the worker:
	shared, err := shmmap.ReadWrite(key, 0) // 0: the whole segment
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(shared[:5]))
	copy(shared, "done!")
	// The worker then calls shmmap.Release(key), which unmaps its slices and
	// leaves the name to the creator. (Not here: Release unmaps every slice
	// of the key in the process, and this process is also the creator.)

	// Back in the creator, which sees the worker's write in place:
	fmt.Println(string(data[:5]))
	// Output:
	// job 1
	// done!
}

// Every error is an *fs.PathError naming the operation and the key, and
// matches the package's sentinels and the fs errors with errors.Is.
func Example_errors() {
	_, err := shmmap.Read("../escape", 0)
	fmt.Println(errors.Is(err, shmmap.ErrInvalidKey))

	_, _, err = shmmap.Create(0)
	fmt.Println(errors.Is(err, shmmap.ErrInvalidSize))

	_, err = shmmap.ReadWrite("/shmmap-example-missing", 0)
	fmt.Println(errors.Is(err, fs.ErrNotExist))

	var pe *fs.PathError
	if errors.As(err, &pe) {
		fmt.Println(pe.Op, pe.Path)
	}

	err = shmmap.Release("/shmmap-example-missing")
	fmt.Println(errors.Is(err, shmmap.ErrNotMapped))

	_, err = shmmap.View[uint64](make([]byte, 12))
	fmt.Println(errors.Is(err, shmmap.ErrInvalidSize))
	// Output:
	// true
	// true
	// true
	// shm_open /shmmap-example-missing
	// true
	// true
}

// A segment of float64s, as NumPy or a JavaScript Float64Array on the other
// side would see it: View shares the memory, it does not copy it.
func ExampleView() {
	key, data, err := shmmap.Create(4 * 8)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)

	values, err := shmmap.View[float64](data)
	if err != nil {
		log.Fatal(err)
	}
	for i := range values {
		values[i] = float64(i) + 0.5
	}

	// Another process mapping key sees the same numbers:
	other, err := shmmap.Read(key, 4*8)
	if err != nil {
		log.Fatal(err)
	}
	seen, _ := shmmap.View[float64](other)
	fmt.Println(seen)

	// A view must start on the type's alignment.
	_, err = shmmap.View[float64](data[4:12])
	fmt.Println(errors.Is(err, shmmap.ErrAlignment))
	// Output:
	// [0.5 1.5 2.5 3.5]
	// true
}

// Bytes copies a typed slice into a segment in one go.
func ExampleBytes() {
	samples := []int16{-1, 2, -3}

	key, data, err := shmmap.Create(len(samples) * 2)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	copy(data, shmmap.Bytes(samples))

	shared, _ := shmmap.View[int16](data)
	fmt.Println(shared)
	// Output: [-1 2 -3]
}

// Number includes types defined on the numeric types.
func ExampleNumber() {
	type celsius float32

	key, data, err := shmmap.Create(8)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)

	temps, _ := shmmap.View[celsius](data)
	temps[0], temps[1] = 21.5, -4
	fmt.Println(temps)
	// Output: [21.5 -4]
}

// Options go last; Populate is the one there is. They can be chosen at run
// time.
func ExampleOption() {
	size := 16 << 20
	var opts []shmmap.Option
	if size >= 1<<20 {
		opts = append(opts, shmmap.Populate()) // fill page tables up front
	}
	key, data, err := shmmap.Create(size, opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	fmt.Println(len(data))
	// Output: 16777216
}

// A worker that reads all of a large segment maps it with Populate: one
// call maps every page instead of one page fault each.
func ExamplePopulate() {
	key, data, err := shmmap.Create(8 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	for i := range data {
		data[i] = 1
	}

	// In the worker:
	all, err := shmmap.Read(key, 0, shmmap.Populate())
	if err != nil {
		log.Fatal(err)
	}
	sum := 0
	for _, b := range all {
		sum += int(b)
	}
	fmt.Println(sum)
	// Output: 8388608
}
