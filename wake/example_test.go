package wake_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmmap-go/shmmap"
	"github.com/shmmap-go/shmmap/wake"
)

// One side waits until a word of a segment says "ready", the other sets it
// and wakes the sleeper. Here both sides are goroutines of one process, for
// brevity; in real use the waiter is another process, which maps the
// segment by key, and the same code runs there.
func Example() {
	key, data, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	words, err := shmmap.View[uint32](data)
	if err != nil {
		log.Fatal(err)
	}
	ready := &words[0] // both sides agree on the offset, not the address

	done := make(chan struct{})
	go func() { // the waiting side
		defer close(done)
		for atomic.LoadUint32(ready) == 0 { // Wait may return early: loop
			if err := wake.Wait(context.Background(), ready, 0); err != nil {
				log.Fatal(err)
			}
		}
		fmt.Println("ready:", atomic.LoadUint32(ready))
	}()

	atomic.StoreUint32(ready, 1) // the other side: change the word, then wake
	if _, err := wake.Wake(ready, 1); err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: ready: 1
}

// Cancelling the context wakes the sleeper, which returns ctx.Err().
func ExampleWait() {
	key, data, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	words, _ := shmmap.View[uint32](data)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	err = wake.Wait(ctx, &words[0], 0) // no one will change the word
	fmt.Println(err)
	// Output: context canceled
}

// A waiter that must look at something else now and then (is its peer
// still alive?) sleeps with a deadline, and loops.
func ExampleWaitUntil() {
	key, data, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	words, _ := shmmap.View[uint32](data)

	for try := 1; atomic.LoadUint32(&words[0]) == 0 && try <= 3; try++ {
		err := wake.WaitUntil(context.Background(), &words[0], 0, time.Now().Add(10*time.Millisecond))
		if errors.Is(err, os.ErrDeadlineExceeded) {
			fmt.Println("no news; is the peer alive? yes")
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// no news; is the peer alive? yes
	// no news; is the peer alive? yes
	// no news; is the peer alive? yes
}

// Wake says how many it woke: here no one waits.
// A worker process waits for the next job number that its parent, another
// process, writes into a segment: WaitPeer, since no goroutine of the
// worker changes the word.
func ExampleWaitPeer() {
	key, data, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	words, _ := shmmap.View[uint32](data)

	err = wake.WaitPeer(context.Background(), &words[0], 0, time.Now().Add(10*time.Millisecond))
	fmt.Println(errors.Is(err, os.ErrDeadlineExceeded), atomic.LoadUint32(&words[0]))
	// Output:
	// true 0
}

func ExampleWake() {
	key, data, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)
	words, _ := shmmap.View[uint32](data)

	atomic.AddUint32(&words[0], 1)
	n, err := wake.Wake(&words[0], 0) // 0: all of them
	fmt.Println(n, err)
	// Output: 0 <nil>
}

// An address that is nil or not a multiple of 4 is an error, not a fault.
func Example_errors() {
	key, data, err := shmmap.Create(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer shmmap.Release(key)

	odd := (*uint32)(unsafe.Pointer(&data[1]))
	_, err = wake.Wake(odd, 1)
	fmt.Println(errors.Is(err, wake.ErrAddress))
	err = wake.Wait(context.Background(), nil, 0)
	fmt.Println(errors.Is(err, wake.ErrAddress))
	// Output:
	// true
	// true
}
