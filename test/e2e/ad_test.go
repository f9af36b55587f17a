//go:build integration

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/authn/ldap/adtest"
	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// End-to-end against Active Directory: a Samba AD DC on loopback (package
// adtest, test/setup.d/35-samba.sh) and the daemon with the AD examples
// of mppd.conf(5): every account state with its reply and log reason, the
// lockout storm with the cache on and off, the DC stopped and hung.

// adConfig is extraTOML for the LDAP backend against the test DC: the
// manual's search-then-bind example (service account, nested group), or
// direct bind with userDN, and the cache as given.
func adConfig(t *testing.T, d *adtest.DC, userDN string, cache bool) string {
	t.Helper()
	dir := t.TempDir()
	secret := serviceSecret(t, dir, adtest.ServicePW)
	find := fmt.Sprintf(`search_filter = "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))"
service_dn = %q
service_password_file = %q`, adtest.ServiceDN, secret)
	if userDN != "" {
		// A TOML literal string, as the manual writes the down-level
		// form: the backslash stays one.
		find = fmt.Sprintf("user_dn = '%s'", userDN)
	}
	return "\ntrusted_networks = [\"127.0.0.0/8\"]\n" + ldapSection(adtest.LDAPSURI, d.CAFile, adtest.BaseDN, fmt.Sprintf(`%s
group_filter = "(memberOf:1.2.840.113556.1.4.1941:=%s)"
address_attributes = ["mail", "proxyAddresses"]
account_attribute = "sAMAccountName"
dial_timeout = "2s"
request_timeout = "2s"

[authn.cache]
enabled = %v
ttl = "1s"

`, find, adtest.GroupDN, cache)) + testharness.MaildirTOML(filepath.Join(dir, "maildir"))
}

// adLogin logs in as user with pw on a new connection and returns the
// reply code to PASS (0 when there was none). It may run in a goroutine of
// its own.
func adLogin(t *testing.T, m *testharness.Daemon, user, pw string) int {
	t.Helper()
	c := m.Dial(t)
	defer c.Close()
	c.Cmd("USER "+user, 250)
	c.Send("PASS " + pw + "\r\n")
	code, line, err := c.ReadReply()
	if err != nil {
		t.Errorf("PASS for %s: %v (%q)", user, err, line)
	}
	return code
}

// logLineWith reports whether one line of log has every one of parts.
func logLineWith(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// waitLogLine waits (a few seconds at most: the engine writes its line as
// the reply goes out) until one line of the daemon's log has every one of
// parts.
func waitLogLine(m *testharness.Daemon, parts ...string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if logLineWith(m.Log(), parts...) {
			return true
		}
	}
	return false
}

// Every account state of the fixture, through mppd: the reply, and the
// reason in the engine's log line; no password in the log.
func TestADRepliesAndReasons(t *testing.T) {
	d := adtest.Start(t)
	type tc struct {
		user, pw string
		code     int
		reason   string
	}
	states := func(wrongPW string) []tc {
		return []tc{
			{adtest.Alice, adtest.Password(adtest.Alice), 250, ""},
			{adtest.Carol, adtest.Password(adtest.Carol), 250, ""},
			{adtest.Ivy, adtest.Password(adtest.Ivy), 250, ""},
			{adtest.Jack, adtest.Password(adtest.Jack), 250, ""},
			{adtest.Bob, adtest.Password(adtest.Bob), 530, "not-in-group"},
			{adtest.Dave, adtest.Password(adtest.Dave), 530, "disabled"},
			{adtest.Erin, adtest.Password(adtest.Erin), 530, "password-change-required"},
			{adtest.Frank, adtest.Password(adtest.Frank), 530, "password-expired"},
			{adtest.Gina, adtest.Password(adtest.Gina), 530, "account-expired"},
			{adtest.Hank, adtest.Password(adtest.Hank), 530, "no-address"},
			{adtest.Kate, adtest.Password(adtest.Kate), 530, "not-in-group"},
			{adtest.Olga, "olga-wrong-pw", 530, wrongPW},
		}
	}
	for _, mode := range []struct {
		name, userDN, wrong, unknown string
	}{
		{"search-then-bind", "", "bad-password", "unknown-user"},
		{"upn", "{user}@" + adtest.Realm, "invalid-credentials", "invalid-credentials"},
		{"down-level", adtest.NetBIOS + `\{user}`, "invalid-credentials", "invalid-credentials"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			m := testharness.Start(t, adConfig(t, d, mode.userDN, false))
			for _, c := range append(states(mode.wrong), tc{"nobody", "nobody-pw", 530, mode.unknown}) {
				if got := adLogin(t, m, c.user, c.pw); got != c.code {
					t.Errorf("%s: PASS got %d, want %d", c.user, got, c.code)
				}
				if c.code == 530 && !waitLogLine(m, "event=auth-failed", c.user, "reason="+c.reason) {
					t.Errorf("%s: no auth-failed line with reason=%s", c.user, c.reason)
				}
			}
			for _, pw := range []string{adtest.ServicePW, "olga-wrong-pw", "nobody-pw", adtest.Password(adtest.Alice), adtest.Password(adtest.Dave)} {
				if strings.Contains(m.Log(), pw) {
					t.Errorf("the log holds the password %q", pw)
				}
			}
		})
	}
}

// stormThroughMppd sends 10 parallel and then 4 spaced (wider than the
// cache's 1 s ttl) logins with one wrong password, each answered 530.
func stormThroughMppd(t *testing.T, m *testharness.Daemon, user string) {
	t.Helper()
	testenv.Concurrently(t, 10, func() error {
		if code := adLogin(t, m, user, "stale-saved-pw"); code != 530 {
			return fmt.Errorf("parallel repeat: %d, want 530", code)
		}
		return nil
	})()
	for i := 0; i < 4; i++ {
		time.Sleep(1500 * time.Millisecond)
		if code := adLogin(t, m, user, "stale-saved-pw"); code != 530 {
			t.Errorf("spaced repeat: %d, want 530", code)
		}
	}
}

// The lockout storm of a mail client with a stale password: with the
// cache the DC sees it once and the right password still works; without
// the cache the same storm locks the account.
func TestADLockoutStormThroughMppd(t *testing.T) {
	d := adtest.Start(t)

	on := testharness.Start(t, adConfig(t, d, "", true))
	stormThroughMppd(t, on, adtest.Lena)
	if n := d.BadPwdCount(adtest.Lena); n > 1 {
		t.Errorf("cache on: badPwdCount %d, want at most 1", n)
	}
	if code := adLogin(t, on, adtest.Lena, adtest.Password(adtest.Lena)); code != 250 {
		t.Errorf("cache on: the right password after the storm got %d, want 250", code)
	}
	if !strings.Contains(on.Log(), "cached=true") {
		t.Error("cache on: no answer from the cache logged with cached=true")
	}

	off := testharness.Start(t, adConfig(t, d, "", false))
	stormThroughMppd(t, off, adtest.Mike)
	if !d.Locked(adtest.Mike) {
		t.Fatalf("cache off: the storm did not lock the account (badPwdCount %d): the test proves nothing", d.BadPwdCount(adtest.Mike))
	}
	if code := adLogin(t, off, adtest.Mike, adtest.Password(adtest.Mike)); code != 530 {
		t.Errorf("cache off: the right password on a locked account got %d, want 530", code)
	}
	if !waitLogLine(off, "event=auth-failed", adtest.Mike, "reason=locked") {
		t.Error("cache off: no auth-failed line with reason=locked")
	}
}

// The DC stopped: 451; started again: 250 from the same mppd. The DC hung
// (SIGSTOP): 451 within the request and dial timeouts (2 s each).
func TestADOutageThroughMppd(t *testing.T) {
	d := adtest.Start(t)
	m := testharness.Start(t, adConfig(t, d, "", false))
	alice := func() int { return adLogin(t, m, adtest.Alice, adtest.Password(adtest.Alice)) }
	if code := alice(); code != 250 {
		t.Fatalf("DC up: %d", code)
	}
	d.Stop()
	if code := alice(); code != 451 {
		t.Errorf("DC stopped: %d, want 451", code)
	}
	d.Start()
	if code := alice(); code != 250 {
		t.Errorf("DC started again: %d, want 250 without restarting mppd", code)
	}
	d.Hang()
	start := time.Now()
	code := alice()
	took := time.Since(start)
	d.Resume()
	if code != 451 {
		t.Errorf("DC hung: %d, want 451", code)
	}
	if limit := 7 * time.Second; took > limit {
		t.Errorf("DC hung: the 451 took %v, more than %v", took, limit)
	}
	if code := alice(); code != 250 {
		t.Errorf("DC resumed: %d, want 250", code)
	}
}

// mppd --check-config tries the service bind and a search against the DC:
// it passes with the right service password, fails (status 78, EX_CONFIG)
// naming the refusal with a wrong one, and --offline skips the directory.
func TestADCheckConfig(t *testing.T) {
	d := adtest.Start(t)
	path := testharness.WriteConfig(t, adConfig(t, d, "", true))
	out, code := testharness.Run(t, "", "--check-config", "--config", path)
	if code != 0 || !strings.Contains(out, "the service account's bind worked") || !strings.Contains(out, "config OK") {
		t.Fatalf("--check-config against the DC: status %d\n%s", code, out)
	}

	wrong := adConfig(t, d, "", true)
	secret := serviceSecret(t, t.TempDir(), "not-the-service-pw")
	path = testharness.WriteConfig(t, wrong, fmt.Sprintf("[authn.ldap]\nservice_password_file = %q\n", secret))
	out, code = testharness.Run(t, "", "--check-config", "--config", path)
	if code != 78 || !strings.Contains(out, "service-credentials") || strings.Contains(out, "not-the-service-pw") {
		t.Fatalf("--check-config with a wrong service password: status %d\n%s", code, out)
	}
	if n := d.BadPwdCount("svc-mppd"); n != 1 {
		t.Errorf("the service account's badPwdCount is %d after one check, want 1", n)
	}

	d.Stop()
	out, code = testharness.Run(t, "", "--check-config", "--offline", "--config", path)
	if code != 0 || !strings.Contains(out, "config OK") || strings.Contains(out, "ldap:") {
		t.Fatalf("--check-config --offline with the DC down: status %d\n%s", code, out)
	}
}
