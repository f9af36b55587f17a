package config

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/authn/cache"
	"github.com/mppd/mppd/authn/limiter"
	dlimiter "github.com/mppd/mppd/delivery/limiter"
	"github.com/mppd/mppd/internal/throttle"
)

// TestAbuseKeys: [throttle], the concurrency caps and [authn.cache] are
// read, and the backends come wrapped in them.
func TestAbuseKeys(t *testing.T) {
	dir := t.TempDir()
	doc := `
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
` + backends
	path := filepath.Join(dir, "mppd.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tc := c.ThrottleConfig()
	if len(tc.Penalties) != 2 || tc.Penalties[1] != 3*time.Second || tc.Window != 5*time.Minute ||
		tc.MaxPerClient != 4 || tc.MaxPerNetwork != 9 || tc.IPv4Prefix != 16 || tc.IPv6Prefix != 48 || tc.MaxEntries != 500 {
		t.Errorf("throttle config %+v", tc)
	}
	th := throttle.New(tc, nil)
	if !strings.Contains(th.String(), "/16") {
		t.Errorf("throttle %s", th)
	}
	log := slog.New(slog.DiscardHandler)
	a, err := c.BuildAuthenticator(log)
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
	d, err := c.BuildDeliverer(log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(*dlimiter.Limiter); !ok || !strings.Contains(d.(*dlimiter.Limiter).String(), "at most 5 at once (queue 7s)") {
		t.Errorf("deliverer %T %v", d, d)
	}
}

// By default: the throttle on with the documented steps, no cache, the
// caps in front of the backends.
func TestAbuseDefaults(t *testing.T) {
	c := Default()
	c.Authn.Passwdfile.Path = filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(c.Authn.Passwdfile.Path, nil, 0o600)
	c.Authn.Passwdfile.MailDomain = "example.test"
	tc := c.ThrottleConfig()
	if tc.MaxPerClient != 10 || tc.MaxPerNetwork != 30 || tc.Window != 15*time.Minute || len(tc.Penalties) != 4 || tc.IPv6Prefix != 64 {
		t.Errorf("default throttle %+v", tc)
	}
	a, err := c.BuildAuthenticator(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(*limiter.Limiter); !ok {
		t.Errorf("default authenticator %T, want the limiter (no cache)", a)
	}
	// The limiter passes answers through.
	if _, err := a.Authenticate(context.Background(), authn.Request{User: "nobody", Password: "x"}); !authn.IsBadCredentials(err) {
		t.Errorf("unknown user through the limiter: %v", err)
	}
}

func TestAbuseErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"[throttle]\nwindow = \"0s\"\n":                 "FILE:2: throttle.window:",
		"[throttle]\nipv4_prefix = 33\n":                "FILE:2: throttle.ipv4_prefix: 33 is out of range",
		"[throttle]\npenalties = [\"1h\"]\n":            "FILE:2: throttle.penalties: 1h0m0s is longer than 5m",
		"[throttle]\npenalties = [\"soon\"]\n":          "FILE:2: throttle.penalties",
		"[throttle]\nmax_failures_per_client = -1\n":    "FILE:2: throttle.max_failures_per_client",
		"[authn]\nmax_concurrent = 0\n":                 "FILE:2: authn.max_concurrent: 0 is out of range",
		"[authn.cache]\nenabled = true\nttl = \"2h\"\n": "FILE:3: authn.cache.ttl: 2h0m0s is out of range",
		"[delivery]\nqueue_timeout = \"1h\"\n":          "FILE:2: delivery.queue_timeout:",
		"[delivery]\nmax_concurrent = 1000000\n":        "FILE:2: delivery.max_concurrent",
	} {
		path := filepath.Join(t.TempDir(), "mppd.toml")
		os.WriteFile(path, []byte(doc), 0o644)
		_, err := Load(path)
		if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), path, "FILE"), want) {
			t.Errorf("%q: got %v, want %s", doc, err, want)
		}
	}
}
