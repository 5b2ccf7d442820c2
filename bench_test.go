package shmmap

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap/internal/bytesum"
	"github.com/shmmap-go/shmmap/internal/shm"
	"golang.org/x/sys/unix"
)

// The benchmarks are the workloads of ../shared/peers (see cmd/shmbench for
// the same workloads in the peers' JSON form, run beside C, Python and node).

func init() {
	registerHelper("sum", helperSum)
	registerHelper("noop", func(...string) error { return nil })
}

var sizes = []struct {
	name string
	size int
}{{"4KiB", 4 << 10}, {"1MiB", 1 << 20}}

func BenchmarkCreateRelease(b *testing.B) {
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				key, _, err := Create(s.size)
				if err != nil {
					b.Fatal(err)
				}
				if err := Release(key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCreateReleaseAnonymous is BenchmarkCreateRelease for an
// anonymous segment: CreateAnonymous and Close.
func BenchmarkCreateReleaseAnonymous(b *testing.B) {
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, err := CreateAnonymous(s.size)
				if err != nil {
					b.Fatal(err)
				}
				if err := m.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCreateReleaseParallel runs create_release in 1, 2, 4 and 8
// goroutines at once; ns/op is wall time over all ops, so perfect scaling on
// n cores divides it by min(goroutines, n).
func BenchmarkCreateReleaseParallel(b *testing.B) {
	for _, g := range []int{1, 2, 4, 8} {
		b.Run("goroutines="+strconv.Itoa(g), func(b *testing.B) {
			b.ReportAllocs()
			var wg sync.WaitGroup
			for i := range g {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := i; j < b.N; j += g {
						key, _, err := Create(4096)
						if err == nil {
							err = Release(key)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

func BenchmarkAttachRelease(b *testing.B) {
	for _, s := range sizes {
		b.Run(s.name, func(b *testing.B) {
			key := foreignSegment(b, s.size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ReadWrite(key, s.size); err != nil {
					b.Fatal(err)
				}
				if err := Release(key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// foreignSegment makes a segment outside the table, as another program
// would: a Release in the creating process would remove its name. Its key
// has 22 bytes, within every system's limit (macOS: 31).
func foreignSegment(b testing.TB, size int) string {
	key := fmt.Sprintf("/shmb_%016x", time.Now().UnixNano())
	fd, err := shm.OpenName(key, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shm.UnlinkName(key) })
	defer unix.Close(fd)
	if _, err := shm.InitSegment(fd, size); err != nil {
		b.Fatal(err)
	}
	return key
}

const bigSize = 256 << 20

// BenchmarkFirstTouch: Create 256 MiB, write one byte per 4 KiB page,
// Release; MB/s is the segment's size over the whole op.
func BenchmarkFirstTouch(b *testing.B) {
	for _, populate := range []bool{false, true} {
		b.Run(populateName(populate), func(b *testing.B) {
			b.SetBytes(bigSize)
			b.ReportAllocs()
			for b.Loop() {
				key, data, err := Create(bigSize, populateOpts(populate)...)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < len(data); off += 4096 {
					data[off] = 1
				}
				if err := Release(key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCrossProcess: the parent fills 256 MiB with 1s; a child (the
// test binary re-executed) attaches by key, sums every byte and detaches.
// ns/op is spawn to exit; child-GB/s is the child's own attach+sum+release
// and spawn-ns the cost of starting a child that does nothing.
func BenchmarkCrossProcess(b *testing.B) {
	for _, populate := range []bool{false, true} {
		b.Run(populateName(populate), func(b *testing.B) {
			key, data, err := Create(bigSize, populateOpts(populate)...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { Release(key) })
			for i := range data {
				data[i] = 1
			}
			var spawn, child time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				start := time.Now()
				if out, err := helperCommand(b, "noop").CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
				spawn += time.Since(start)
				b.StartTimer()
				out, err := helperCommand(b, "sum", key, strconv.Itoa(bigSize), strconv.FormatBool(populate)).Output()
				if err != nil {
					b.Fatal(err)
				}
				var ns, sum int64
				if _, err := fmt.Sscan(string(out), &ns, &sum); err != nil || sum != bigSize {
					b.Fatalf("child printed %q, want its time and a sum of %d", out, bigSize)
				}
				child += time.Duration(ns)
			}
			b.ReportMetric(float64(bigSize)*float64(b.N)/float64(child.Nanoseconds()), "child-GB/s")
			b.ReportMetric(float64(spawn.Nanoseconds())/float64(b.N), "spawn-ns")
		})
	}
}

// helperSum KEY SIZE POPULATE: maps KEY read-only, sums its bytes and
// prints the time that took (attach to release) and the sum.
func helperSum(args ...string) error {
	start := time.Now()
	size, _ := strconv.Atoi(args[1])
	data, err := Read(args[0], size, populateOpts(args[2] == "true")...)
	if err != nil {
		return err
	}
	sum := bytesum.Sum(data)
	if err := Release(args[0]); err != nil {
		return err
	}
	fmt.Println(time.Since(start).Nanoseconds(), sum)
	return nil
}

func populateName(populate bool) string {
	if populate {
		return "populate"
	}
	return "plain"
}

func populateOpts(populate bool) []Option {
	if populate {
		return []Option{Populate()}
	}
	return nil
}
