package ring

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

// TestDocs checks what pkg.go.dev will show, as package shmmap's test of
// the same name does: every exported function has a doc comment and an
// example, the package has a usage example and one for its errors, every
// exported variable has a doc comment, and the doc of every function that
// can fail says what its errors are.
func TestDocs(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, names := range [][]string{pkg.GoFiles, pkg.TestGoFiles, pkg.XTestGoFiles} {
		for _, name := range names {
			f, err := parser.ParseFile(fset, filepath.Join(pkg.Dir, name), nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	p, err := doc.NewFromFiles(fset, files, "github.com/shmmap-go/shmmap/ring")
	if err != nil {
		t.Fatal(err)
	}
	if p.Doc == "" {
		t.Error("no package comment")
	}
	examples := map[string]bool{}
	for _, ex := range p.Examples {
		examples[ex.Suffix] = true
	}
	for _, want := range []string{"", "errors"} {
		if !examples[want] {
			t.Errorf("no package example %q", want)
		}
	}
	funcs := p.Funcs
	for _, typ := range p.Types {
		funcs = append(funcs, typ.Funcs...)
		if typ.Doc == "" || len(typ.Examples) == 0 {
			t.Errorf("type %s needs a doc comment and an example", typ.Name)
		}
		for _, m := range typ.Methods {
			if m.Doc == "" {
				t.Errorf("method %s.%s has no doc comment", typ.Name, m.Name)
			}
			if m.Decl.Type.Results != nil {
				for _, field := range m.Decl.Type.Results.List {
					if id, ok := field.Type.(*ast.Ident); ok && id.Name == "error" && !strings.Contains(strings.ToLower(m.Doc), "error") {
						t.Errorf("method %s.%s returns an error but its doc does not say which", typ.Name, m.Name)
					}
				}
			}
		}
	}
	if len(funcs) == 0 {
		t.Error("no exported functions found")
	}
	for _, fn := range funcs {
		if fn.Doc == "" {
			t.Errorf("func %s has no doc comment", fn.Name)
		}
		if len(fn.Examples) == 0 {
			t.Errorf("func %s has no example", fn.Name)
		}
		for _, field := range fn.Decl.Type.Results.List {
			if id, ok := field.Type.(*ast.Ident); ok && id.Name == "error" && !strings.Contains(strings.ToLower(fn.Doc), "error") {
				t.Errorf("func %s returns an error but its doc does not say which", fn.Name)
			}
		}
	}
	for _, v := range append(p.Vars, p.Consts...) {
		if v.Doc == "" {
			t.Errorf("%s has no doc comment", strings.Join(v.Names, ", "))
		}
	}
}
