package config

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the import graph flowing one way: this package
// describes the file, cmd/mppd builds from it, and the backends and the
// engine read their sections from it. So nothing it depends on, directly
// or not, may be a backend, an interface package, the engine or a command:
// of this module, only other internal packages.
func TestImports(t *testing.T) {
	// go test puts the go command it runs with first on the test's PATH.
	for _, tags := range []string{"", "pam integration"} {
		out, err := exec.Command("go", "list", "-deps", "-tags", tags, ".").Output()
		if err != nil {
			t.Fatalf("go list -deps -tags %q: %v", tags, err)
		}
		self := "github.com/mppd/mppd/internal/config"
		n := 0
		for _, pkg := range strings.Fields(string(out)) {
			if pkg == self || !strings.HasPrefix(pkg, "github.com/mppd/mppd/") {
				continue
			}
			n++
			if !strings.HasPrefix(pkg, "github.com/mppd/mppd/internal/") {
				t.Errorf("internal/config depends on %s (tags %q)", pkg, tags)
			}
		}
		if n == 0 {
			t.Fatalf("go list found none of this module's packages among the dependencies:\n%s", out)
		}
	}
}
