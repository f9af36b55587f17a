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
				if name.Name == "Event" || !strings.HasPrefix(name.Name, "Event") {
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
	if len(words) < 20 {
		t.Fatalf("found only %d event words in logkey.go", len(words))
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
	root := "../.."
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := literal.FindString(line); m != "" {
				t.Errorf("%s:%d: %s written as a literal; use package logkey", path, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
