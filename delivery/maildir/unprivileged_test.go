package maildir

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/testenv"
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
	uid, gid := testenv.Nobody(t)

	// A directory nobody can enter, holding a copy of this test binary
	// and a temporary directory of its own.
	bin := testenv.CopyTestBinary(t)
	dir := filepath.Dir(bin)
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
	testenv.AsUser(cmd, uid, gid)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the read-only cases as nobody (uid %d): %v\n%s", uid, err, out)
	}
	if n := strings.Count(string(out), "--- PASS: TestFailureMidway/read-only"); n != 2 {
		t.Fatalf("%d read-only cases passed as nobody, want 2:\n%s", n, out)
	}
}
