//go:build integration

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// TestStagingDirOnly: with staging_dir set, a message goes through the
// real monitor, engine and Postfix while TMPDIR names a directory that does
// not exist: the message's one staged copy is in staging_dir, and nothing
// of it needs the temporary directory. A message past memory_threshold
// takes the same way. The staging directory is empty afterwards.
func TestStagingDirOnly(t *testing.T) {
	testenv.NeedPostfix(t)
	staging := t.TempDir()
	// The engine runs as the engine user when the test is root.
	for d, mode := range map[string]os.FileMode{filepath.Dir(staging): 0o711, staging: 0o1777} {
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testharness.WriteConfig(t, sendmailBackends(t, "/usr/sbin/sendmail", alice),
		fmt.Sprintf("[message]\nstaging_dir = %q\nmemory_threshold = 4096\n", staging))
	t.Setenv("TMPDIR", "/nonexistent-mppd-tmpdir")
	m := testharness.StartConfig(t, cfg)

	for _, size := range []int{100, 200_000} {
		tok := randomToken(t)
		body := strings.Repeat("staged once\n", size/12)
		c := login(t, m, alice)
		c.Post("To: mppd-mta2@localhost\nSubject: "+tok+"\n\n"+body, 250)
		c.Cmd("QUIT", 221)
		got := testenv.WaitPostfixMessage(t, "mppd-mta2", tok)
		if _, gotBody := headerBody(t, got); gotBody != body {
			t.Errorf("%d octets: the delivered body differs (%d octets)", size, len(gotBody))
		}
	}
	if ents, _ := os.ReadDir(staging); len(ents) != 0 {
		t.Errorf("staging_dir is not empty: %v", ents)
	}
	if _, err := os.Stat("/nonexistent-mppd-tmpdir"); err == nil {
		t.Error("the missing temporary directory was created")
	}
}
