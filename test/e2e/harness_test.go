// Package e2e tests the built mppd binary over real TCP on loopback.
//
// TestMain builds ./cmd/mppd once (internal/testharness); each test starts
// its own daemon with testharness.Start on a port the kernel picks, talks
// MPP (RFC 1204) to it, and it is stopped in t.Cleanup. The end-to-end
// tests of the backends (PAM, LDAP, sendmail) pass their sections as TOML
// over the harness's base config.
package e2e

import (
	"os"
	"testing"

	"github.com/mppd/mppd/internal/testharness"
)

// mppdBuildTags are the build tags the binary is built with. A test file
// that needs a backend behind a tag adds it from init(), under the same
// build constraint (pam_test.go adds "pam"), so the binary matches the
// tests.
var mppdBuildTags []string

// testVersion is injected into the binary with -ldflags -X main.version.
const testVersion = "e2e-test-version"

func TestMain(m *testing.M) {
	os.Exit(testharness.Main(m, testharness.Build{Tags: mppdBuildTags, Version: testVersion}))
}
