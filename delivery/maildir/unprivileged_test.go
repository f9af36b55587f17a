package maildir

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestFailureMidwayUnprivileged: the read-only-directory cases of
// TestFailureMidway cannot be made as root (root ignores directory
// permissions), so they skip there; but CI runs the tests as root. As root,
// this runs them again in a copy of the test binary as the unprivileged
// user nobody and requires that both ran and passed. As an ordinary user
// TestFailureMidway has run them itself.
func TestFailureMidwayUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: TestFailureMidway ran its read-only cases itself")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no unprivileged user to run the read-only cases as: %v", err)
	}
	uid, _ := strconv.ParseUint(nobody.Uid, 10, 32)
	gid, _ := strconv.ParseUint(nobody.Gid, 10, 32)

	// A directory nobody can enter, holding a copy of this test binary
	// and a temporary directory of its own.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "maildir.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-test.run", "^TestFailureMidway$/^read-only", "-test.v", "-test.count=1")
	cmd.Dir = tmp
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=" + tmp}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the read-only cases as %s (uid %d): %v\n%s", nobody.Username, uid, err, out)
	}
	if n := strings.Count(string(out), "--- PASS: TestFailureMidway/read-only"); n != 2 {
		t.Fatalf("%d read-only cases passed as %s, want 2:\n%s", n, nobody.Username, out)
	}
}
