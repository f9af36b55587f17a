package e2e

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/authn/passwdfile"
	"github.com/mppd/mppd/internal/testharness"
)

// testMailDomain is the mail_domain devBackends configures: a user whose
// password-file line lists no address posts as user@testMailDomain.
const testMailDomain = "example.test"

// testUser is one line of a test password file.
type testUser struct {
	name, password string
	addresses      []string // none: name@testMailDomain
}

// alice is the user most tests log in as.
var alice = testUser{name: "alice", password: "alice-e2e-password"}

// writePasswd writes a password file with users (argon2id hashes made by
// passwdfile.HashPassword) under t.TempDir() and returns its path.
func writePasswd(t testing.TB, users ...testUser) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# written by the e2e harness\n")
	for _, u := range users {
		h, err := passwdfile.HashPassword(u.password)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u.name + ":" + h)
		if len(u.addresses) > 0 {
			b.WriteString(":" + strings.Join(u.addresses, ","))
		}
		b.WriteString("\n")
	}
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// devBackends returns extraTOML configuring the development backends: a
// password file with users and a maildir root, both under t.TempDir(). It
// returns the root for delivered/waitDelivered.
func devBackends(t testing.TB, users ...testUser) (extraTOML, maildirRoot string) {
	t.Helper()
	pw := writePasswd(t, users...)
	maildirRoot = filepath.Join(t.TempDir(), "maildir")
	return testharness.PasswdfileTOML(pw, testMailDomain) + testharness.MaildirTOML(maildirRoot), maildirRoot
}

// delivered returns the messages delivered to recipient under a maildir
// root (the files in <root>/<recipient>/new/), oldest name first.
func delivered(t testing.TB, root, recipient string) []string {
	t.Helper()
	dir := filepath.Join(root, strings.ToLower(recipient), "new")
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var msgs []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, string(b))
	}
	return msgs
}

// waitDelivered waits until recipient has n messages and returns them. The
// maildir backend has renamed a copy into new/ before the 250, so no
// waiting is normally needed; the loop only tolerates a slow disk.
func waitDelivered(t testing.TB, root, recipient string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(testharness.IOTimeout)
	for {
		msgs := delivered(t, root, recipient)
		if len(msgs) >= n {
			if len(msgs) > n {
				t.Fatalf("%s has %d messages, want %d", recipient, len(msgs), n)
			}
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d messages after %v, want %d", recipient, len(msgs), testharness.IOTimeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// login dials m and logs in as u, requiring 250 for both USER and PASS.
func login(t testing.TB, m *testharness.Daemon, u testUser) *testharness.Client {
	t.Helper()
	c := m.Dial(t)
	c.Login(u.name, u.password)
	return c
}

// deliveredOne waits for the one message to recipient under root, checks
// its body and returns its header block.
func deliveredOne(t testing.TB, root, recipient, body string) (header string) {
	t.Helper()
	msgs := waitDelivered(t, root, recipient, 1)
	header, got := headerBody(t, msgs[0])
	if got != body {
		t.Errorf("%s: body\n%q\nwant\n%q", recipient, got, body)
	}
	return header
}

// noPasswordLogged fails t if password appears in m's log.
func noPasswordLogged(t testing.TB, m *testharness.Daemon, password string) {
	t.Helper()
	if strings.Contains(m.Log(), password) {
		t.Errorf("the password appears in the log:\n%s", m.Log())
	}
}

// headerBody splits a delivered message (LF line endings) into its header
// block and body.
func headerBody(t testing.TB, msg string) (header, body string) {
	t.Helper()
	h, b, ok := strings.Cut(msg, "\n\n")
	if !ok {
		t.Fatalf("message has no blank line after the header:\n%s", msg)
	}
	return h + "\n", b
}

// hasHeader reports whether a header block has a field called name.
func hasHeader(header, name string) bool {
	for _, line := range strings.Split(header, "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			return true
		}
	}
	return false
}
