// Package testenv lets integration tests say what they need from the machine.
//
// On a developer's machine a missing dependency skips the test with a message
// naming the fix (run the setup script). Under CI (the CI environment
// variable is set) a missing dependency fails the test: CI runs the setup
// script first, so a missing piece there is a broken setup, not a reason to
// go green.
package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// InCI reports whether the tests run under CI.
func InCI() bool { return os.Getenv("CI") != "" }

// Missing stops t because a dependency is absent: a failure under CI, a skip
// elsewhere. what names the dependency, fix says how to get it.
func Missing(t testing.TB, what, fix string) {
	t.Helper()
	if InCI() {
		t.Fatalf("missing dependency %s (CI must not skip): %s", what, fix)
	}
	t.Skipf("skipping: %s is not available; %s", what, fix)
}

// NeedCommand returns the path of an executable, or stops t through Missing.
func NeedCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if _, statErr := os.Stat(name); statErr == nil {
			return name
		}
		Missing(t, name, "run `sudo test/setup.sh` (or `sudo make test`)")
	}
	return p
}

// NeedRoot stops t through Missing unless the test runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root", "run the integration tests as root (`sudo make test`)")
	}
}

// NeedFile stops t through Missing unless path exists.
func NeedFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, path, "run `sudo test/setup.sh` (or `sudo make test`)")
	}
}

// LogBuffer collects a logger's or a process's output while a test reads
// it from another goroutine.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
