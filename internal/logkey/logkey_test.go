package logkey

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// events returns the event words declared in logkey.go: the values of its
// constants whose names start with "Event" (Event itself is a key).
func events(t *testing.T) map[string]string {
	t.Helper()
	words := declared(t, func(name string) bool { return name != "Event" && strings.HasPrefix(name, "Event") })
	if len(words) < 20 {
		t.Fatalf("found only %d event words in logkey.go", len(words))
	}
	return words
}

// keys returns the keys declared in logkey.go: every constant that is not
// an event word.
func keys(t *testing.T) map[string]string {
	t.Helper()
	words := declared(t, func(name string) bool { return name == "Event" || !strings.HasPrefix(name, "Event") })
	if len(words) < 8 {
		t.Fatalf("found only %d keys in logkey.go", len(words))
	}
	return words
}

// declared returns the constants of logkey.go whose names keep accepts,
// name to value.
func declared(t *testing.T, keep func(name string) bool) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "logkey.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	words := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !keep(name.Name) {
					continue
				}
				v, err := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				words[name.Name] = v
			}
		}
	}
	return words
}

// loggingSection returns the LOGGING section of mppd(8) as plain text:
// from ".Sh LOGGING" to the next section, macros' names left in.
func loggingSection(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../man/mppd.8")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	start := strings.Index(page, "\n.Sh LOGGING\n")
	if start < 0 {
		t.Fatal("mppd.8 has no LOGGING section")
	}
	sec := page[start+len("\n.Sh LOGGING\n"):]
	if end := strings.Index(sec, "\n.Sh "); end >= 0 {
		sec = sec[:end]
	}
	return sec
}

// Every event word the code can log is listed in mppd(8) LOGGING, where
// operators and their log filters look for it.
func TestEventsDocumented(t *testing.T) {
	sec := loggingSection(t)
	for name, word := range events(t) {
		// A whole word: not part of a longer hyphenated word.
		re := regexp.MustCompile(`(^|[^a-z-])` + regexp.QuoteMeta(word) + `([^a-z-]|$)`)
		if !re.MatchString(sec) {
			t.Errorf("%s (%q) is not listed in mppd(8) LOGGING", name, word)
		}
	}
}

// The code logs events and the shared keys only through this package's
// constants, and never the old synonyms of its keys, so the words above
// are all the event words there are.
func TestOnlyDeclaredWords(t *testing.T) {
	literal := regexp.MustCompile(`"event",\s*"|"ip",|"took",|"elapsed",`)
	for path, src := range sourceFiles(t) {
		for i, line := range strings.Split(string(src), "\n") {
			if m := literal.FindString(line); m != "" {
				t.Errorf("%s:%d: %s written as a literal; use package logkey", path, i+1, m)
			}
		}
	}
}

// sourceFiles returns the module's Go files that are not tests, path to
// contents.
func sourceFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		files[path] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 50 {
		t.Fatalf("found only %d Go files under ../..", len(files))
	}
	return files
}

// A key this package declares is written through its constant, never as a
// string literal, so that renaming one renames it everywhere. The check
// reads every non-test Go file of the module and looks at the arguments of
// calls to methods named Debug, Info, Warn, Error and With (slog's), of
// append, and at []any literals: at every key position (the arguments
// after the message, taken in pairs) a string literal must not be one of
// the keys. A value that happens to be such a word (reason=session) is
// not at a key position and passes.
func TestKeysFromPackage(t *testing.T) {
	byValue := map[string]string{}
	for name, v := range keys(t) {
		byValue[v] = name
	}
	fset := token.NewFileSet()
	for path, src := range sourceFiles(t) {
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		check := func(pairs []ast.Expr) {
			for i := 0; i < len(pairs)-1; i += 2 {
				lit, ok := pairs[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, _ := strconv.Unquote(lit.Value)
				if name, ok := byValue[v]; ok {
					t.Errorf("%s: key %s written as a literal; use logkey.%s", fset.Position(lit.Pos()), lit.Value, name)
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				switch fun := n.Fun.(type) {
				case *ast.SelectorExpr:
					switch fun.Sel.Name {
					case "Debug", "Info", "Warn", "Error":
						if len(n.Args) > 1 {
							check(n.Args[1:])
						}
					case "With":
						check(n.Args)
					}
				case *ast.Ident:
					if fun.Name == "append" && len(n.Args) > 1 {
						check(n.Args[1:])
					}
				}
			case *ast.CompositeLit:
				if at, ok := n.Type.(*ast.ArrayType); ok {
					if id, ok := at.Elt.(*ast.Ident); ok && id.Name == "any" {
						check(n.Elts)
					}
				}
			}
			return true
		})
	}
}
