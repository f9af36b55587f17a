package config

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func loadDoc(t *testing.T, doc string) (*Config, string, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mppd.toml")
	if err := os.WriteFile(path, []byte(doc+backends), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	return c, dir, err
}

// TestSocketKeys: listen_tls, [tls], [systemd] and [metrics] load, with
// relative certificate paths taken from the config file's directory.
func TestSocketKeys(t *testing.T) {
	c, dir, err := loadDoc(t, `
listen = []
listen_tls = ["127.0.0.1:1218"]
[tls]
cert_file = "tls/cert.pem"
key_file = "/etc/mppd/key.pem"
min_version = "1.3"
[systemd]
mpp_sockets = ["mpp", "mppd.socket"]
mpps_sockets = ["mpps"]
metrics_sockets = []
exit_on_idle = "5m"
[metrics]
listen = "[::1]:9218"
`)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.ListenTLS, []string{"127.0.0.1:1218"}) || len(c.Listen) != 0 {
		t.Errorf("listen %q listen_tls %q", c.Listen, c.ListenTLS)
	}
	if c.TLS.CertFile != filepath.Join(dir, "tls/cert.pem") || c.TLS.KeyFile != "/etc/mppd/key.pem" {
		t.Errorf("tls files %q %q", c.TLS.CertFile, c.TLS.KeyFile)
	}
	if c.TLSMinVersion() != tls.VersionTLS13 {
		t.Errorf("min version %x", c.TLSMinVersion())
	}
	if !reflect.DeepEqual(c.Systemd.MPPSockets, []string{"mpp", "mppd.socket"}) || c.Systemd.ExitOnIdle.D() != 5*time.Minute {
		t.Errorf("systemd %+v", c.Systemd)
	}
	if !c.MetricsLoopback() {
		t.Errorf("metrics %q not loopback", c.Metrics.Listen)
	}

	d := Default()
	if d.TLS.MinVersion != "1.2" || d.Metrics.Listen != "" || d.Systemd.ExitOnIdle != 0 ||
		!reflect.DeepEqual(d.Systemd.MPPSockets, []string{"mpp"}) || !reflect.DeepEqual(d.Systemd.MPPSSockets, []string{"mpps"}) {
		t.Errorf("defaults %+v %+v %+v", d.TLS, d.Systemd, d.Metrics)
	}
}

// TestSocketAnyPort: port 0 (the kernel picks one at bind time) may be
// given for listen, listen_tls and metrics.listen alike; such addresses
// never clash, so they are no duplicates.
func TestSocketAnyPort(t *testing.T) {
	c, _, err := loadDoc(t, "listen = [\"127.0.0.1:0\", \"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n[tls]\ncert_file = \"c\"\nkey_file = \"k\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listen) != 2 || len(c.ListenTLS) != 1 || c.Metrics.Listen != "127.0.0.1:0" {
		t.Errorf("listen %q listen_tls %q metrics %q", c.Listen, c.ListenTLS, c.Metrics.Listen)
	}
}

func TestSocketKeyErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"tls listen without cert", "listen_tls = [\"127.0.0.1:1218\"]\n", "tls.cert_file: required with listen_tls"},
		{"cert without key", "[tls]\ncert_file = \"c.pem\"\n", ":1: tls.key_file: required with tls.cert_file"},
		{"key without cert", "[tls]\nkey_file = \"k.pem\"\n", ":1: tls.cert_file: required with tls.key_file"},
		{"tls 1.1", "[tls]\nmin_version = \"1.1\"\n", ":2: tls.min_version:"},
		{"same address twice", "listen = [\"127.0.0.1:218\"]\nlisten_tls = [\"127.0.0.1:218\"]\n[tls]\ncert_file = \"c\"\nkey_file = \"k\"\n", ":2: listen_tls: \"127.0.0.1:218\" is listed twice"},
		{"bad tls address", "listen_tls = [\"localhost:1218\"]\n[tls]\ncert_file = \"c\"\nkey_file = \"k\"\n", ":1: listen_tls:"},
		{"name with colon", "[systemd]\nmpp_sockets = [\"a:b\"]\n", ":2: systemd.mpp_sockets: \"a:b\" is not a socket name"},
		{"empty name", "[systemd]\nmpps_sockets = [\"\"]\n", ":2: systemd.mpps_sockets:"},
		{"name in two roles", "[systemd]\nmpps_sockets = [\"mpp\"]\n", ":2: systemd.mpps_sockets: \"mpp\" is also in systemd.mpp_sockets"},
		{"idle too long", "[systemd]\nexit_on_idle = \"48h\"\n", ":2: systemd.exit_on_idle:"},
		{"idle too short", "[systemd]\nexit_on_idle = \"2s\"\n", ":2: systemd.exit_on_idle: 2s is out of range 5s..24h0m0s"},
		{"metrics without host", "[metrics]\nlisten = \":9218\"\n", ":2: metrics.listen:"},
		{"metrics on the MPP address", "listen = [\"127.0.0.1:218\"]\n[metrics]\nlisten = \"127.0.0.1:218\"\n", "metrics.listen: \"127.0.0.1:218\" is also an MPP address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := loadDoc(t, tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
