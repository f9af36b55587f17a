//go:build integration

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mppd/mppd/authn/ldap/ldaptest"
	"github.com/mppd/mppd/internal/testharness"
)

// End-to-end through a real directory: a private slapd (package ldaptest,
// test/setup.d/30-slapd.sh installs it), the daemon with [authn] backend =
// "ldap" (search then bind as the service account, StartTLS with the test's
// CA, membership of cn=posters required) and the maildir delivery.

// ldapBackends is extraTOML for the LDAP backend against s and a maildir
// under t.TempDir(); it returns the maildir root.
func ldapBackends(t *testing.T, s *ldaptest.Server) (extraTOML, root string) {
	t.Helper()
	dir := t.TempDir()
	secret := serviceSecret(t, dir, ldaptest.ServicePW)
	root = filepath.Join(dir, "maildir")
	return ldapSection(s.URI, s.CAFile, ldaptest.BaseDN, fmt.Sprintf(`search_filter = "(&(objectClass=inetOrgPerson)(uid={user}))"
service_dn = %q
service_password_file = %q
group_filter = "(memberOf=%s)"
address_attributes = ["mail", "mailLocalAddress"]

`, ldaptest.ServiceDN, secret, ldaptest.PostersDN)) + testharness.MaildirTOML(root), root
}

// ldapSection is the [authn] section for the LDAP backend at uri, trusting
// caFile and searching below base; settings are the rest of [authn.ldap]
// and what follows it.
func ldapSection(uri, caFile, base, settings string) string {
	return fmt.Sprintf("\n[authn]\nbackend = \"ldap\"\n\n[authn.ldap]\nuris = [%q]\nca_file = %q\nsearch_base = %q\n", uri, caFile, base) + settings
}

// serviceSecret writes the service account's password pw, as a secret
// file holds it (one line, mode 0600), into dir and returns its path.
func serviceSecret(t *testing.T, dir, pw string) string {
	t.Helper()
	secret := filepath.Join(dir, "ldap.secret")
	if err := os.WriteFile(secret, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return secret
}

// A directory user logs in over TCP and posts; the delivered message's
// envelope sender (Return-Path) and the From: mppd adds are the entry's
// mail attribute.
func TestLDAPLoginAndPost(t *testing.T) {
	s := ldaptest.Start(t)
	extra, root := ldapBackends(t, s)
	m := testharness.Start(t, extra)
	if !strings.Contains(m.Log(), "mode=search-bind") {
		t.Errorf("start-up log does not describe the LDAP backend:\n%s", m.Log())
	}

	c := m.Dial(t)
	c.Login("alice", "alice-pw")
	c.Post("To: bob@example.test\nSubject: posted through LDAP\n\nhello from the directory\n", 250)
	c.Cmd("QUIT", 221)

	header := deliveredOne(t, root, "bob@example.test", "hello from the directory\n")
	for _, want := range []string{"Return-Path: <alice@mppd.test>", "From: alice@mppd.test"} {
		if !strings.Contains(header, want) {
			t.Errorf("header lacks %q:\n%s", want, header)
		}
	}
	noPasswordLogged(t, m, "alice-pw")
}

// Refusals are 530 on the wire whatever the reason, the log says which; a
// stopped directory is 451, and the running daemon recovers when it is
// back.
func TestLDAPRefusedAndUnavailable(t *testing.T) {
	s := ldaptest.Start(t)
	extra, root := ldapBackends(t, s)
	m := testharness.Start(t, extra)

	for _, tc := range []struct{ user, password, reason string }{
		{"alice", "wrong", "bad-password"},
		{"mallory", "alice-pw", "unknown-user"},
		{"carol", "carol-pw", "not-in-group"},
	} {
		c := m.Dial(t)
		c.Cmd("USER "+tc.user, 250)
		c.Cmd("PASS "+tc.password, 530)
		c.Cmd("QUIT", 221)
		m.WaitLog("reason=" + tc.reason)
	}

	s.Stop()
	c := m.Dial(t)
	c.Cmd("USER alice", 250)
	c.Cmd("PASS alice-pw", 451)
	c.Cmd("QUIT", 221)
	m.WaitLog("reason=connect")

	s.Start()
	c = m.Dial(t)
	c.Login("alice", "alice-pw")
	c.Post("To: bob@example.test\nSubject: after the outage\n\nback\n", 250)
	c.Cmd("QUIT", 221)
	if msgs := waitDelivered(t, root, "bob@example.test", 1); !strings.Contains(msgs[0], "Return-Path: <alice@mppd.test>") {
		t.Errorf("delivered:\n%s", msgs[0])
	}
}
