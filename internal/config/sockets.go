package config

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"time"
)

// MPPSPort is the port the packaged mpps socket listens on: MPP inside TLS
// from the first byte. RFC 1204 assigns 218 to MPP and nothing to a TLS
// variant; 1218 (218 + 1000, above the system ports) is our own choice,
// not an IANA assignment for MPP over TLS.
const MPPSPort = 1218

// TLS is the certificate of the mpps listeners (listen_tls, or sockets
// systemd passes under a name in systemd.mpps_sockets).
type TLS struct {
	// CertFile is a PEM certificate chain, leaf first; KeyFile its
	// private key. mppd re-reads both on SIGHUP.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// MinVersion is the lowest TLS version accepted: "1.2" or "1.3".
	MinVersion string `toml:"min_version"`
}

// Systemd says how mppd takes the sockets systemd passes it (socket
// activation, sd_listen_fds(3)).
type Systemd struct {
	// The FileDescriptorName= of passed sockets that serve plain MPP,
	// MPP inside TLS, and the metrics endpoint. A passed socket whose
	// name is in none of the lists stops mppd.
	MPPSockets     []string `toml:"mpp_sockets"`
	MPPSSockets    []string `toml:"mpps_sockets"`
	MetricsSockets []string `toml:"metrics_sockets"`
	// ExitOnIdle, when not zero, makes a socket-activated mppd exit after
	// this long without a session; systemd keeps the sockets and starts
	// it again on the next connection.
	ExitOnIdle Duration `toml:"exit_on_idle"`
}

// MinExitOnIdle is the shortest systemd.exit_on_idle other than 0 (off).
// systemd refuses a sixth start of a unit within ten seconds
// (StartLimitBurst=5, StartLimitIntervalSec=10s) and then stops its
// sockets too: an mppd exiting sooner than every 2.5 s under steady
// traffic would lose port 218. At 5 s, idle exits take at most two of
// those starts, leaving room for restarts.
const MinExitOnIdle = 5 * time.Second

// Metrics is the optional Prometheus endpoint.
type Metrics struct {
	// Listen is "IP:port" to serve /metrics on over HTTP; "" for none.
	Listen string `toml:"listen"`
}

func defaultTLS() TLS { return TLS{MinVersion: "1.2"} }

func defaultSystemd() Systemd {
	return Systemd{
		MPPSockets:     []string{"mpp"},
		MPPSSockets:    []string{"mpps"},
		MetricsSockets: []string{"metrics"},
	}
}

// validateSockets checks listen_tls and the tls, systemd and metrics
// sections. seen holds the plain listen addresses.
func (c *Config) validateSockets(v *validator, seen map[string]bool) {
	checkListenList(v, "listen_tls", c.ListenTLS, seen, "is listed twice (in listen or listen_tls)")

	t := &c.TLS
	t.CertFile, t.KeyFile = c.resolve(t.CertFile), c.resolve(t.KeyFile)
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		v.fail("tls.key_file", "required with tls.cert_file")
	case t.CertFile == "" && t.KeyFile != "":
		v.fail("tls.cert_file", "required with tls.key_file")
	case t.CertFile == "" && len(c.ListenTLS) > 0:
		v.fail("tls.cert_file", "required with listen_tls")
	}
	v.oneOf("tls.min_version", t.MinVersion, "1.2", "1.3")

	s := &c.Systemd
	names := map[string]string{}
	for _, role := range []struct {
		key   string
		names []string
	}{
		{"systemd.mpp_sockets", s.MPPSockets},
		{"systemd.mpps_sockets", s.MPPSSockets},
		{"systemd.metrics_sockets", s.MetricsSockets},
	} {
		for _, n := range role.names {
			if !validSocketName(n) {
				v.fail(role.key, "%q is not a socket name (1 to 255 printable characters, no ':' or space)", n)
				continue
			}
			if other, ok := names[n]; ok {
				v.fail(role.key, "%q is also in %s", n, other)
				continue
			}
			names[n] = role.key
		}
	}
	if s.ExitOnIdle != 0 {
		v.durRange("systemd.exit_on_idle", s.ExitOnIdle, MinExitOnIdle, 24*time.Hour)
	}

	if a := c.Metrics.Listen; a != "" {
		if err := checkListen(a); err != nil {
			v.fail("metrics.listen", "%q: %v", a, err)
		} else if host, _, _ := net.SplitHostPort(a); host == "" {
			v.fail("metrics.listen", "%q: name the IP address to listen on (normally 127.0.0.1 or [::1])", a)
		} else if seen[a] {
			v.fail("metrics.listen", "%q is also an MPP address", a)
		}
	}
}

// checkListenList checks each address of the setting key and records it in
// seen, the addresses checked before; one already there is reported with
// the words twice (see anyPort for port 0).
func checkListenList(v *validator, key string, addrs []string, seen map[string]bool, twice string) {
	for _, a := range addrs {
		if err := checkListen(a); err != nil {
			v.fail(key, "%q: %v", a, err)
		}
		if seen[a] {
			v.fail(key, "%q %s", a, twice)
		}
		if !anyPort(a) {
			seen[a] = true
		}
	}
}

// validSocketName follows what systemd accepts in FileDescriptorName=:
// at most 255 printable ASCII characters, and no ':' (the separator of
// LISTEN_FDNAMES).
func validSocketName(n string) bool {
	if n == "" || len(n) > 255 {
		return false
	}
	for i := 0; i < len(n); i++ {
		if b := n[i]; b <= ' ' || b >= 0x7f || b == ':' {
			return false
		}
	}
	return true
}

// TLSMinVersion returns tls.min_version as a crypto/tls constant.
func (c *Config) TLSMinVersion() uint16 {
	if c.TLS.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// MetricsLoopback reports whether metrics.listen is a loopback address
// (anything else exposes the counts to the network; mppd warns).
func (c *Config) MetricsLoopback() bool {
	host, _, err := net.SplitHostPort(c.Metrics.Listen)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}
