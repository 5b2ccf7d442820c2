package shmmap

import (
	"go/ast"
	"go/build"
	"go/doc"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocs checks what pkg.go.dev will show: every exported function and
// type has a doc comment and an example, the package has a lifecycle
// example and one for its errors, and the doc of every function that can
// fail says what its errors are.
func TestDocs(t *testing.T) {
	checkLeaks(t)
	// The files of every system the package supports, so that an example
	// that only runs on Linux (List, Sweep) counts on macOS too.
	fset := token.NewFileSet()
	var files []*ast.File
	seen := map[string]bool{}
	for _, goos := range []string{"linux", "darwin"} {
		ctxt := build.Default
		ctxt.GOOS, ctxt.CgoEnabled = goos, false
		pkg, err := ctxt.ImportDir(".", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, names := range [][]string{pkg.GoFiles, pkg.TestGoFiles, pkg.XTestGoFiles} {
			for _, name := range names {
				if seen[name] {
					continue
				}
				seen[name] = true
				f, err := parser.ParseFile(fset, filepath.Join(pkg.Dir, name), nil, parser.ParseComments)
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
			}
		}
	}
	p, err := doc.NewFromFiles(fset, files, "github.com/shmmap-go/shmmap")
	if err != nil {
		t.Fatal(err)
	}

	examples := map[string]bool{}
	for _, ex := range p.Examples {
		examples["package "+ex.Suffix] = true
	}
	for _, want := range []string{"package ", "package errors"} {
		if !examples[want] {
			t.Errorf("no %s example", strings.TrimSpace(want))
		}
	}

	funcs := p.Funcs
	for _, typ := range p.Types {
		funcs = append(funcs, typ.Funcs...)
		if typ.Doc == "" {
			t.Errorf("type %s has no doc comment", typ.Name)
		}
		if len(typ.Examples) == 0 {
			t.Errorf("type %s has no example", typ.Name)
		}
	}
	for _, fn := range funcs {
		if fn.Doc == "" {
			t.Errorf("func %s has no doc comment", fn.Name)
		}
		if len(fn.Examples) == 0 {
			t.Errorf("func %s has no example", fn.Name)
		}
		returnsError := false
		if res := fn.Decl.Type.Results; res != nil {
			for _, field := range res.List {
				if id, ok := field.Type.(*ast.Ident); ok && id.Name == "error" {
					returnsError = true
				}
			}
		}
		if returnsError && !strings.Contains(strings.ToLower(fn.Doc), "error") {
			t.Errorf("func %s returns an error but its doc does not say which", fn.Name)
		}
	}
	for _, v := range p.Vars {
		if v.Doc == "" {
			t.Errorf("var %s has no doc comment", strings.Join(v.Names, ", "))
		}
	}
}
