package wake

import (
	"testing"

	"github.com/shmmap-go/shmmap/internal/doccheck"
)

// TestDocs checks what pkg.go.dev will show: every exported identifier has
// a doc comment, every function an example, and the doc of everything that
// can fail says what its errors are (internal/doccheck has the rules).
func TestDocs(t *testing.T) {
	doccheck.Check(t, "github.com/shmmap-go/shmmap/wake")
}
