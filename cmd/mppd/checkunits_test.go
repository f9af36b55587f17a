package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeUnit writes a unit file into dir/lib and, when wants is not empty,
// links it from dir/etc/<wants>.wants as systemctl enable does.
func writeUnit(t *testing.T, dir, name, body, wants string) {
	t.Helper()
	lib := filepath.Join(dir, "lib")
	os.MkdirAll(lib, 0o755)
	if err := os.WriteFile(filepath.Join(lib, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if wants != "" {
		w := filepath.Join(dir, "etc", wants+".wants")
		os.MkdirAll(w, 0o755)
		if err := os.Symlink(filepath.Join(lib, name), filepath.Join(w, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEnabledSockets(t *testing.T) {
	dir := t.TempDir()
	writeUnit(t, dir, "mppd.socket", "[Socket]\nListenStream=218\nFileDescriptorName=mpp\n", "sockets.target")
	writeUnit(t, dir, "mppd-tls.socket", "[Socket]\nListenStream=1218\nFileDescriptorName = mpps\n", "sockets.target")
	writeUnit(t, dir, "other.socket", "[Socket]\nFileDescriptorName=mpps\n", "") // not enabled
	writeUnit(t, dir, "mpps.socket", "[Socket]\nListenStream=1219\n", "multi-user.target")
	dirs := []string{filepath.Join(dir, "etc"), filepath.Join(dir, "missing")}

	if got := enabledSockets(dirs, []string{"mpps"}); !reflect.DeepEqual(got, []string{"mppd-tls.socket"}) {
		t.Errorf("mpps: %q", got)
	}
	// No FileDescriptorName=: the name is the unit's.
	if got := enabledSockets(dirs, []string{"mpps.socket"}); !reflect.DeepEqual(got, []string{"mpps.socket"}) {
		t.Errorf("mpps.socket: %q", got)
	}
	if got := enabledSockets(dirs, []string{"none"}); got != nil {
		t.Errorf("none: %q", got)
	}
}

// An mpps socket enabled without [tls]: --check-config fails, naming the
// unit; with [tls], or with the socket not enabled, it passes.
func TestCheckTLSSockets(t *testing.T) {
	dir := t.TempDir()
	old := unitDirs
	unitDirs = []string{filepath.Join(dir, "etc")}
	defer func() { unitDirs = old }()

	writeUnit(t, dir, "mppd.socket", "[Socket]\nFileDescriptorName=mpp\n", "sockets.target")
	if err := checkTLSSockets(false, []string{"mpps"}); err != nil {
		t.Errorf("only the plain socket enabled: %v", err)
	}
	writeUnit(t, dir, "mppd-tls.socket", "[Socket]\nFileDescriptorName=mpps\n", "sockets.target")
	err := checkTLSSockets(false, []string{"mpps"})
	if err == nil || !strings.Contains(err.Error(), "mppd-tls.socket is enabled") || !strings.Contains(err.Error(), "systemctl disable --now mppd-tls.socket") {
		t.Errorf("mppd-tls.socket enabled without [tls]: %v", err)
	}
	if err := checkTLSSockets(true, []string{"mpps"}); err != nil {
		t.Errorf("with [tls]: %v", err)
	}
}
