package wake

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
)

func init() {
	helpers.Register("pong", helperPong)
}

// BenchmarkWakeNone: a Wake with no one waiting, one system call (Linux:
// FUTEX_WAKE; macOS: os_sync_wake_by_address_any or __ulock_wake).
func BenchmarkWakeNone(b *testing.B) {
	_, words := segment(b, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Wake(&words[0], 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitChanged: a Wait on a word that no longer holds the value,
// with a context that can end: no system call, no allocation.
func BenchmarkWaitChanged(b *testing.B) {
	_, words := segment(b, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		if err := Wait(ctx, &words[0], 1); err != nil {
			b.Fatal(err)
		}
	}
}

// The ping-pong layout in a segment, as ../shared/peers' c-futex-shm has
// it: per direction a sequence word and a "someone sleeps" flag, each alone
// on 128 bytes, and a 64-byte message slot; and a word that says stop.
const (
	pingSeq  = 0   // parent to child: message number + 1
	pingFlag = 32  // the child sleeps on pingSeq
	pongSeq  = 64  // child to parent
	pongFlag = 96  // the parent sleeps on pongSeq
	stopWord = 128 // nonzero: the child returns
	slotOff  = 1024
	msgSize  = 64
)

// waitFor sleeps until *seq has reached target (mod 2^32): it raises the
// flag, then looks at seq, and the poster stores seq, then looks at the
// flag (all sequentially consistent), so one of the two sees the other
// and no wake-up is lost; Wait sleeps only while seq is unchanged.
func waitFor(seq, flag *uint32, target uint32) error {
	if int32(atomic.LoadUint32(seq)-target) >= 0 {
		return nil
	}
	atomic.StoreUint32(flag, 1)
	for {
		v := atomic.LoadUint32(seq)
		if int32(v-target) >= 0 {
			break
		}
		if err := Wait(context.Background(), seq, v); err != nil {
			return err
		}
	}
	atomic.StoreUint32(flag, 0)
	return nil
}

// post publishes *seq = v and wakes the other side only if it sleeps.
func post(seq, flag *uint32, v uint32) error {
	atomic.StoreUint32(seq, v)
	if atomic.LoadUint32(flag) != 0 {
		_, err := Wake(seq, 1)
		return err
	}
	return nil
}

// message writes message i into slot: a fixed pattern with i in its first
// and last 8 bytes, as the peers' messages are.
func message(slot []byte, i uint64) {
	for j := 8; j < len(slot)-8; j++ {
		slot[j] = byte(j)
	}
	binary.LittleEndian.PutUint64(slot, i)
	binary.LittleEndian.PutUint64(slot[len(slot)-8:], i)
}

// checkMessage reads every byte of slot and checks it is message i.
func checkMessage(slot []byte, i uint64) error {
	var sum uint64
	for j := 0; j < len(slot); j += 8 {
		sum += binary.LittleEndian.Uint64(slot[j:])
	}
	var want [msgSize]byte
	message(want[:], i)
	var wantSum uint64
	for j := 0; j < msgSize; j += 8 {
		wantSum += binary.LittleEndian.Uint64(want[j:])
	}
	if sum != wantSum {
		return fmt.Errorf("message %d: checksum %#x, want %#x", i, sum, wantSum)
	}
	return nil
}

// helperPong KEY CPU answers pings until told to stop: it receives and
// checks message i, then sends it back. CPU >= 0 pins the process there.
func helperPong(args ...string) error {
	if cpu, _ := strconv.Atoi(args[1]); cpu >= 0 {
		if _, err := pinProcess(cpu); err != nil {
			return err
		}
	}
	data, err := shmmap.ReadWrite(args[0], 0)
	if err != nil {
		return err
	}
	w, err := shmmap.View[uint32](data)
	if err != nil {
		return err
	}
	in, out := data[slotOff:slotOff+msgSize], data[slotOff+msgSize:slotOff+2*msgSize]
	for i := uint64(0); ; i++ {
		if err := waitFor(&w[pingSeq], &w[pingFlag], uint32(i+1)); err != nil {
			return err
		}
		if atomic.LoadUint32(&w[stopWord]) != 0 {
			return nil
		}
		if err := checkMessage(in, i); err != nil {
			return err
		}
		message(out, i)
		if err := post(&w[pongSeq], &w[pongFlag], uint32(i+1)); err != nil {
			return err
		}
	}
}

// BenchmarkPingPong: round trips of a 64-byte message between this process
// and a child, each side sleeping in Wait until the other posts, the
// workload of ../shared/peers' "pingpong" at 64 B (c-futex-shm is the C
// floor). ns/oneway is the median round trip / 2, as the peers report it;
// SHMMAP_PEERS_PIN=same or split pins both processes as the peers do.
func BenchmarkPingPong(b *testing.B) {
	key, w := segment(b, 4096)
	data := shmmap.Bytes(w)
	parentCPU, childCPU := -1, -1
	if mode := os.Getenv("SHMMAP_PEERS_PIN"); mode != "" {
		cpus, err := allowedCPUs()
		if err != nil {
			b.Fatal(err)
		}
		switch {
		case mode == "same":
			parentCPU, childCPU = cpus[0], cpus[0]
		case mode == "split" && len(cpus) > 1:
			parentCPU, childCPU = cpus[0], cpus[1]
		default:
			b.Fatalf("SHMMAP_PEERS_PIN=%s with CPUs %v", mode, cpus)
		}
		restore, err := pinProcess(parentCPU)
		if err != nil {
			b.Fatal(err)
		}
		defer restore()
	}
	c := helpers.Start(b, "pong", key, strconv.Itoa(childCPU))
	out, in := data[slotOff:slotOff+msgSize], data[slotOff+msgSize:slotOff+2*msgSize]
	var i uint64
	roundTrip := func() error {
		message(out, i)
		if err := post(&w[pingSeq], &w[pingFlag], uint32(i+1)); err != nil {
			return err
		}
		if err := waitFor(&w[pongSeq], &w[pongFlag], uint32(i+1)); err != nil {
			return err
		}
		err := checkMessage(in, i)
		i++
		return err
	}
	for range 1000 { // warm up: both sides running, pages touched
		if err := roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := roundTrip(); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.StopTimer()
	atomic.StoreUint32(&w[stopWord], 1)
	if err := post(&w[pingSeq], &w[pingFlag], uint32(i+1)); err != nil {
		b.Fatal(err)
	}
	c.Wait(b)
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds())/2, "ns/oneway")
	b.ReportMetric(float64(times[0].Nanoseconds())/2, "ns/oneway-min")
	b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds())/2, "ns/oneway-p99")
}
