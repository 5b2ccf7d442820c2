package shmmap_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/shmmap-go/shmmap"
	"golang.org/x/sys/unix"
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

// A handle owns its mapping: code that holds one is safe from every other
// part of the process, whatever it releases. Here a library's ReleaseAll
// (of the key API's mappings) leaves the handle's bytes mapped.
func ExampleCreateNamed() {
	m, err := shmmap.CreateNamed(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close() // unmaps and, as the creator, removes the name

	copy(m.Bytes(), "still mapped")
	shmmap.ReleaseAll() // another library's cleanup: not m's
	fmt.Println(string(m.Bytes()[:12]), len(m.Key()))
	// Output: still mapped 30
}

// Two handles on one key, as two libraries in one process would hold them:
// closing one leaves the other's bytes mapped.
func ExampleMap() {
	m, err := shmmap.CreateNamed(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// In the other process (or library), given m.Key():
	a, err := shmmap.Map(m.Key(), 0)
	if err != nil {
		log.Fatal(err)
	}
	b, err := shmmap.Map(m.Key(), 0)
	if err != nil {
		log.Fatal(err)
	}
	a.Bytes()[0] = 7
	a.Close()
	fmt.Println(b.Bytes()[0], m.Bytes()[0])
	b.Close()
	// Output: 7 7
}

// MapReadOnly maps a segment that this process only reads.
func ExampleMapReadOnly() {
	m, err := shmmap.CreateNamed(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	copy(m.Bytes(), "config v2")

	r, err := shmmap.MapReadOnly(m.Key(), 9)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	fmt.Println(string(r.Bytes()))
	// Output: config v2
}

// Once every process has mapped the segment, Unlink removes its name: no
// crash can leave it behind, and the mappings stay valid.
func ExampleMapping_Unlink() {
	m, err := shmmap.CreateNamed(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close() // unmaps; the name is already gone

	other, err := shmmap.Map(m.Key(), 0) // the other side attaches
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()
	if err := m.Unlink(); err != nil {
		log.Fatal(err)
	}
	other.Bytes()[0] = 1
	_, err = shmmap.Map(m.Key(), 0)
	fmt.Println(m.Bytes()[0], errors.Is(err, fs.ErrNotExist))
	// Output: 1 true
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

// An anonymous segment has no key, and nothing is ever left of it: other
// processes get it as a file, and its memory goes with the last process
// that holds it.
func ExampleCreateAnonymous() {
	m, err := shmmap.CreateAnonymous(1 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close() // unmaps and closes the file

	data := m.Bytes()
	copy(data, "hello, other process")
	fmt.Println(len(data), string(data[:5]))
	// Output: 1048576 hello
}

// A Mapping is a handle, as an *os.File is: Close it when done. A second
// Close is an error, never a crash, and Bytes is then nil.
func ExampleMapping() {
	m, err := shmmap.CreateAnonymous(4096)
	if err != nil {
		log.Fatal(err)
	}
	values, err := shmmap.View[uint64](m.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	values[0] = 1 << 40
	fmt.Println(values[0])

	fmt.Println(m.Close())
	fmt.Println(errors.Is(m.Close(), fs.ErrClosed), m.Bytes() == nil)
	// Output:
	// 1099511627776
	// <nil>
	// true true
}

// The process that receives a segment's file maps it with MapFile
// (here the same process, for brevity) and writes in place; the creator
// sees the write.
func ExampleMapFile() {
	m, err := shmmap.CreateAnonymous(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// In the other process, given the file:
	view, err := shmmap.MapFile(m.File(), 0) // 0: all of it
	if err != nil {
		log.Fatal(err)
	}
	defer view.Close() // unmaps; the file stays its owner's
	view.Bytes()[0] = 42

	fmt.Println(m.Bytes()[0])
	// Output: 42
}

// MapFileReadOnly maps read-only, size bytes or all; a size past the end of the
// segment is refused before anything is mapped, and so is a file that is
// not shared memory.
func ExampleMapFileReadOnly() {
	m, err := shmmap.CreateAnonymous(10000)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	m.Bytes()[99] = 7

	first, err := shmmap.MapFileReadOnly(m.File(), 100) // writing to it faults
	if err != nil {
		log.Fatal(err)
	}
	defer first.Close()
	fmt.Println(len(first.Bytes()), first.Bytes()[99])

	_, err = shmmap.MapFileReadOnly(m.File(), 1<<20)
	fmt.Println(errors.Is(err, shmmap.ErrInvalidSize))

	r, w, err := os.Pipe()
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	_, err = shmmap.MapFileReadOnly(r, 0)
	fmt.Println(errors.Is(err, shmmap.ErrNotSegment))
	// Output:
	// 100 7
	// true
	// true
}

// A process hands a segment to a child through os/exec's ExtraFiles: the
// child finds it as fd 3 (ExtraFiles[0]) and maps it. Every other fd of
// this package is close-on-exec, so the child gets only what it is given.
// examples/anonchild is this example as a program that runs.
func ExampleMapping_File() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		// In the child:
		seg, err := shmmap.MapFile(os.NewFile(3, "segment"), 0)
		if err != nil {
			log.Fatal(err)
		}
		defer seg.Close()
		seg.Bytes()[0] = 100
		return
	}

	// In the parent:
	m, err := shmmap.CreateAnonymous(4 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	cmd := exec.Command(os.Args[0], "child")
	cmd.ExtraFiles = []*os.File{m.File()} // fd 3 in the child
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Bytes()[0]) // 100: the child's write
}

// Close unmaps the segment and closes its file; other processes that hold
// it keep it, and its memory goes with the last of them.
func ExampleMapping_Close() {
	m, err := shmmap.CreateAnonymous(4096)
	if err != nil {
		log.Fatal(err)
	}
	other, err := shmmap.MapFile(m.File(), 0) // as another process would
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Close(); err != nil {
		log.Fatal(err)
	}
	other.Bytes()[0] = 1 // still mapped
	fmt.Println(other.Close())
	// Output: <nil>
}

// SendSegment passes a segment to any process at the other end of a Unix
// socket: a worker that dialled this one, say, or Python's
// socket.recv_fds. Both ends are in this process here.
func ExampleSendSegment() {
	dir, err := os.MkdirTemp("", "shmmap-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "sock"), Net: "unix"})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	m, err := shmmap.CreateAnonymous(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	copy(m.Bytes(), "job 1")

	sent := make(chan error, 1)
	go func() { // the server: each worker that connects gets the segment
		c, err := l.AcceptUnix()
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		sent <- shmmap.SendSegment(c, m.File())
	}()

	// In the worker:
	c, err := net.DialUnix("unix", nil, l.Addr().(*net.UnixAddr))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	f, err := shmmap.ReceiveSegment(c)
	if err != nil {
		log.Fatal(err)
	}
	seg, err := shmmap.MapFile(f, 0)
	f.Close() // the mapping does not need it
	if err != nil {
		log.Fatal(err)
	}
	defer seg.Close()
	fmt.Println(string(seg.Bytes()[:5]), <-sent)
	// Output: job 1 <nil>
}

// ReceiveSegment takes one segment from a Unix socket and nothing else: a
// message without one, or with several, is ErrBadMessage, and once the
// other end has hung up, io.EOF. Both ends are in this process here.
func ExampleReceiveSegment() {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socket")
		defer f.Close() // FileConn has its own fd
		c, err := net.FileConn(f)
		if err != nil {
			log.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	sender, receiver := conn(fds[0]), conn(fds[1])
	defer receiver.Close()

	m, err := shmmap.CreateAnonymous(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	if err := shmmap.SendSegment(sender, m.File()); err != nil {
		log.Fatal(err)
	}
	sender.Write([]byte("x")) // data alone
	sender.Close()

	f, err := shmmap.ReceiveSegment(receiver)
	if err != nil {
		log.Fatal(err)
	}
	f.Close()
	_, err = shmmap.ReceiveSegment(receiver)
	fmt.Println(errors.Is(err, shmmap.ErrBadMessage))
	_, err = shmmap.ReceiveSegment(receiver)
	fmt.Println(err == io.EOF)
	// Output:
	// true
	// true
}
