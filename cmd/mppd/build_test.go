package main

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
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/message"
	"github.com/mppd/mppd/internal/sendlimit"
	"github.com/mppd/mppd/internal/testharness"
	"github.com/mppd/mppd/internal/throttle"
	"github.com/mppd/mppd/protocol"
)

// backendsTOML is the smallest valid backend configuration, with the
// password file at passwd (relative to the config file).
func backendsTOML(passwd string) string {
	return fmt.Sprintf("\n[authn.passwdfile]\npath = %q\nmail_domain = \"example.test\"\n\n[delivery.maildir]\nroot = \"maildir\"\n", passwd)
}

// testBackends has the password file beside the config file.
var testBackends = backendsTOML("passwd")

// loadTest writes doc as mppd.toml, with an empty password file beside
// it, and loads it.
func loadTest(t *testing.T, doc string) (*config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mppd.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

// TestProtocolConfigDefaults: a file that sets nothing gives the engine
// the documented defaults (mppd.conf(5)).
func TestProtocolConfigDefaults(t *testing.T) {
	c, _ := loadTest(t, "hostname = \"mx.example.test\"\n"+testBackends)
	p := protocolConfig(c)
	want := protocol.Limits{
		MaxLine: 1000, MaxMessage: 10_240_000, MaxHeader: 102_400, MaxRecipients: 100, MaxReceived: 50,
		IdleTimeout: 5 * time.Minute, SessionTimeout: 20 * time.Minute, MinDataRate: 500,
		MaxErrors: 3, MaxJunk: 100,
	}
	if p.Limits != want {
		t.Errorf("limits = %+v\nwant     %+v", p.Limits, want)
	}
	if p.Hostname != "mx.example.test" || p.SenderPolicy != message.AddSender ||
		!p.ReceivedClientAddress || p.AuthFailureDelay != time.Second ||
		p.MemoryThreshold != 1<<20 || p.StagingDir != "" {
		t.Errorf("protocol config = %+v", p)
	}
	if p.UserPattern == nil || p.UserPattern.String() != config.DefaultUserPattern {
		t.Errorf("user pattern = %v", p.UserPattern)
	}
	// protocol.DefaultConfig, the engine without a config file, is the same.
	d := protocol.DefaultConfig()
	if d.UserPattern == nil || d.UserPattern.String() != config.DefaultUserPattern {
		t.Errorf("protocol.DefaultConfig user pattern = %v", d.UserPattern)
	}
	d.Hostname, d.UserPattern = p.Hostname, p.UserPattern
	if d != p {
		t.Errorf("protocol.DefaultConfig() = %+v\nthe default file gives %+v", d, p)
	}
}

// TestProtocolConfigAllKeys: every [session] and [message] key reaches
// the engine.
func TestProtocolConfigAllKeys(t *testing.T) {
	c, dir := loadTest(t, testharness.EngineKeysTOML+testBackends)
	p := protocolConfig(c)
	want := protocol.Limits{
		MaxLine: 2000, MaxMessage: 2048, MaxHeader: 1024, MaxRecipients: 4, MaxReceived: 6,
		IdleTimeout: time.Minute, SessionTimeout: 2 * time.Minute, MinDataRate: 0,
		MaxErrors: 5, MaxJunk: 9,
	}
	if p.Limits != want {
		t.Errorf("limits = %+v\nwant     %+v", p.Limits, want)
	}
	if p.SenderPolicy != message.Reject || p.ReceivedClientAddress || p.AuthFailureDelay != 0 ||
		p.StagingDir != dir || p.MemoryThreshold != 0 || p.UserPattern.String() != "^[a-z]+$" {
		t.Errorf("protocol config = %+v", p)
	}
}

// TestBuildDevConfig: dev/mppd.toml's backends build.
func TestBuildDevConfig(t *testing.T) {
	c, err := config.Load("../../dev/mppd.toml")
	if err != nil {
		t.Fatal(err)
	}
	// Building the maildir backend creates its root: keep it out of the
	// source tree.
	c.Delivery.Maildir.Root = t.TempDir()
	log := slog.New(slog.DiscardHandler)
	if _, err := buildAuthenticator(c, log); err != nil {
		t.Error(err)
	}
	if _, err := buildDeliverer(c, log); err != nil {
		t.Error(err)
	}
}

// TestBuildErrorLines: a backend that cannot be built from a valid config
// (a file it needs is missing) is reported with the config file and the
// line of the key it names, or of its section when it names none.
func TestBuildErrorLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mppd.toml")
	doc := "[authn]\nbackend = \"ldap\"\n[authn.ldap]\nuris = [\"ldaps://127.0.0.1\"]\nuser_dn = \"uid={user},dc=example\"\nca_file = \"/nonexistent/ca.pem\"\n" +
		"[delivery.maildir]\nroot = \"maildir\"\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := buildAuthenticator(c, log); err == nil || !strings.HasPrefix(err.Error(), path+":6: authn.ldap.ca_file: ") {
		t.Errorf("ldap without its CA file: %v", err)
	}

	doc = "[authn.passwdfile]\npath = \"/nonexistent/passwd\"\nmail_domain = \"example.test\"\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = config.Load(path); err != nil {
		t.Fatal(err)
	}
	if _, err := buildAuthenticator(c, log); err == nil || !strings.HasPrefix(err.Error(), path+":1: authn.passwdfile: ") {
		t.Errorf("missing password file: %v", err)
	}
}

// TestBuildAbuseKeys: [throttle], the concurrency caps and [authn.cache] are
// read, and the backends come wrapped in them.
func TestBuildAbuseKeys(t *testing.T) {
	c, _ := loadTest(t, `
trusted_networks = ["10.0.0.0/8"]

[throttle]
penalties = ["1s", "3s"]
window = "5m"
max_failures_per_client = 4
max_failures_per_network = 9
ipv4_prefix = 16
ipv6_prefix = 48
max_entries = 500

[authn]
max_concurrent = 3
queue_timeout = "2s"

[authn.cache]
enabled = true
ttl = "30s"
max_entries = 50

[delivery]
max_concurrent = 5
queue_timeout = "7s"
`+testBackends)
	tc := throttleConfig(c)
	if len(tc.Penalties) != 2 || tc.Penalties[1] != 3*time.Second || tc.Window != 5*time.Minute ||
		tc.MaxPerClient != 4 || tc.MaxPerNetwork != 9 || tc.IPv4Prefix != 16 || tc.IPv6Prefix != 48 || tc.MaxEntries != 500 {
		t.Errorf("throttle config %+v", tc)
	}
	th := throttle.New(tc, nil)
	if !strings.Contains(th.String(), "/16") {
		t.Errorf("throttle %s", th)
	}
	log := slog.New(slog.DiscardHandler)
	a, err := buildAuthenticator(c, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(*cache.Cache); !ok {
		t.Errorf("authenticator %T, want the cache in front", a)
	}
	if s := a.(interface{ String() string }).String(); !strings.Contains(s, "at most 3 at once (queue 2s)") || !strings.Contains(s, "cached for 30s") {
		t.Errorf("authenticator described as %q", s)
	}
	c.Delivery.Maildir.Root = t.TempDir()
	d, err := buildDeliverer(c, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(*delivery.Limited); !ok || !strings.Contains(d.(*delivery.Limited).String(), "at most 5 at once (queue 7s)") {
		t.Errorf("deliverer %T %v", d, d)
	}
}

// By default: the throttle on with the documented steps, no cache, the
// caps in front of the backends.
func TestBuildAbuseDefaults(t *testing.T) {
	c := config.Default()
	c.Authn.Passwdfile.Path = filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(c.Authn.Passwdfile.Path, nil, 0o600)
	c.Authn.Passwdfile.MailDomain = "example.test"
	tc := throttleConfig(c)
	if tc.MaxPerClient != 10 || tc.MaxPerNetwork != 30 || tc.Window != 15*time.Minute || len(tc.Penalties) != 4 || tc.IPv6Prefix != 64 {
		t.Errorf("default throttle %+v", tc)
	}
	a, err := buildAuthenticator(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(*authn.Limited); !ok {
		t.Errorf("default authenticator %T, want the cap (no cache)", a)
	}
	// The cap passes answers through.
	if _, err := a.Authenticate(context.Background(), authn.Request{User: "nobody", Password: "x"}); !authn.IsBadCredentials(err) {
		t.Errorf("unknown user through the cap: %v", err)
	}
}

// TestBuildSendLimits: [limits] is read, an override keeps the keys it
// leaves out from [limits], and all zero turns the limits off.
func TestBuildSendLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mppd.toml")
	doc := `
[limits]
messages_per_hour = 20
recipients_per_hour = 100
recipients_per_day = 0
max_entries = 300
[limits.users.Newsletter]
messages_per_hour = 0
recipients_per_day = 900
`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := sendLimitConfig(c)
	if sc.Default != (sendlimit.Limits{MessagesPerHour: 20, RecipientsPerHour: 100}) || sc.MaxEntries != 300 {
		t.Errorf("default limits %+v", sc)
	}
	if got := sc.Users["Newsletter"]; got != (sendlimit.Limits{RecipientsPerHour: 100, RecipientsPerDay: 900}) {
		t.Errorf("override %+v", got)
	}
	lim := sendlimit.New(sc, nil)
	if got := lim.Limits("newsletter"); got.RecipientsPerDay != 900 || !lim.Enabled() {
		t.Errorf("limiter: newsletter %+v, enabled %v", got, lim.Enabled())
	}
	def := sendLimitConfig(config.Default())
	if def.Default != (sendlimit.Limits{MessagesPerHour: 200, RecipientsPerHour: 1000, RecipientsPerDay: 5000}) || len(def.Users) != 0 {
		t.Errorf("defaults %+v", def)
	}
	c.Limits = config.Limits{MaxEntries: 100}
	if sendlimit.New(sendLimitConfig(c), nil).Enabled() {
		t.Error("all zero is enabled")
	}
}
