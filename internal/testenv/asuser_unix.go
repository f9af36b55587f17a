//go:build unix

package testenv

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Nobody returns the uid and gid of the unprivileged account nobody, for
// tests that run a process as a user without rights.
func Nobody(t testing.TB) (uid, gid uint32) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no unprivileged user nobody: %v", err)
	}
	id, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(id), uint32(gr)
}

// CopyTestBinary copies the running test binary into a fresh directory
// that every user may enter and read, and returns the copy's path, for a
// test that runs itself as another user: the binary go test built lies
// in a directory only its owner may enter.
func CopyTestBinary(t testing.TB) string {
	t.Helper()
	return InstallTestBinary(t, tempDirMode(t, 0o755), filepath.Base(os.Args[0]))
}

// InstallTestBinary copies the running test binary into dir as name,
// executable by everyone, and returns its path.
func InstallTestBinary(t testing.TB, dir, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// AsUser makes cmd run with uid and gid and with exactly the
// supplementary groups given (none when there are none).
func AsUser(cmd *exec.Cmd, uid, gid uint32, groups ...uint32) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: append([]uint32{}, groups...)}}
}
