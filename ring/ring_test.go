package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmmap-go/shmmap"
)

// prompt bounds how long a test waits for what must happen at once: generous,
// for a noisy shared machine.
const prompt = 5 * time.Second

// pair makes a ring of capacity bytes and opens its other end in this
// process; both are closed in cleanup.
func pair(t *testing.T, capacity int) (*Producer, *Consumer) {
	t.Helper()
	p, err := CreateProducer(capacity)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenConsumer(p.Key())
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		p.Close()
	})
	return p, c
}

// send reserves, fills with message i and commits n bytes.
func send(t *testing.T, p *Producer, n int, i uint64) {
	t.Helper()
	b, err := p.Reserve(context.Background(), n)
	if err != nil {
		t.Fatalf("Reserve(%d): %v", n, err)
	}
	fill(b, i)
	p.Commit(len(b))
}

// receive reads, checks and releases message i of n bytes.
func receive(t *testing.T, c *Consumer, n int, i uint64) {
	t.Helper()
	b, err := c.Next(context.Background())
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if err := check(b, i, n, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	c.Release()
}

// TestWrapAround: records of every size meet the end of a small buffer, and
// the 32-bit positions pass 2^32, with every message intact and in order;
// the largest message fits wherever the tail stands.
func TestWrapAround(t *testing.T) {
	keys := checkLeaks(t)
	p, err := CreateProducer(256)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, p.Key())
	defer p.Close()
	start := uint32(1<<32 - 1008)
	atomic.StoreUint32(p.e.tail, start)
	atomic.StoreUint32(p.e.head, start)
	p.tail, p.head = start, start
	c, err := OpenConsumer(p.Key())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p.MaxMessage() != 240 || c.MaxMessage() != 240 {
		t.Fatalf("MaxMessage: %d, %d, want 240", p.MaxMessage(), c.MaxMessage())
	}
	// The largest message after a padding record waits for the consumer
	// to pass the padding: the producer needs a goroutine of its own.
	sent := make(chan error, 1)
	go func() {
		var i uint64
		for n := 0; n <= 240; n++ {
			for _, size := range []int{n, 240} { // the largest, after a tail at every offset
				b, err := p.Reserve(context.Background(), size)
				if err != nil {
					sent <- err
					return
				}
				fill(b, i)
				p.Commit(len(b))
				i++
			}
		}
		sent <- nil
	}()
	var i uint64
	for n := 0; n <= 240; n++ {
		receive(t, c, n, i)
		receive(t, c, 240, i+1)
		i += 2
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if atomic.LoadUint32(p.e.tail) > start {
		t.Fatalf("tail %d never passed 2^32", atomic.LoadUint32(p.e.tail))
	}
}

// TestPaddingWithMessage: a message that wraps goes to the consumer in one
// store of tail with its padding record, when both fit (one wake-up at
// most, not two), up to a message that exactly fills the ring after its
// padding; nothing is published before Commit, neither tail nor a stamp
// that a consumer would take.
func TestPaddingWithMessage(t *testing.T) {
	for _, n := range []int{100, 200} { // 32 bytes left: padding, then 16+n at 0
		p, c := pair(t, 256)
		send(t, p, 200, 0) // a record of 224
		receive(t, c, 200, 0)
		b, err := p.Reserve(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		if got := atomic.LoadUint32(p.e.tail); got != 224 {
			t.Fatalf("Reserve(%d): tail %d, want 224: published before Commit", n, got)
		}
		done, cancel := context.WithCancel(context.Background())
		cancel()
		if m, err := c.Next(done); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after Reserve(%d): %d bytes, %v; want nothing before Commit", n, len(m), err)
		}
		if c.next != 224 {
			t.Fatalf("the consumer took records up to %d after Reserve(%d), want none past 224", c.next, n)
		}
		fill(b, 1)
		p.Commit(len(b))
		if got, want := atomic.LoadUint32(p.e.tail), uint32(256+recordHead+align(n)); got != want {
			t.Fatalf("tail %d after Commit of %d bytes, want %d", got, n, want)
		}
		receive(t, c, n, 1)
	}
}

// noPoll makes waiting ends sleep without a limit for the rest of t, so
// that only a wake-up can end a wait: a lost one fails the test.
func noPoll(t *testing.T) { setPoll(t, time.Hour) }

// setPoll makes the poller's rounds d apart for the rest of t, from now:
// a round already set is moved too.
func setPoll(t *testing.T, d time.Duration) {
	old := time.Duration(pollInterval.Swap(int64(d)))
	movePoll(d)
	t.Cleanup(func() {
		pollInterval.Store(int64(old))
		movePoll(old)
	})
}

// movePoll sets the poller's next round, if one is set, d from now.
func movePoll(d time.Duration) {
	poll.mu.Lock()
	defer poll.mu.Unlock()
	if poll.running.Load() {
		poll.timer.Reset(d)
	}
}

// TestEmptyBlocks: Next on an empty ring sleeps (it says so in the
// consumer-sleeping word) until a Commit wakes it.
func TestEmptyBlocks(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	p, c := pair(t, 4096)
	got := make(chan error, 1)
	go func() {
		b, err := c.Next(context.Background())
		if err == nil {
			err = check(b, 7, 100, make([]byte, 100))
			c.Release()
		}
		got <- err
	}()
	waitWord(t, word(p.e.seg, offConsSleep), 1)
	select {
	case err := <-got:
		t.Fatalf("Next returned %v from an empty ring", err)
	case <-time.After(50 * time.Millisecond):
	}
	send(t, p, 100, 7)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(prompt):
		t.Fatal("Commit did not wake Next")
	}
}

// counts returns how many waits have slept and wake-ups have been sent in
// this process since the last call.
func counts() (slept, woke int64) { return sleeps.Swap(0), wakeups.Swap(0) }

// TestAwakeNoSyscall: ends that keep up with each other never sleep and
// never wake each other, so they make no system call: a Commit wakes only a
// consumer that sleeps, a Release only a producer that sleeps, each with
// one wake-up; a spinning end that sees the word move makes none either.
func TestAwakeNoSyscall(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	p, c := pair(t, 1<<16)
	counts()
	for i := range 1000 { // the consumer is awake (busy elsewhere)
		send(t, p, 32, uint64(i))
	}
	for i := range 1000 { // the producer is awake
		receive(t, c, 32, uint64(i))
	}
	if slept, woke := counts(); slept != 0 || woke != 0 {
		t.Fatalf("2000 calls between awake ends: %d sleeps, %d wake-ups; want none", slept, woke)
	}

	next := func() chan error {
		got := make(chan error, 1)
		go func() {
			b, err := c.Next(context.Background())
			if err == nil {
				err = check(b, 1000, 32, make([]byte, 32))
				c.Release()
			}
			got <- err
		}()
		return got
	}
	got := next()
	waitWord(t, word(p.e.seg, offConsSleep), 1)
	send(t, p, 32, 1000)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if slept, woke := counts(); slept != 1 || woke != 1 {
		t.Fatalf("a sleeping consumer: %d sleeps, %d wake-ups; want 1 and 1", slept, woke)
	}

	// Spinning: the consumer watches for up to a minute, and the message
	// comes in 20 ms.
	old := maxSpin
	maxSpin = time.Minute
	defer func() { maxSpin = old }()
	c.SetSpin(time.Minute)
	defer c.SetSpin(0)
	got = next()
	time.Sleep(20 * time.Millisecond)
	if atomic.LoadUint32(word(p.e.seg, offConsSleep)) != 0 {
		t.Fatal("a spinning consumer says it sleeps")
	}
	send(t, p, 32, 1000)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if slept, woke := counts(); slept != 0 || woke != 0 {
		t.Fatalf("a spinning consumer: %d sleeps, %d wake-ups; want none", slept, woke)
	}
}

// TestSpinBounded: a spin ends after its time, and the end then sleeps as
// it would without one, to be woken by a Commit.
func TestSpinBounded(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	p, c := pair(t, 4096)
	c.SetSpin(5 * time.Millisecond)
	counts()
	got := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Next(context.Background())
		if err == nil {
			c.Release()
		}
		got <- err
	}()
	waitWord(t, word(p.e.seg, offConsSleep), 1)
	if d := time.Since(start); d < 5*time.Millisecond {
		t.Errorf("slept after %v, before the spin of 5ms ended", d)
	}
	send(t, p, 8, 0)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if slept, woke := counts(); slept != 1 || woke != 1 {
		t.Fatalf("%d sleeps, %d wake-ups; want 1 and 1", slept, woke)
	}
}

// TestSpinLimits: a spin asked for an hour lasts 10 ms, and a context that
// has ended ends a spin at once rather than at its end.
func TestSpinLimits(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	p, c := pair(t, 4096)
	c.SetSpin(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := c.Next(ctx)
		got <- err
	}()
	waitWord(t, word(p.e.seg, offConsSleep), 1) // asleep, well before an hour
	cancel()
	if err := <-got; err != context.Canceled {
		t.Fatalf("Next: %v, want context.Canceled", err)
	}
	start := time.Now()
	for range 100 { // 1 s if each spun its 10 ms
		if _, err := c.Next(ctx); err != context.Canceled {
			t.Fatalf("Next with an ended context: %v", err)
		}
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("100 Nexts with an ended context took %v: the spins ran on", d)
	}
}

// TestFullBlocks: Reserve on a full ring sleeps until a Release makes room.
func TestFullBlocks(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	p, c := pair(t, 256)
	send(t, p, 200, 1)
	got := make(chan error, 1)
	go func() {
		b, err := p.Reserve(context.Background(), 200)
		if err == nil {
			fill(b, 2)
			p.Commit(len(b))
		}
		got <- err
	}()
	waitWord(t, word(p.e.seg, offProdSleep), 1)
	select {
	case err := <-got:
		t.Fatalf("Reserve returned %v on a full ring", err)
	case <-time.After(50 * time.Millisecond):
	}
	receive(t, c, 200, 1)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(prompt):
		t.Fatal("Release did not wake Reserve")
	}
	receive(t, c, 200, 2)
}

// waitWord waits until *w holds v: a side has published that it sleeps.
func waitWord(t *testing.T, w *uint32, v uint32) {
	t.Helper()
	for end := time.Now().Add(prompt); atomic.LoadUint32(w) != v; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("word still %d after %v, want %d", atomic.LoadUint32(w), prompt, v)
		}
	}
}

// TestContext: a waiting Next and a waiting Reserve return ctx.Err() when
// their context is cancelled or its deadline passes, and the ring works on.
func TestContext(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	p, c := pair(t, 256)
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Next", func(ctx context.Context) error { _, err := c.Next(ctx); return err }},
		{"Reserve", func(ctx context.Context) error { _, err := p.Reserve(ctx, 200); return err }},
	} {
		if tc.name == "Reserve" {
			send(t, p, 200, 1) // full now
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if err := tc.call(ctx); err != context.DeadlineExceeded {
			t.Errorf("%s past its deadline: got %v, want %v", tc.name, err, context.DeadlineExceeded)
		}
		cancel()
		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		if err := tc.call(ctx); err != context.Canceled {
			t.Errorf("%s cancelled: got %v, want %v", tc.name, err, context.Canceled)
		}
		if d := time.Since(start); d > prompt {
			t.Errorf("%s returned %v after it was cancelled", tc.name, d)
		}
	}
	receive(t, c, 200, 1)
	send(t, p, 200, 2)
	receive(t, c, 200, 2)
}

// TestCreatorWaitsForOpener: a creator's wait that outlasts several
// liveness polls before anyone has opened the ring ends with its context,
// not ErrPeerGone: a peer that has not come yet has not died.
func TestCreatorWaitsForOpener(t *testing.T) {
	keys := checkLeaks(t)
	setPoll(t, 5*time.Millisecond)
	wait := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 100*time.Millisecond)
	}

	c, err := CreateConsumer(256)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, c.Key())
	defer c.Close()
	ctx, cancel := wait()
	defer cancel()
	if _, err := c.Next(ctx); err != context.DeadlineExceeded {
		t.Errorf("Next of a creator that nobody joined: %v, want %v", err, context.DeadlineExceeded)
	}

	p, err := CreateProducer(256)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, p.Key())
	defer p.Close()
	send(t, p, 200, 0) // full
	ctx, cancel = wait()
	defer cancel()
	if _, err := p.Reserve(ctx, 200); err != context.DeadlineExceeded {
		t.Errorf("Reserve of a creator that nobody joined: %v, want %v", err, context.DeadlineExceeded)
	}
}

// TestSizes: a size out of range is an error at once, wrapping
// shmmap.ErrInvalidSize, and ErrTooLarge too if and only if it is too
// large: a message longer than MaxMessage, a capacity above 1 GiB; not a
// negative length, or a capacity of 0 or below.
func TestSizes(t *testing.T) {
	checkLeaks(t)
	p, _ := pair(t, 1000) // rounded up to 1024
	if p.MaxMessage() != 1008 {
		t.Fatalf("MaxMessage %d, want 1008", p.MaxMessage())
	}
	ctx, cancel := context.WithTimeout(context.Background(), prompt)
	defer cancel()
	check := func(call string, err error, tooLarge bool) {
		t.Helper()
		if !errors.Is(err, shmmap.ErrInvalidSize) || errors.Is(err, ErrTooLarge) != tooLarge {
			t.Errorf("%s: got %v; want shmmap.ErrInvalidSize, and ErrTooLarge: %v", call, err, tooLarge)
		}
	}
	for _, n := range []int{1009, math.MaxInt, -1, math.MinInt} {
		_, err := p.Reserve(ctx, n)
		check(fmt.Sprintf("Reserve(%d)", n), err, n > 0)
	}
	for _, n := range []int{0, -1, math.MinInt, 1<<30 + 1, math.MaxInt} {
		p, err := CreateProducer(n)
		if err == nil {
			p.Close()
		}
		check(fmt.Sprintf("CreateProducer(%d)", n), err, n > 0)
		c, err := CreateConsumer(n)
		if err == nil {
			c.Close()
		}
		check(fmt.Sprintf("CreateConsumer(%d)", n), err, n > 0)
	}
}

// TestClose: the consumer reads what the producer committed before it
// closed, then io.EOF; a producer whose consumer has closed gets ErrPeerGone
// when it waits; every call on a closed end is ErrClosed.
func TestClose(t *testing.T) {
	checkLeaks(t)
	noPoll(t)
	p, c := pair(t, 256)
	send(t, p, 10, 1)
	send(t, p, 20, 2)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	receive(t, c, 10, 1)
	receive(t, c, 20, 2)
	ctx, cancel := context.WithTimeout(context.Background(), prompt)
	defer cancel()
	if _, err := c.Next(ctx); err != io.EOF {
		t.Fatalf("Next after the producer closed: got %v, want io.EOF", err)
	}
	if _, err := p.Reserve(context.Background(), 1); err != ErrClosed {
		t.Fatalf("Reserve after Close: got %v, want ErrClosed", err)
	}
	if err := p.Close(); err != ErrClosed {
		t.Fatalf("second Close: got %v, want ErrClosed", err)
	}

	p, c = pair(t, 256)
	send(t, p, 200, 1)
	closed := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { c.Close(); close(closed) })
	if _, err := p.Reserve(context.Background(), 200); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("Reserve after the consumer closed: got %v, want ErrPeerGone", err)
	}
	<-closed
	if _, err := c.Next(context.Background()); err != ErrClosed {
		t.Fatalf("Next after Close: got %v, want ErrClosed", err)
	}
}

// TestOpenErrors: Open tells a segment that is no ring, a ring of another
// version, a damaged header, a truncated segment, a taken end and a missing
// or malformed key apart, and leaves the segment as it was.
func TestOpenErrors(t *testing.T) {
	keys := checkLeaks(t)
	if runtime.GOOS != "linux" {
		t.Skip("damages segments through /dev/shm")
	}
	key, data, err := shmmap.Create(4096)
	if err != nil {
		t.Fatal(err)
	}
	*keys = append(*keys, key)
	defer shmmap.Release(key)
	data[0] = 'x'
	if _, err := OpenConsumer(key); !errors.Is(err, ErrCorrupt) {
		t.Errorf("OpenConsumer of a plain segment: got %v, want ErrCorrupt", err)
	}
	if data[0] != 'x' {
		t.Error("a failed Open changed the segment")
	}

	for _, tc := range []struct {
		name   string
		damage func(seg []byte, key string)
		want   error
	}{
		{"version-1", func(seg []byte, _ string) { *word(seg, offVersion) = 1 }, ErrVersion}, // unstamped records
		{"version-next", func(seg []byte, _ string) { *word(seg, offVersion) = version + 1 }, ErrVersion},
		{"magic", func(seg []byte, _ string) { seg[3] = 'X' }, ErrCorrupt},
		{"capacity", func(seg []byte, _ string) { *word(seg, offCapacity) = 1000 }, ErrCorrupt},
		{"capacity-too-large", func(seg []byte, _ string) { *word(seg, offCapacity) = 1 << 20 }, ErrCorrupt},
		{"header-size", func(seg []byte, _ string) { *word(seg, offHeaderSize) = 256 }, ErrCorrupt},
		{"alignment", func(seg []byte, _ string) { *word(seg, offAlign) = 4 }, ErrCorrupt},
		{"role", func(seg []byte, _ string) { *word(seg, offCreatorEnd) = 3 }, ErrCorrupt},
		{"truncated-buffer", func(_ []byte, key string) { truncate(t, key, HeaderSize+100) }, ErrCorrupt},
		{"truncated-header", func(_ []byte, key string) { truncate(t, key, 100) }, ErrCorrupt},
		{"taken", func([]byte, string) {}, ErrBusy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := CreateProducer(4096)
			if err != nil {
				t.Fatal(err)
			}
			*keys = append(*keys, p.Key())
			defer p.Close()
			tc.damage(p.e.seg, p.Key())
			if tc.want == ErrBusy {
				if _, err := OpenProducer(p.Key()); !errors.Is(err, ErrBusy) {
					t.Errorf("OpenProducer of the producer's ring: got %v, want ErrBusy", err)
				}
				c, err := OpenConsumer(p.Key())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			if _, err := OpenConsumer(p.Key()); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}

	if _, err := OpenConsumer("/shmring-test-no-such-key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing key: got %v, want fs.ErrNotExist", err)
	}
	if _, err := OpenConsumer("/a/../b"); !errors.Is(err, shmmap.ErrInvalidKey) {
		t.Errorf("a key with a slash: got %v, want shmmap.ErrInvalidKey", err)
	}
}

// truncate shrinks segment key to size bytes (only the header page is
// touched afterwards, so the creator's mapping does not fault).
func truncate(t *testing.T, key string, size int64) {
	t.Helper()
	if err := os.Truncate(testShmDir+key, size); err != nil {
		t.Fatal(err)
	}
}

// TestNoAllocations: a message through the ring allocates nothing, when no
// side has to wait.
func TestNoAllocations(t *testing.T) {
	p, c := pair(t, 1<<16)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		b, err := p.Reserve(ctx, 1000)
		if err != nil {
			panic(err)
		}
		b[0] = 1
		p.Commit(len(b))
		m, err := c.Next(ctx)
		if err != nil || len(m) != 1000 {
			panic(fmt.Sprint(len(m), err))
		}
		c.Release()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message, want 0", allocs)
	}
}
