//go:build integration

package ldap

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/authn/cache"
	"github.com/mppd/mppd/authn/ldap/adtest"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testenv"
)

// Against a real Active Directory: a Samba AD DC on loopback (package
// adtest, test/setup.d/35-samba.sh), with the configurations of the AD
// examples in mppd.conf(5). Bad credentials are the engine's 530,
// unavailable its 451.

// adGroupFilter requires mppd-users, nested groups included (AD's
// LDAP_MATCHING_RULE_IN_CHAIN).
const adGroupFilter = "(memberOf:1.2.840.113556.1.4.1941:=" + adtest.GroupDN + ")"

// adSearchConfig is search then bind as svc-mppd over StartTLS, the
// manual's first AD example.
func adSearchConfig(t *testing.T, d *adtest.DC) config.LDAP {
	t.Helper()
	cfg := config.DefaultLDAP()
	cfg.URIs = []string{adtest.URI}
	cfg.CAFile = d.CAFile
	cfg.SearchBase = adtest.BaseDN
	cfg.SearchFilter = "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user}))"
	cfg.ServiceDN = adtest.ServiceDN
	cfg.ServicePasswordFile = writeSecret(t, adtest.ServicePW)
	cfg.GroupFilter = adGroupFilter
	cfg.AddressAttributes = []string{"mail", "proxyAddresses"}
	cfg.AccountAttribute = "sAMAccountName"
	return cfg
}

// adDirectConfig is direct bind with the user_dn template (a UPN or a
// down-level name), the entry and the group read with the user's rights.
func adDirectConfig(d *adtest.DC, userDN string) config.LDAP {
	cfg := config.DefaultLDAP()
	cfg.URIs = []string{adtest.LDAPSURI}
	cfg.CAFile = d.CAFile
	cfg.UserDN = userDN
	cfg.SearchBase = adtest.BaseDN
	cfg.GroupFilter = adGroupFilter
	cfg.AddressAttributes = []string{"mail"}
	cfg.AccountAttribute = "sAMAccountName"
	return cfg
}

func writeSecret(t *testing.T, pw string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ldap.secret")
	if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// adBackend is a backend whose log goes to the returned buffer (and the
// test's log).
func adBackend(t *testing.T, cfg config.LDAP) (*Backend, *testenv.LogBuffer) {
	t.Helper()
	var buf testenv.LogBuffer
	b, err := New(cfg, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		t.Logf("backend log:\n%s", buf.String())
	})
	return b, &buf
}

// noPasswords fails t if any fixture password, or the service password,
// appears in log.
func noPasswords(t *testing.T, log string, extra ...string) {
	t.Helper()
	pws := append([]string{adtest.ServicePW, adtest.AdminPW}, extra...)
	for _, u := range []string{adtest.Alice, adtest.Bob, adtest.Carol, adtest.Dave, adtest.Erin, adtest.Frank,
		adtest.Gina, adtest.Hank, adtest.Ivy, adtest.Jack, adtest.Kate, adtest.Lena, adtest.Mike, adtest.Nina, adtest.Olga} {
		pws = append(pws, adtest.Password(u))
	}
	for _, pw := range pws {
		if strings.Contains(log, pw) {
			t.Errorf("the log holds the password %q:\n%s", pw, log)
		}
	}
}

type adCase struct {
	user, pw string
	reason   string // "" for a success
	addr     string // the primary address of a success
}

func runADCases(t *testing.T, a authn.Authenticator, cases []adCase) {
	t.Helper()
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		id, err := a.Authenticate(ctx, authn.Request{User: tc.user, Password: tc.pw, Client: "127.0.0.1"})
		cancel()
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s: %v, want a success", tc.user, err)
		case tc.reason == "" && (len(id.Addresses) == 0 || id.Addresses[0] != tc.addr || id.Account != strings.SplitN(tc.user, "@", 2)[0]):
			t.Errorf("%s: identity %+v, want account %s address %s", tc.user, id, tc.user, tc.addr)
		case tc.reason != "" && err == nil:
			t.Errorf("%s: succeeded as %+v, want %s", tc.user, id, tc.reason)
		case tc.reason != "" && (!authn.IsBadCredentials(err) || authn.Reason(err) != tc.reason):
			t.Errorf("%s: %v (bad credentials=%v, reason %q), want a refusal (530) with reason %q",
				tc.user, err, authn.IsBadCredentials(err), authn.Reason(err), tc.reason)
		}
	}
}

func ok(user string) adCase {
	return adCase{user: user, pw: adtest.Password(user), addr: user + "@" + adtest.Realm}
}
func refused(user, reason string) adCase {
	return adCase{user: user, pw: adtest.Password(user), reason: reason}
}

// Every account state of the fixture, search then bind and direct bind by
// UPN and by CORP\user, with the log reason each one gets.
func TestADAccountStates(t *testing.T) {
	d := adtest.Start(t)
	// Every state with its fixture password: each way of binding gets
	// the same answers. Only a wrong password and an unknown user differ.
	states := []adCase{
		ok(adtest.Alice),
		ok(adtest.Carol), // nested member
		ok(adtest.Ivy),   // userPrincipalName on another suffix
		ok(adtest.Jack),  // no userPrincipalName
		refused(adtest.Bob, "not-in-group"),
		refused(adtest.Dave, "disabled"),
		refused(adtest.Erin, "password-change-required"),
		refused(adtest.Frank, "password-expired"),
		refused(adtest.Gina, "account-expired"),
		refused(adtest.Hank, "no-address"),
		// AD leaves the primary group out of memberOf: refused, as
		// mppd.conf(5) says.
		refused(adtest.Kate, "not-in-group"),
	}

	t.Run("search-then-bind", func(t *testing.T) {
		b, log := adBackend(t, adSearchConfig(t, d))
		runADCases(t, b, append(states,
			adCase{user: adtest.Olga, pw: "not-her-password", reason: "bad-password"},
			adCase{user: "nobody", pw: "whatever-pw", reason: "unknown-user"},
		))
		noPasswords(t, log.String(), "not-her-password", "whatever-pw")
	})

	upn := "{user}@" + adtest.Realm
	downLevel := adtest.NetBIOS + `\{user}`
	for _, tmpl := range []string{upn, downLevel} {
		t.Run("direct-bind "+tmpl, func(t *testing.T) {
			b, log := adBackend(t, adDirectConfig(d, tmpl))
			// AD's 52e: a wrong password and an unknown user look
			// alike on a direct bind.
			runADCases(t, b, append(states,
				adCase{user: adtest.Olga, pw: "not-her-password", reason: "invalid-credentials"},
				adCase{user: "nobody", pw: "whatever-pw", reason: "invalid-credentials"},
			))
			noPasswords(t, log.String(), "not-her-password", "whatever-pw")
		})
	}

	// With the service account reading the entry after a direct bind.
	t.Run("direct-bind with service account", func(t *testing.T) {
		cfg := adDirectConfig(d, upn)
		cfg.ServiceDN, cfg.ServicePasswordFile = adtest.ServiceDN, writeSecret(t, adtest.ServicePW)
		b, _ := adBackend(t, cfg)
		runADCases(t, b, []adCase{ok(adtest.Alice), ok(adtest.Ivy), ok(adtest.Jack), refused(adtest.Bob, "not-in-group")})
	})
}

// storm sends 10 parallel and then 4 spaced repeats of one wrong password
// for user through a, spaced wider than ttl.
func storm(t *testing.T, a authn.Authenticator, user string, spacing time.Duration) {
	t.Helper()
	req := authn.Request{User: user, Password: "stale-saved-pw", Client: "127.0.0.1"}
	testenv.Concurrently(t, 10, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := a.Authenticate(ctx, req); !authn.IsBadCredentials(err) {
			return fmt.Errorf("parallel repeat: %v, want a refusal", err)
		}
		return nil
	})()
	for i := 0; i < 4; i++ {
		time.Sleep(spacing)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, err := a.Authenticate(ctx, req)
		cancel()
		if !authn.IsBadCredentials(err) {
			t.Errorf("spaced repeat: %v, want a refusal", err)
		}
	}
}

// The lockout storm of a mail client with a stale saved password: with the
// cache, AD sees the wrong password once and the account stays usable;
// without it, the same storm locks the account.
func TestADLockoutStorm(t *testing.T) {
	d := adtest.Start(t)
	const ttl = time.Second
	ccfg := config.DefaultCache()
	ccfg.Enabled = true
	ccfg.TTL = config.Duration(ttl)

	t.Run("cache on", func(t *testing.T) {
		b, log := adBackend(t, adSearchConfig(t, d))
		c := cache.New(b, ccfg, slog.New(slog.NewTextHandler(log, nil)))
		storm(t, c, adtest.Lena, ttl+500*time.Millisecond)
		if n := d.BadPwdCount(adtest.Lena); n > 1 {
			t.Errorf("badPwdCount %d after the storm through the cache, want at most 1", n)
		}
		if d.Locked(adtest.Lena) {
			t.Fatal("the account is locked after the storm through the cache")
		}
		runADCases(t, c, []adCase{ok(adtest.Lena)})
		if !strings.Contains(log.String(), "cached=true") {
			t.Errorf("no cache hit logged:\n%s", log.String())
		}
	})

	t.Run("cache off", func(t *testing.T) {
		b, _ := adBackend(t, adSearchConfig(t, d))
		storm(t, b, adtest.Mike, ttl+500*time.Millisecond)
		if !d.Locked(adtest.Mike) {
			t.Fatalf("the storm without the cache did not lock the account (badPwdCount %d): the test proves nothing", d.BadPwdCount(adtest.Mike))
		}
		runADCases(t, b, []adCase{refused(adtest.Mike, "locked")})
	})
}

// A locked account is refused, and an unlock by the helpdesk takes effect
// within a few seconds even with the cache on.
func TestADUnlockWithCache(t *testing.T) {
	d := adtest.Start(t)
	b, _ := adBackend(t, adSearchConfig(t, d))
	ccfg := config.DefaultCache()
	ccfg.Enabled = true
	c := cache.New(b, ccfg, nil)
	// Three different wrong passwords: each one reaches AD once.
	for i := 0; i < adtest.LockoutThreshold; i++ {
		runADCases(t, c, []adCase{{user: adtest.Nina, pw: "wrong-" + string(rune('a'+i)), reason: "bad-password"}})
	}
	if !d.Locked(adtest.Nina) {
		t.Fatal("three wrong passwords did not lock the account")
	}
	runADCases(t, c, []adCase{refused(adtest.Nina, "locked")})
	d.Unlock(adtest.Nina)
	time.Sleep(cache.StateTTL)
	runADCases(t, c, []adCase{ok(adtest.Nina)})
}

// The DC stopped: 451; started again: logins work without a new backend
// (no mppd restart). The DC hung: 451 within the timeouts.
func TestADOutage(t *testing.T) {
	d := adtest.Start(t)
	cfg := adSearchConfig(t, d)
	cfg.DialTimeout = config.Duration(2 * time.Second)
	cfg.RequestTimeout = config.Duration(2 * time.Second)
	b, _ := adBackend(t, cfg)
	runADCases(t, b, []adCase{ok(adtest.Alice)}) // connections now pooled

	unavailable := func(what string) time.Duration {
		t.Helper()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := b.Authenticate(ctx, authn.Request{User: adtest.Alice, Password: adtest.Password(adtest.Alice), Client: "127.0.0.1"})
		took := time.Since(start)
		if err == nil || authn.IsBadCredentials(err) {
			t.Fatalf("%s: %v, want unavailable (451)", what, err)
		}
		t.Logf("%s: %v after %v", what, err, took)
		return took
	}

	d.Stop()
	unavailable("DC stopped")
	d.Start()
	runADCases(t, b, []adCase{ok(adtest.Alice)})

	d.Hang()
	took := unavailable("DC hung")
	d.Resume()
	// One request timeout on the pooled connection, or one dial timeout
	// (TCP connects, TLS never answers) on a new one, and some slack.
	if limit := 2*time.Second + 2*time.Second + 3*time.Second; took > limit {
		t.Errorf("a hung DC took %v to answer 451, more than %v", took, limit)
	}
	runADCases(t, b, []adCase{ok(adtest.Alice)})
}

// A wrong service password: every login gets 451 with reason
// service-credentials, AD sees the wrong password once (the service
// account is not locked), and correcting the file is enough.
func TestADServicePasswordWrong(t *testing.T) {
	d := adtest.Start(t)
	cfg := adSearchConfig(t, d)
	os.WriteFile(cfg.ServicePasswordFile, []byte("not-the-service-pw\n"), 0o600)
	b, log := adBackend(t, cfg)
	if err := b.Check(context.Background()); authn.Reason(err) != "service-credentials" {
		t.Fatalf("Check with a wrong service password: %v", err)
	}
	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, err := b.Authenticate(ctx, authn.Request{User: adtest.Alice, Password: adtest.Password(adtest.Alice), Client: "127.0.0.1"})
		cancel()
		if authn.IsBadCredentials(err) || authn.Reason(err) != "service-credentials" {
			t.Fatalf("login %d: %v, want unavailable with reason service-credentials", i, err)
		}
	}
	if n := d.BadPwdCount("svc-mppd"); n != 1 {
		t.Errorf("the service account's badPwdCount is %d after 10 logins, want 1", n)
	}
	if strings.Count(log.String(), "level=ERROR") != 1 {
		t.Errorf("want the refusal logged once at error:\n%s", log.String())
	}
	noPasswords(t, log.String(), "not-the-service-pw")

	// The file corrected (a new modification time and size): the next
	// login uses it.
	if err := os.WriteFile(cfg.ServicePasswordFile, []byte(adtest.ServicePW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runADCases(t, b, []adCase{ok(adtest.Alice)})
	if err := b.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if d.Locked("svc-mppd") {
		t.Error("the service account is locked")
	}
}
