// Package doccheck checks what pkg.go.dev will show of one of the module's
// packages, for each package's TestDocs: the rules of the house for doc
// comments and examples, in one place.
package doccheck

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

// Check reads the package in the current directory, with the files of every
// system the module supports (Linux and macOS, so that an example that runs
// only on Linux counts everywhere) and the examples of its tests, and fails
// t where:
//   - the package has no comment, or no example of its use (Example) or of
//     its errors (Example_errors);
//   - an exported type, function or method has no doc comment, or a
//     function has no example;
//   - a function or method returns an error and its doc never says which
//     (it never says "error");
//   - an exported variable or constant has no doc comment.
//
// A type needs no example of its own: its constructors and methods show
// it, and an example made only to have one (a constraint, an option type)
// is filler. Nor does an error need the same sentence in every doc: a
// package doc can say once what type its errors are, and each function say
// what it adds ("an error wrapping ErrInvalidSize if ...").
func Check(t *testing.T, importPath string) {
	t.Helper()
	p := read(t, importPath)
	if p.Doc == "" {
		t.Error("no package comment")
	}
	examples := map[string]bool{}
	for _, ex := range p.Examples {
		examples[ex.Suffix] = true
	}
	for _, want := range []string{"", "errors"} {
		if !examples[want] {
			t.Errorf("no package example %q", "Example_"+want)
		}
	}
	funcs := p.Funcs
	for _, typ := range p.Types {
		funcs = append(funcs, typ.Funcs...)
		if typ.Doc == "" {
			t.Errorf("type %s has no doc comment", typ.Name)
		}
		for _, m := range typ.Methods {
			if m.Doc == "" {
				t.Errorf("method %s.%s has no doc comment", typ.Name, m.Name)
			}
			if returnsError(m) && !saysError(m.Doc) {
				t.Errorf("method %s.%s returns an error but its doc does not say which", typ.Name, m.Name)
			}
		}
		for _, v := range append(typ.Vars, typ.Consts...) {
			if v.Doc == "" && !allDocumented(v) {
				t.Errorf("%s has no doc comment", strings.Join(v.Names, ", "))
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
		if returnsError(fn) && !saysError(fn.Doc) {
			t.Errorf("func %s returns an error but its doc does not say which", fn.Name)
		}
	}
	for _, v := range append(p.Vars, p.Consts...) {
		if v.Doc == "" && !allDocumented(v) {
			t.Errorf("%s has no doc comment", strings.Join(v.Names, ", "))
		}
	}
}

// read parses the package in the current directory for every supported
// system, each file once.
func read(t *testing.T, importPath string) *doc.Package {
	t.Helper()
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
	p, err := doc.NewFromFiles(fset, files, importPath)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func returnsError(fn *doc.Func) bool {
	if res := fn.Decl.Type.Results; res != nil {
		for _, field := range res.List {
			if id, ok := field.Type.(*ast.Ident); ok && id.Name == "error" {
				return true
			}
		}
	}
	return false
}

func saysError(doc string) bool { return strings.Contains(strings.ToLower(doc), "error") }

// allDocumented reports whether every name of a var or const group has a
// comment of its own, in the group's block.
func allDocumented(v *doc.Value) bool {
	for _, spec := range v.Decl.Specs {
		if vs, ok := spec.(*ast.ValueSpec); ok && vs.Doc == nil && vs.Comment == nil {
			return false
		}
	}
	return true
}
