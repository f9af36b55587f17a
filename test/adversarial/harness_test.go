// Package adversarial plays the hostile-input cases that need the built
// mppd (docs/hostile-inputs.md) over real TCP on
// loopback: the dialogues in testdata/*.dlg (exact bytes in, expected
// replies out; see internal/dialogue for the format), the throttle, and
// the resource cases (RSS and goroutines back to baseline).
//
// Cases that cannot be automated here, and why, are listed in
// catalogue_test.go. Slow parts carry the integration build tag.
package adversarial

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mppd/mppd/authn/passwdfile"
	"github.com/mppd/mppd/internal/testharness"
)

func TestMain(m *testing.M) {
	os.Exit(testharness.Main(m, testharness.Build{}))
}

// The users every daemon knows (password file, argon2id).
var users = map[string]string{"alice": "alice-adv-pw", "bob": "bob-adv-pw"}

// passwdFile is written once per test binary: hashing is slow on purpose.
var passwdFile = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mppd-adversarial-passwd-")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, u := range []string{"alice", "bob"} {
		h, err := passwdfile.HashPassword(users[u])
		if err != nil {
			return "", err
		}
		b.WriteString(u + ":" + h + "\n")
	}
	path := filepath.Join(dir, "passwd")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
})

// daemon is one running mppd with the password file and a maildir.
type daemon struct {
	*testharness.Daemon
	maildir string
}

// startDaemon starts the built mppd (testharness.Start) with the password
// file, a maildir, and extra (TOML) over that.
func startDaemon(t testing.TB, extra string) *daemon {
	t.Helper()
	pw, err := passwdFile()
	if err != nil {
		t.Fatal(err)
	}
	maildir := filepath.Join(t.TempDir(), "maildir")
	backends := testharness.PasswdfileTOML(pw, "example.test") + testharness.MaildirTOML(maildir)
	return &daemon{Daemon: testharness.Start(t, backends, extra), maildir: maildir}
}

// deliveredFiles lists every delivered message file under the maildir.
func (d *daemon) deliveredFiles() map[string]bool {
	files := map[string]bool{}
	matches, _ := filepath.Glob(filepath.Join(d.maildir, "*", "new", "*"))
	for _, m := range matches {
		files[m] = true
	}
	return files
}
