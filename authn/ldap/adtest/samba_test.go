//go:build integration

package adtest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDCStartsOnLoopbackOnly: the DC answers over TLS with the test CA,
// listens on loopback addresses only, and the fixture is as described.
func TestDCStartsOnLoopbackOnly(t *testing.T) {
	d := Start(t)
	out, err := exec.Command("ss", "-Hltnup").Output()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "samba") && !strings.Contains(line, "ldap") && !strings.Contains(line, "kdc") && !strings.Contains(line, "rpc") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		local := f[4]
		if strings.HasSuffix(local, ":636") {
			seen++
		}
		if !strings.HasPrefix(local, "127.") && !strings.HasPrefix(local, "[::1]") {
			t.Errorf("the DC listens on %s, not loopback: %s", local, line)
		}
	}
	if seen == 0 {
		t.Fatalf("no samba listener on port 636 in ss's output:\n%s", out)
	}
	if n := d.BadPwdCount(Alice); n != 0 {
		t.Errorf("alice badPwdCount %d at start", n)
	}
	if d.Locked(Alice) {
		t.Error("alice locked at start")
	}
	d.Stop()
	d.Start()
}
