package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/message"
	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// backends is the smallest valid backend configuration.
const backends = `
[authn.passwdfile]
path = "passwd"
mail_domain = "example.test"

[delivery.maildir]
root = "maildir"
`

func TestLoadMinimal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mppd.toml")
	if err := os.WriteFile(path, []byte("hostname = \"mx.example.test\"\n"+backends), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Authn.Passwdfile.Path != filepath.Join(dir, "passwd") {
		t.Errorf("passwdfile path = %q, want it relative to the config file's directory", c.Authn.Passwdfile.Path)
	}
	if c.Delivery.Maildir.Root != filepath.Join(dir, "maildir") {
		t.Errorf("maildir root = %q, want it relative to the config file's directory", c.Delivery.Maildir.Root)
	}
	if got, want := c.Listen, []string{":218"}; !reflect.DeepEqual(got, want) {
		t.Errorf("listen = %q, want %q", got, want)
	}
	if c.DrainTimeout.D() != 30*time.Second || c.MaxSessions != 10000 || c.MaxSessionsPerClient != 50 {
		t.Errorf("top-level defaults wrong: %+v", c)
	}
	if c.LogLevel() != slog.LevelInfo || c.Log.Format != "text" {
		t.Errorf("log defaults wrong: %+v", c.Log)
	}

	if c.Message.SenderPolicy != message.AddSender || !c.Message.ReceivedClientAddress || c.Message.StagingDir != "" {
		t.Errorf("message defaults wrong: %+v", c.Message)
	}
	if c.UserPattern().String() != DefaultUserPattern {
		t.Errorf("user pattern = %v", c.UserPattern())
	}
}

func TestLoadAllKeys(t *testing.T) {
	dir := t.TempDir()
	doc := `
hostname = "mppd.example.test"
listen = ["127.0.0.1:2525", "[::1]:2525"]
drain_timeout = "10s"
max_sessions = 7
max_sessions_per_client = 3
trusted_networks = ["10.0.0.0/8"]

[log]
level = "debug"
format = "json"
` + testharness.EngineKeysTOML + backends
	path := filepath.Join(dir, "mppd.toml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Session{
		MaxLine: 2000, IdleTimeout: Duration(time.Minute), SessionTimeout: Duration(2 * time.Minute),
		MinDataRate: 0, MaxErrors: 5, MaxJunkCommands: 9, UserPattern: "^[a-z]+$", AuthFailureDelay: 0,
	}
	if c.Session != want {
		t.Errorf("session = %+v\nwant      %+v", c.Session, want)
	}
	m := c.Message
	if m.MaxSize != 2048 || m.MaxHeaderSize != 1024 || m.MaxRecipients != 4 || m.MaxReceived != 6 ||
		m.SenderPolicy != message.Reject || m.ReceivedClientAddress || m.StagingDir != dir || m.MemoryThreshold != 0 ||
		c.UserPattern().String() != "^[a-z]+$" {
		t.Errorf("message = %+v", m)
	}
	if c.LogLevel() != slog.LevelDebug || c.DrainTimeout.D() != 10*time.Second {
		t.Errorf("config = %+v", c)
	}
	for ip, trusted := range map[string]bool{"10.1.2.3": true, "::ffff:10.1.2.3": true, "127.0.0.1": false, "::1": false} {
		if got := c.Trusted(netip.MustParseAddr(ip)); got != trusted {
			t.Errorf("Trusted(%s) = %v, want %v", ip, got, trusted)
		}
	}
}

// TestLoadErrors checks that every kind of mistake is refused with the
// file, the line and the key.
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want []string // substrings of the error; FILE is replaced
	}{
		{"unknown top-level key", "hostnme = \"x\"\n", []string{"FILE:1: hostnme: unknown key"}},
		{"unknown keys, all reported", "max_sesions = 1\n[session]\nidle = \"1m\"\n", []string{"FILE:1: max_sesions: unknown key", "FILE:3: session.idle: unknown key"}},
		{"unknown table", "[sesion]\nmax_line = 1\n", []string{"FILE:1: sesion: unknown key"}},
		{"unknown backend section", "[authn.kerberos]\nrealm = \"X\"\n", []string{"FILE:1: authn.kerberos: unknown key"}},
		{"bad duration", "\n[session]\nidle_timeout = \"5 minutes\"\n", []string{"FILE:3: session.idle_timeout:", "bad duration"}},
		{"duration without unit", "drain_timeout = 30\n", []string{"FILE:1: drain_timeout:", "quoted string with a unit"}},
		{"negative duration", "drain_timeout = \"-1s\"\n", []string{"FILE:1: drain_timeout:", "negative"}},
		{"wrong type", "max_sessions = \"many\"\n", []string{"FILE:1: max_sessions:"}},
		{"syntax error", "\nlisten = [\"a\" \"b\"]\n", []string{"FILE:2:"}},
		{"duplicate key", "max_sessions = 1\nmax_sessions = 2\n", []string{"FILE:2: max_sessions:"}},
		{"bad regexp", "[session]\nuser_pattern = '^[a-z$'\n", []string{"FILE:2: session.user_pattern:", "missing closing ]"}},
		{"unanchored regexp", "[session]\nuser_pattern = '[a-z]+'\n", []string{"FILE:2: session.user_pattern:", "anchored"}},
		{"unknown authn backend", "[authn]\nbackend = \"kerberos\"\n", []string{"FILE:2: authn.backend:", `unknown backend "kerberos"`}},
		{"unknown delivery backend", "\n\n[delivery]\nbackend = \"uucp\"\n", []string{"FILE:4: delivery.backend:", `unknown backend "uucp"`}},
		{"bad listen", "listen = [\"127.0.0.1\"]\n", []string{"FILE:1: listen:", "missing port"}},
		{"listen host name", "listen = [\"localhost:218\"]\n", []string{"FILE:1: listen:", "not an IP address"}},
		{"listen port", "listen = [\"127.0.0.1:99999\"]\n", []string{"FILE:1: listen:", "port"}},
		{"no listen", "listen = []\n", []string{"FILE:1: listen: no address"}},
		{"bad network", "trusted_networks = [\"10.0.0.1\"]\n", []string{"FILE:1: trusted_networks:", "CIDR"}},
		{"bad proxy network", "proxy_protocol_from = [\"lb.example\"]\n", []string{"FILE:1: proxy_protocol_from:", "CIDR"}},
		{"max_sessions zero", "max_sessions = 0\n", []string{"FILE:1: max_sessions: 0 is out of range"}},
		{"max_line too small", "[session]\nmax_line = 100\n", []string{"FILE:2: session.max_line: 100 is out of range"}},
		{"session shorter than idle", "[session]\nidle_timeout = \"10m\"\nsession_timeout = \"5m\"\n", []string{"FILE:3: session.session_timeout:"}},
		{"bad level", "[log]\nlevel = \"loud\"\n", []string{"FILE:2: log.level:", `"loud" is not one of`}},
		{"bad format", "[log]\nformat = \"xml\"\n", []string{"FILE:2: log.format:"}},
		{"bad sender policy", "[message]\nsender_policy = \"drop\"\n", []string{"FILE:2: message.sender_policy:"}},
		{"header larger than message", "[message]\nmax_size = 2000\nmax_header_size = 4000\n", []string{"FILE:3: message.max_header_size:"}},
		{"staging dir missing", "[message]\nstaging_dir = \"nonexistent\"\n", []string{"FILE:2: message.staging_dir:"}},
		{"bad hostname", "hostname = \"a b\"\n", []string{"FILE:1: hostname:"}},
		{"backend section invalid", "[authn.passwdfile]\npath = \"\"\n", []string{"FILE:1: authn.passwdfile:", "path"}},
		// A backend's problems are each reported at the line of the key
		// they name, the section's own prefix not repeated; a key left
		// at its default is reported at the section's line.
		{"backend key invalid", "[delivery]\nbackend = \"sendmail\"\n[delivery.sendmail]\npath = \"/usr/sbin/sendmail\"\ntimeout = \"0s\"\nfallback_account = \"-root\"\n",
			[]string{"FILE:5: delivery.sendmail.timeout: 0s is out of range", "FILE:6: delivery.sendmail.fallback_account: \"-root\""}},
		{"backend key invalid, prefixed with the backend's name", "[authn]\nbackend = \"passwdfile\"\n[authn.passwdfile]\npath = \"passwd\"\nmail_domain = \"a b\"\n",
			[]string{"FILE:5: authn.passwdfile.mail_domain: "}},
		{"backend problems joined on one line", "[authn]\nbackend = \"pam\"\n[authn.pam]\nservice = \"a/b\"\nworkers = 0\n",
			[]string{"FILE:4: authn.pam.service: \"a/b\" is not a PAM service name (letters, digits, '_', '.', '+', '-'; at most 64; it names a file in /etc/pam.d)\n",
				"FILE:5: authn.pam.workers: must be between"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Backends come last (and so never shift the lines the
			// cases name) unless the case sets them itself.
			doc := tc.doc
			if !strings.Contains(doc, "[authn") {
				doc += "\n[authn.passwdfile]\npath = \"passwd\"\nmail_domain = \"example.test\"\n"
			}
			if !strings.Contains(doc, "[delivery") {
				doc += "\n[delivery.maildir]\nroot = \"maildir\"\n"
			}
			path := filepath.Join(t.TempDir(), "bad.toml")
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load accepted:\n%s", doc)
			}
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "FILE", path)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// TestDefaultsAreValid checks that Default() passes validation once the
// backends (which have required settings) are configured.
func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	c.Hostname = "mppd.example.test"
	c.Delivery.Maildir.Root = t.TempDir()
	c.Authn.Passwdfile.MailDomain = "example.test"
	if err := c.validate(nil); err != nil {
		t.Fatal(err)
	}
}

// TestHostnameDefault checks that an empty hostname becomes the system's
// host name, which is also the default mail domain when there is no
// /etc/mailname and no fully qualified name (TestDefaultMailDomain).
func TestHostnameDefault(t *testing.T) {
	h, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	withMailDomainSources(t, "", nil)
	doc := "[authn.passwdfile]\npath = \"p\"\n[delivery.maildir]\nroot = \"m\"\n"
	c, err := parse(filepath.Join(t.TempDir(), "c.toml"), []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != h || c.Authn.Passwdfile.MailDomain != h {
		t.Errorf("hostname %q, mail_domain %q, want %q", c.Hostname, c.Authn.Passwdfile.MailDomain, h)
	}
}

// TestPackagedConfig checks the commented sample that ships as
// /etc/mppd/mppd.toml: it loads, and it mentions every setting.
// Its backends are not built here (they need /etc/mppd/passwd).
func TestPackagedConfig(t *testing.T) {
	const path = "../../packaging/mppd.toml"
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range leafKeys(t) {
		section, name := "", key
		if i := strings.LastIndexByte(key, '.'); i >= 0 {
			section, name = key[:i], key[i+1:]
		}
		if !mentions(string(data), section, name) {
			t.Errorf("packaging/mppd.toml does not document %s", key)
		}
	}
}

// mentions reports whether doc sets or shows (commented out) name in the
// table section.
func mentions(doc, section, name string) bool {
	cur := ""
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			cur = strings.Trim(line, "[]")
			continue
		}
		line = strings.TrimPrefix(line, "#")
		if cur == section && strings.HasPrefix(line, name+" =") {
			return true
		}
	}
	return false
}

// leafKeys is config.Keys, with enough of them to be sure it worked.
func leafKeys(t *testing.T) []string {
	keys, err := Keys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 20 {
		t.Fatalf("only %d settings found: %v", len(keys), keys)
	}
	return keys
}

// TestDevConfig checks dev/mppd.toml loads (cmd/mppd's TestBuildDevConfig
// builds its backends).
func TestDevConfig(t *testing.T) {
	c, err := Load("../../dev/mppd.toml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("../../dev/passwd")
	if got, _ := filepath.Abs(c.Authn.Passwdfile.Path); got != abs {
		t.Errorf("passwd path %q, want %q", got, abs)
	}
	if got := c.Delivery.Maildir.Root; !strings.HasSuffix(got, "dev/maildir") {
		t.Errorf("maildir root %q", got)
	}
}

// TestLogValue checks the start-up summary: the effective values, the
// backends by name only.
func TestLogValue(t *testing.T) {
	c := Default()
	c.Hostname = "mppd.example.test"
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("starting", "config", c)
	testenv.Contains(t, buf.String(),
		"config.hostname=mppd.example.test",
		"config.listen=[:218]",
		"config.session.idle_timeout=5m0s",
		"config.message.max_size=10240000",
		"config.authn=passwdfile",
		"config.delivery=maildir",
	)
}

func TestDurationKeys(t *testing.T) {
	for _, k := range []string{"drain_timeout", "session.idle_timeout", "session.session_timeout", "session.auth_failure_delay",
		"authn.pam.timeout", "authn.pam.queue_timeout",
		"authn.ldap.dial_timeout", "authn.ldap.request_timeout", "authn.ldap.pool_idle_timeout",
		"delivery.sendmail.timeout", "systemd.exit_on_idle",
		"authn.queue_timeout", "authn.cache.ttl", "authn.cache.failure_ttl", "delivery.queue_timeout", "throttle.window"} {
		if !durationKeys[k] {
			t.Errorf("durationKeys lacks %s (has %v)", k, durationKeys)
		}
	}
	if len(durationKeys) != 16 {
		t.Errorf("durationKeys = %v", fmt.Sprint(durationKeys))
	}
}

// TestSessionsPerNetwork: max_sessions_per_network defaults to four times
// max_sessions_per_client, and a value set in the file wins.
func TestSessionsPerNetwork(t *testing.T) {
	c := Default()
	c.MaxSessionsPerClient = 7
	if got := c.SessionsPerNetwork(); got != 28 {
		t.Errorf("default: %d, want 28", got)
	}
	c.MaxSessionsPerNetwork = 5
	if got := c.SessionsPerNetwork(); got != 5 {
		t.Errorf("set: %d, want 5", got)
	}
}

// TestProxyFrom: proxy_protocol_from is off by default and matches the
// listed networks, IPv4-mapped addresses included.
func TestProxyFrom(t *testing.T) {
	c := Default()
	if c.ProxyProtocol() || c.ProxyFrom(netip.MustParseAddr("127.0.0.1")) {
		t.Error("PROXY protocol on by default")
	}
	path := filepath.Join(t.TempDir(), "mppd.toml")
	doc := "proxy_protocol_from = [\"10.0.0.0/24\", \"2001:db8::1/128\"]\n" + backends
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{"10.0.0.9": true, "::ffff:10.0.0.9": true, "10.0.1.9": false, "2001:db8::1": true, "2001:db8::2": false} {
		if got := c.ProxyFrom(netip.MustParseAddr(ip)); got != want {
			t.Errorf("ProxyFrom(%s) = %v, want %v", ip, got, want)
		}
	}
}
