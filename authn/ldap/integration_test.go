//go:build integration

package ldap

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/authn/ldap/ldaptest"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testenv"
)

// The test directory of package ldaptest.
const (
	baseDN    = ldaptest.BaseDN
	serviceDN = ldaptest.ServiceDN
	servicePW = ldaptest.ServicePW
	postersDN = ldaptest.PostersDN
)

// searchConfig is search-then-bind as the service account, StartTLS with
// the test CA: the configuration most sites run.
func searchConfig(t *testing.T, s *ldaptest.Server) config.LDAP {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "ldap.secret")
	if err := os.WriteFile(pwFile, []byte(servicePW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultLDAP()
	cfg.URIs = []string{s.URI}
	cfg.CAFile = s.CAFile
	cfg.SearchBase = baseDN
	cfg.SearchFilter = "(&(objectClass=inetOrgPerson)(uid={user}))"
	cfg.ServiceDN = serviceDN
	cfg.ServicePasswordFile = pwFile
	cfg.AddressAttributes = []string{"mail", "mailLocalAddress"}
	return cfg
}

func directConfig(s *ldaptest.Server) config.LDAP {
	cfg := config.DefaultLDAP()
	cfg.URIs = []string{s.URI}
	cfg.CAFile = s.CAFile
	cfg.UserDN = "uid={user},ou=people,dc=mppd,dc=test"
	cfg.AddressAttributes = []string{"mail", "mailLocalAddress"}
	return cfg
}

func newBackend(t *testing.T, cfg config.LDAP) *Backend {
	t.Helper()
	b, err := New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func login(b *Backend, user, pw string) (authn.Identity, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return b.Authenticate(ctx, authn.Request{User: user, Password: pw, Client: "127.0.0.1"})
}

// mustLogin fails t unless the login succeeds with the given addresses.
func mustLogin(t *testing.T, b *Backend, user, pw, account string, addrs ...string) {
	t.Helper()
	id, err := login(b, user, pw)
	if err != nil {
		t.Fatalf("login %q: %v", user, err)
	}
	if id.Login != account || id.Account != account || !slices.Equal(id.Addresses, addrs) {
		t.Fatalf("login %q: got %+v, want login=account=%q addresses=%q", user, id, account, addrs)
	}
}

// mustFail fails t unless the login fails with the given class and reason.
func mustFail(t *testing.T, b *Backend, user, pw string, bad bool, reason string) {
	t.Helper()
	id, err := login(b, user, pw)
	if err == nil {
		t.Fatalf("login %q succeeded as %+v, want %s", user, id, reason)
	}
	if authn.IsBadCredentials(err) != bad || authn.Reason(err) != reason {
		t.Fatalf("login %q: %v (bad credentials=%v reason=%q), want bad credentials=%v reason=%q",
			user, err, authn.IsBadCredentials(err), authn.Reason(err), bad, reason)
	}
}

func TestIntegrationSearchThenBind(t *testing.T) {
	s := ldaptest.Start(t)
	b := newBackend(t, searchConfig(t, s))

	mustLogin(t, b, "alice", "alice-pw", "alice", "alice@mppd.test", "a.liddell@mppd.test", "postmaster@mppd.test")
	mustLogin(t, b, "carol", "carol-pw", "carol", "carol@mppd.test")
	mustFail(t, b, "alice", "wrong", true, "bad-password")
	mustFail(t, b, "mallory", "alice-pw", true, "unknown-user")
	// dave has two entries: refused, never logged in as the first.
	mustFail(t, b, "dave", "dave-pw", true, "ambiguous-user")
	// bob has no mail attribute: refused unless a default domain is set.
	mustFail(t, b, "bob", "bob-pw", true, "no-address")

	cfg := searchConfig(t, s)
	cfg.DefaultDomain = "users.mppd.test"
	mustLogin(t, newBackend(t, cfg), "bob", "bob-pw", "bob", "bob@users.mppd.test")

	// A wrong service password is the configuration's fault: 451, never 530.
	cfg = searchConfig(t, s)
	os.WriteFile(cfg.ServicePasswordFile, []byte("not-it\n"), 0o600)
	mustFail(t, newBackend(t, cfg), "alice", "alice-pw", false, "service-credentials")
}

func TestIntegrationDirectBind(t *testing.T) {
	s := ldaptest.Start(t)
	// Without a service account the entry is read as the user.
	b := newBackend(t, directConfig(s))
	mustLogin(t, b, "alice", "alice-pw", "alice", "alice@mppd.test", "a.liddell@mppd.test", "postmaster@mppd.test")
	mustFail(t, b, "alice", "wrong", true, "invalid-credentials")
	mustFail(t, b, "mallory", "whatever", true, "invalid-credentials")
	// "smith, j" works only because the comma is DN-escaped.
	// Its uid is no possible local account name, so there is none.
	id, err := login(b, "smith, j", "smith-pw")
	if err != nil || id.Login != "smith, j" || id.Account != "" || !slices.Equal(id.Addresses, []string{"j.smith@mppd.test"}) {
		t.Fatalf("login \"smith, j\": %+v, %v", id, err)
	}
	// ... and cannot be used to point the bind elsewhere.
	mustFail(t, b, "alice,ou=people", "alice-pw", true, "invalid-credentials")

	// With a service account the entry is read as the service account.
	cfg := directConfig(s)
	pwFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(pwFile, []byte(servicePW), 0o600)
	cfg.ServiceDN, cfg.ServicePasswordFile = serviceDN, pwFile
	b = newBackend(t, cfg)
	mustLogin(t, b, "carol", "carol-pw", "carol", "carol@mppd.test")
	mustFail(t, b, "carol", "alice-pw", true, "invalid-credentials")
}

// An empty password must never reach the server: the stats log shows no
// connection and no BIND for it.
func TestIntegrationEmptyPasswordSendsNoBind(t *testing.T) {
	s := ldaptest.Start(t)
	for name, cfg := range map[string]config.LDAP{"search": searchConfig(t, s), "direct": directConfig(s)} {
		t.Run(name, func(t *testing.T) {
			b := newBackend(t, cfg)
			aliceDN := "uid=alice,ou=people,dc=mppd,dc=test"
			acceptsBefore, bindsBefore := s.Accepts(), s.AllBinds()
			mustFail(t, b, "alice", "", true, "empty-password")
			if sd, bd, _ := b.PoolStats(); sd+bd != 0 {
				t.Errorf("%d connections dialled for an empty password", sd+bd)
			}
			time.Sleep(200 * time.Millisecond) // let slapd's log catch up, were there anything
			if n := s.Accepts(); n != acceptsBefore {
				t.Errorf("slapd accepted %d connections during an empty-password login", n-acceptsBefore)
			}
			if n := s.AllBinds(); n != bindsBefore {
				t.Errorf("slapd saw %d binds during an empty-password login", n-bindsBefore)
			}
			// The counter works: a real login is seen.
			aliceBinds := s.Binds(aliceDN)
			mustLogin(t, b, "alice", "alice-pw", "alice", "alice@mppd.test", "a.liddell@mppd.test", "postmaster@mppd.test")
			waitFor(t, func() bool { return s.Binds(aliceDN) == aliceBinds+1 }, "slapd to log alice's bind")
		})
	}
}

func TestIntegrationGroups(t *testing.T) {
	s := ldaptest.Start(t)
	byFilter := searchConfig(t, s)
	byFilter.GroupFilter = "(memberOf=" + postersDN + ")"
	bySearch := searchConfig(t, s)
	bySearch.GroupSearchBase = "ou=groups,dc=mppd,dc=test"
	bySearch.GroupSearchFilter = "(&(objectClass=groupOfNames)(cn=posters)(member={dn}))"
	asUser := directConfig(s) // group search done with the user's own rights
	asUser.GroupSearchBase = bySearch.GroupSearchBase
	asUser.GroupSearchFilter = bySearch.GroupSearchFilter
	for name, cfg := range map[string]config.LDAP{"memberOf": byFilter, "group-search": bySearch, "direct-as-user": asUser} {
		t.Run(name, func(t *testing.T) {
			b := newBackend(t, cfg)
			mustLogin(t, b, "alice", "alice-pw", "alice", "alice@mppd.test", "a.liddell@mppd.test", "postmaster@mppd.test")
			mustFail(t, b, "carol", "carol-pw", true, "not-in-group")
			// The password is checked first: a non-member with a wrong
			// password is a wrong password.
			reason := "bad-password"
			if cfg.Direct() {
				reason = "invalid-credentials"
			}
			mustFail(t, b, "carol", "nope", true, reason)

			// A group search base the directory does not have is the
			// configuration's fault: 451 for the member too, never 530.
			if cfg.GroupSearchFilter != "" {
				cfg.GroupSearchBase = "ou=nowhere,dc=mppd,dc=test"
				mustFail(t, newBackend(t, cfg), "alice", "alice-pw", false, "group-search")
			}
		})
	}
}

// Filter metacharacters in the user name are escaped once (RFC 4515) and
// match nothing; with alice's password none of them logs in as anyone.
func TestIntegrationFilterInjection(t *testing.T) {
	s := ldaptest.Start(t)
	b := newBackend(t, searchConfig(t, s))
	d := newBackend(t, directConfig(s))
	for _, user := range []string{
		"*", "al*", "*)(uid=*", ")(uid=*", "alice)(|(uid=*", "*)(|(objectClass=*", `\`, `\2a`,
		"al\x00ice", "alice\x00", "\x00", "alice)", "(uid=alice)", "cn=admin,dc=mppd,dc=test",
	} {
		mustFail(t, b, user, "alice-pw", true, "unknown-user")
		if _, err := login(d, user, "alice-pw"); !authn.IsBadCredentials(err) {
			t.Errorf("direct bind as %q: %v, want bad credentials", user, err)
		}
	}
}

func TestIntegrationTLS(t *testing.T) {
	s := ldaptest.Start(t)
	t.Run("StartTLS", func(t *testing.T) {
		before := strings.Count(s.Log(), "STARTTLS")
		mustLogin(t, newBackend(t, searchConfig(t, s)), "carol", "carol-pw", "carol", "carol@mppd.test")
		if strings.Count(s.Log(), "STARTTLS") <= before {
			t.Errorf("no STARTTLS in slapd's log")
		}
	})
	t.Run("LDAPS", func(t *testing.T) {
		cfg := searchConfig(t, s)
		cfg.URIs = []string{s.LDAPSURI}
		cfg.MinTLSVersion = "1.3"
		mustLogin(t, newBackend(t, cfg), "carol", "carol-pw", "carol", "carol@mppd.test")
	})
	t.Run("ServerName", func(t *testing.T) {
		cfg := searchConfig(t, s)
		cfg.ServerName = "ldap.mppd.test"
		mustLogin(t, newBackend(t, cfg), "carol", "carol-pw", "carol", "carol@mppd.test")
		cfg.ServerName = "other.mppd.test"
		mustFail(t, newBackend(t, cfg), "carol", "carol-pw", false, "tls")
	})
	t.Run("UnknownCA", func(t *testing.T) {
		for _, uri := range []string{s.URI, s.LDAPSURI} {
			cfg := searchConfig(t, s)
			cfg.URIs, cfg.CAFile = []string{uri}, "" // system roots do not know the test CA
			mustFail(t, newBackend(t, cfg), "carol", "carol-pw", false, "tls")
		}
	})
	t.Run("InsecurePlaintext", func(t *testing.T) {
		before := strings.Count(s.Log(), "STARTTLS")
		cfg := searchConfig(t, s)
		cfg.InsecurePlaintext = true
		mustLogin(t, newBackend(t, cfg), "carol", "carol-pw", "carol", "carol@mppd.test")
		if n := strings.Count(s.Log(), "STARTTLS"); n != before {
			t.Errorf("insecure_plaintext still did STARTTLS")
		}
	})
}

func TestIntegrationFailover(t *testing.T) {
	s := ldaptest.Start(t)
	dead := fmt.Sprintf("ldap://127.0.0.1:%d", ldaptest.FreePort(t))
	cfg := searchConfig(t, s)
	cfg.URIs = []string{dead, s.URI}
	mustLogin(t, newBackend(t, cfg), "carol", "carol-pw", "carol", "carol@mppd.test")

	cfg.URIs = []string{dead, fmt.Sprintf("ldaps://127.0.0.1:%d", ldaptest.FreePort(t))}
	mustFail(t, newBackend(t, cfg), "carol", "carol-pw", false, "connect")
}

// slapd stops while mppd runs: logins are "unavailable" (451), never "bad
// credentials"; once slapd is back the same backend recovers, re-dialling
// the connections the server closed.
func TestIntegrationServerRestart(t *testing.T) {
	s := ldaptest.Start(t)
	b := newBackend(t, searchConfig(t, s))
	mustLogin(t, b, "carol", "carol-pw", "carol", "carol@mppd.test")
	mustFail(t, b, "carol", "wrong", true, "bad-password")

	s.Stop()
	for range 3 {
		mustFail(t, b, "carol", "carol-pw", false, "connect")
	}
	s.Start()
	mustLogin(t, b, "carol", "carol-pw", "carol", "carol@mppd.test")

	// Restart again between two logins: the pooled connections are dead
	// when the next login takes them, and that must not show.
	s.Stop()
	s.Start()
	mustLogin(t, b, "carol", "carol-pw", "carol", "carol@mppd.test")
	mustFail(t, b, "carol", "wrong", true, "bad-password")
}

// 200 logins from 20 goroutines open at most pool_size connections per
// pool, counted by slapd's ACCEPT lines.
func TestIntegrationPoolReuse(t *testing.T) {
	s := ldaptest.Start(t)
	cfg := searchConfig(t, s)
	cfg.PoolSize = 4
	b := newBackend(t, cfg)
	before := s.Accepts()
	start := time.Now()
	var n atomic.Int64
	testenv.Concurrently(t, 20, func() error {
		for range 10 {
			user, pw := "alice", "alice-pw"
			if n.Add(1)%2 == 1 {
				user, pw = "carol", "carol-pw"
			}
			if _, err := login(b, user, pw); err != nil {
				return fmt.Errorf("%s: %w", user, err)
			}
		}
		return nil
	})()
	elapsed := time.Since(start)
	sd, bd, reused := b.PoolStats()
	// slapd logs every connection the pools dialled; wait for its log.
	waitFor(t, func() bool { return int64(s.Accepts()-before) >= sd+bd }, "slapd to log the pools' connections")
	conns := s.Accepts() - before
	t.Logf("200 logins in %v: slapd accepted %d connections; dialled search=%d bind=%d; %d checkouts reused", elapsed, conns, sd, bd, reused)
	if conns > 2*cfg.PoolSize || conns == 0 {
		t.Errorf("slapd accepted %d connections for 200 logins, want 1..%d", conns, 2*cfg.PoolSize)
	}
	if reused < 400-int64(2*cfg.PoolSize) {
		t.Errorf("only %d of 400 checkouts reused a pooled connection", reused)
	}
}

// waitFor polls cond until it holds. The deadline is generous (a loaded
// machine, slapd's idle check running only every few seconds) and costs
// nothing when cond holds early.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A directory that demands a client certificate gets the configured one;
// without it the login is unavailable, never a wrong password.
func TestIntegrationClientCert(t *testing.T) {
	s := ldaptest.StartWith(t, ldaptest.Options{RequireClientCert: true})
	for _, uri := range []string{s.URI, s.LDAPSURI} {
		cfg := searchConfig(t, s)
		cfg.URIs = []string{uri}
		cfg.ClientCert, cfg.ClientKey = s.ClientCert, s.ClientKey
		mustLogin(t, newBackend(t, cfg), "carol", "carol-pw", "carol", "carol@mppd.test")

		cfg.ClientCert, cfg.ClientKey = "", ""
		_, err := login(newBackend(t, cfg), "carol", "carol-pw")
		if err == nil || authn.IsBadCredentials(err) {
			t.Fatalf("%s without a client certificate: %v, want unavailable", uri, err)
		}
		t.Logf("%s without a client certificate: reason %s: %v", uri, authn.Reason(err), err)
	}
}

// slapd closes connections idle for a second; pooled connections it closed
// are dialled again, and neither the right password nor a wrong one is
// misreported.
func TestIntegrationIdleClosedByServer(t *testing.T) {
	s := ldaptest.StartWith(t, ldaptest.Options{IdleTimeout: 1})
	cfg := searchConfig(t, s)
	cfg.PoolIdleTimeout = 0 // keep them: the server is the one closing
	b := newBackend(t, cfg)
	mustLogin(t, b, "carol", "carol-pw", "carol", "carol@mppd.test")
	search1, bind1, _ := b.PoolStats()
	waitFor(t, func() bool { return strings.Count(s.Log(), "closed (idletimeout)") >= 2 }, "slapd to close the idle connections")
	mustLogin(t, b, "carol", "carol-pw", "carol", "carol@mppd.test")
	mustFail(t, b, "carol", "wrong", true, "bad-password")
	search2, bind2, _ := b.PoolStats()
	if search2 <= search1 || bind2 <= bind1 {
		t.Errorf("connections were not dialled again: search %d→%d, bind %d→%d", search1, search2, bind1, bind2)
	}
}
