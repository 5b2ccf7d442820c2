package memcopy

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkCopy: one op copies a message into one of 8 slots, 8 bytes
// past the slot's start, where a ring's record puts it, and hands the slot
// to a reader thread on another CPU, which loads a word of each of its
// cache lines, as a consumer reading the message would, and hands it
// back. The copy is Go's copy, Copy, or, as the floor, glibc's memcpy in
// testdata/floor.c doing the same (built with gcc). A copy that bypasses
// the cache shows in the reader's time.
func BenchmarkCopy(b *testing.B) {
	cpus := twoCPUs(b)
	floor, err := buildFloor(b.TempDir()) // the C program, built once
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20, 4 << 20} {
		for _, impl := range []string{"copy", "Copy", "C"} {
			b.Run(fmt.Sprintf("%s/%s", sizeName(size), impl), func(b *testing.B) {
				b.SetBytes(int64(size))
				if impl == "C" {
					if err != nil {
						b.Skip(err)
					}
					runFloor(b, floor, size, cpus)
					return
				}
				handOver(b, size, cpus, impl == "Copy")
			})
		}
	}
}

// handOver runs b.N ops of BenchmarkCopy in Go, with Copy or copy.
func handOver(b *testing.B, size int, cpus [2]int, useCopy bool) {
	const slots = 8
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i*7 + 1)
	}
	dst := pageAligned(slots * size)
	var turn atomic.Int64 // 2i+1: op i copied; 2i+2: op i read
	done := make(chan uint64)
	n := int64(b.N)
	go func() {
		pin(b, cpus[1]) // the thread ends with the goroutine, locked
		var sink uint64
		for i := range n {
			for turn.Load() != 2*i+1 {
			}
			s := dst[int(i%slots)*size:][:size]
			for j := 0; j+8 <= len(s); j += 64 {
				sink += *(*uint64)(unsafe.Pointer(&s[j]))
			}
			turn.Store(2*i + 2)
		}
		done <- sink
	}()
	pin(b, cpus[0])
	b.ResetTimer()
	for i := range n {
		d := dst[int(i%slots)*size+8:][:size-8]
		if useCopy {
			Copy(d, src)
		} else {
			copy(d, src)
		}
		turn.Store(2*i + 1)
		for turn.Load() != 2*i+2 {
		}
	}
	b.StopTimer()
	<-done
}

// twoCPUs returns the first two CPUs this process may run on, and skips b
// unless there are two and GOMAXPROCS lets two goroutines spin at once.
func twoCPUs(b *testing.B) [2]int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		b.Fatal(err)
	}
	var cpus []int
	for c := 0; c < len(set)*64 && len(cpus) < 2; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 || runtime.GOMAXPROCS(0) < 2 {
		b.Skipf("needs two CPUs and GOMAXPROCS >= 2 (CPUs %v, GOMAXPROCS %d)", cpus, runtime.GOMAXPROCS(0))
	}
	return [2]int{cpus[0], cpus[1]}
}

// pin locks the calling goroutine to its thread and the thread to cpu.
func pin(b *testing.B, cpu int) {
	runtime.LockOSThread()
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		b.Error(err)
	}
}

func pageAligned(n int) []byte {
	b := make([]byte, n+4096)
	off := -int(uintptr(unsafe.Pointer(&b[0]))) & 4095
	return b[off : off+n]
}

// buildFloor builds testdata/floor.c in dir.
func buildFloor(dir string) (string, error) {
	exe := filepath.Join(dir, "floor")
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-pthread", "-o", exe, "testdata/floor.c").CombinedOutput(); err != nil {
		return "", fmt.Errorf("no C floor: gcc: %v\n%s", err, out)
	}
	return exe, nil
}

// runFloor runs b.N ops of the C floor and reports its time per op.
func runFloor(b *testing.B, exe string, size int, cpus [2]int) {
	out, err := exec.Command(exe, strconv.Itoa(size), strconv.Itoa(b.N), strconv.Itoa(cpus[0]), strconv.Itoa(cpus[1])).Output()
	if err != nil {
		b.Fatalf("%s: %v", exe, err)
	}
	ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		b.Fatalf("%s printed %q", exe, out)
	}
	b.ReportMetric(ns, "ns/op")
	b.ReportMetric(float64(size)/ns*1e9/1e6, "MB/s")
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
