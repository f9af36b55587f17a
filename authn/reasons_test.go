package authn_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestReasonsDocumented: every log reason a backend under authn/ can give
// a refusal or an outage is listed in mppd.conf(5), so an administrator
// (or a fail2ban filter) meets no word the manual does not explain. The
// reasons are found in the source: the string literals passed to Rejected
// and Unavailable, or to a parameter named reason or fallback, returned by
// a function whose name ends in "Reason", or given as a Reason field.
func TestReasonsDocumented(t *testing.T) {
	reasons := map[string]string{} // reason -> where
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			strings.Contains(path, "test"+string(filepath.Separator)) {
			return err
		}
		for r, pos := range reasonsIn(t, path) {
			reasons[r] = pos
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(reasons) < 20 {
		t.Fatalf("found only %d reasons (%v): the source scan is broken", len(reasons), reasons)
	}
	man, err := os.ReadFile("../man/mppd.conf.5")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for r, pos := range reasons {
		if !regexp.MustCompile(`\.(Ql|Qq) `+regexp.QuoteMeta(r)+`( |$)`).Match(man) &&
			!regexp.MustCompile(`(?m)\.(Ql|Qq) `+regexp.QuoteMeta(r)+`$`).Match(man) {
			missing = append(missing, r+" ("+pos+")")
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("log reason %s is not in man/mppd.conf.5", m)
	}
}

// reasonsIn returns the reasons one file can log, with their positions.
func reasonsIn(t *testing.T, path string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	add := func(e ast.Expr) {
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil && s != "" {
				out[s] = fset.Position(lit.Pos()).String()
			}
		}
	}
	// The parameters named reason or fallback of this file's functions.
	reasonParam := map[string]int{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		i := 0
		for _, field := range fd.Type.Params.List {
			for _, n := range field.Names {
				if n.Name == "reason" || n.Name == "fallback" {
					reasonParam[fd.Name.Name] = i
				}
				i++
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			name := ""
			switch fn := n.Fun.(type) {
			case *ast.Ident:
				name = fn.Name
			case *ast.SelectorExpr:
				name = fn.Sel.Name
			}
			if (name == "Rejected" || name == "Unavailable") && len(n.Args) > 0 {
				add(n.Args[0])
			}
			if i, ok := reasonParam[name]; ok && i < len(n.Args) {
				add(n.Args[i])
			}
		case *ast.KeyValueExpr:
			if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Reason" {
				add(n.Value)
			}
		case *ast.FuncDecl:
			if strings.HasSuffix(strings.ToLower(n.Name.Name), "reason") && n.Body != nil {
				ast.Inspect(n.Body, func(m ast.Node) bool {
					if r, ok := m.(*ast.ReturnStmt); ok {
						for _, e := range r.Results {
							add(e)
						}
					}
					return true
				})
			}
		}
		return true
	})
	return out
}
