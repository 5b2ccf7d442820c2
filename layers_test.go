package shmmap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLayers: the package's files depend on each other in one direction
// only, on every system: file A depends on file B when A uses a name that B
// declares, and no file depends on itself around a loop. Between packages
// the compiler keeps the layers (the mechanism is internal/shm, which
// imports nothing of this module); within this package only this test
// does. From the top: the key API and its table (shmmap.go), the handover
// and anonymous segments, List and Sweep (sweep.go), the handle (mmap.go),
// keys and views, and at the bottom options, errors and each system's key
// rules.
func TestLayers(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the package for three systems")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	for _, target := range []string{"linux/amd64", "linux/386", "darwin/arm64"} {
		t.Run(target, func(t *testing.T) {
			goos, goarch, _ := strings.Cut(target, "/")
			deps := fileDeps(t, goos, goarch)
			if loop := findLoop(deps); loop != nil {
				t.Errorf("files depend on each other around a loop: %s", strings.Join(loop, " -> "))
				for _, f := range loop[:len(loop)-1] {
					t.Logf("%s uses: %v", f, deps[f])
				}
			}
		})
	}
}

// fileDeps type-checks the package's library files for goos/goarch and
// returns, for each file, the names it uses of each other file.
func fileDeps(t *testing.T, goos, goarch string) map[string]map[string][]string {
	t.Helper()
	env := append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	list := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Export,GoFiles,Dir,Standard", ".")
	list.Env = env
	var stderr bytes.Buffer
	list.Stderr = &stderr
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	type pkg struct {
		ImportPath, Export, Dir string
		GoFiles                 []string
	}
	exports := map[string]string{}
	var self pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
		self = p // the package itself comes last
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range self.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(self.Dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		if exports[path] == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(exports[path])
	})}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	if _, err := conf.Check(self.ImportPath, fset, files, info); err != nil {
		t.Fatal(err)
	}
	deps := map[string]map[string][]string{}
	for id, obj := range info.Uses {
		if obj.Pkg() == nil || obj.Pkg().Path() != self.ImportPath || !obj.Pos().IsValid() {
			continue
		}
		if _, ok := obj.(*types.Var); ok && obj.Parent() != obj.Pkg().Scope() {
			if v := obj.(*types.Var); !v.IsField() {
				continue // a local variable or parameter
			}
		}
		from := filepath.Base(fset.Position(id.Pos()).Filename)
		to := filepath.Base(fset.Position(obj.Pos()).Filename)
		if from == to || strings.HasSuffix(to, ".s") {
			continue
		}
		if deps[from] == nil {
			deps[from] = map[string][]string{}
		}
		if !slices.Contains(deps[from][to], obj.Name()) {
			deps[from][to] = append(deps[from][to], obj.Name())
		}
	}
	return deps
}

// findLoop returns a loop of files in deps, first file repeated at the end,
// or nil.
func findLoop(deps map[string]map[string][]string) []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(f string) []string
	visit = func(f string) []string {
		state[f] = onPath
		path = append(path, f)
		var next []string
		for g := range deps[f] {
			next = append(next, g)
		}
		slices.Sort(next)
		for _, g := range next {
			switch state[g] {
			case onPath:
				i := slices.Index(path, g)
				return append(slices.Clone(path[i:]), g)
			case unseen:
				if loop := visit(g); loop != nil {
					return loop
				}
			}
		}
		path = path[:len(path)-1]
		state[f] = done
		return nil
	}
	var all []string
	for f := range deps {
		all = append(all, f)
	}
	slices.Sort(all)
	for _, f := range all {
		if state[f] == unseen {
			if loop := visit(f); loop != nil {
				return loop
			}
		}
	}
	return nil
}
