package ring

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/shmmap-go/shmmap/internal/doccheck"
)

// TestDocs checks what pkg.go.dev will show: every exported identifier has
// a doc comment, every function an example, and the doc of everything that
// can fail says what its errors are (internal/doccheck has the rules).
func TestDocs(t *testing.T) {
	doccheck.Check(t, "github.com/shmmap-go/shmmap/ring")
}

// TestLayoutDoc: LAYOUT.md, which other runtimes implement the ring from,
// gives the version, the header size and every header field at the offset
// that layout.go uses.
func TestLayoutDoc(t *testing.T) {
	b, err := os.ReadFile("LAYOUT.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	table := map[string]bool{} // "offset field" of each row, spaces collapsed
	for _, line := range strings.Split(doc, "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "    ") && len(f) >= 3 {
			table[strings.Join(f, " ")] = true
		}
	}
	rows := []struct {
		off  int
		want string // the row's start after the offset
	}{
		{offMagic, `8 bytes magic "shmring\x00"`},
		{offVersion, fmt.Sprintf("uint32 version, %d", version)},
		{offHeaderSize, fmt.Sprintf("uint32 header size, %d", HeaderSize)},
		{offCapacity, "uint32 capacity"},
		{offAlign, fmt.Sprintf("uint32 record alignment, %d", recordAlign)},
		{offCreatorEnd, fmt.Sprintf("uint32 the creator's end: %d producer, %d consumer", endProducer, endConsumer)},
		{offState, "uint32 state"},
		{offCreatorPID, "uint32 creator's pid"},
		{offOpenerPID, "uint32 opener's pid"},
		{offCreatorTime, "uint64 creator's start time"},
		{offOpenerTime, "uint64 opener's start time"},
		{offTail, "uint32 tail"},
		{offConsSleep, "uint32 consumer sleeping"},
		{offHead, "uint32 head"},
		{offProdSleep, "uint32 producer sleeping"},
	}
	for _, r := range rows {
		prefix := fmt.Sprintf("%d %s", r.off, r.want)
		found := false
		for row := range table {
			found = found || strings.HasPrefix(row, prefix)
		}
		if !found {
			t.Errorf("LAYOUT.md has no header row %q", prefix)
		}
	}
	if want := fmt.Sprintf("# The ring's layout, version %d", version); !strings.Contains(doc, want) {
		t.Errorf("LAYOUT.md does not say %q", want)
	}
}
