package config

import (
	"log/slog"
	"net/netip"
	"regexp"
)

// UserPattern returns the compiled session.user_pattern.
func (c *Config) UserPattern() *regexp.Regexp {
	if c.userPattern == nil {
		return regexp.MustCompile(c.Session.UserPattern)
	}
	return c.userPattern
}

// Trusted reports whether a client address is in trusted_networks.
func (c *Config) Trusted(ip netip.Addr) bool { return inPrefixes(c.trusted, ip) }

// ProxyFrom reports whether a peer address is in proxy_protocol_from: a
// load balancer whose connections start with a PROXY protocol header.
func (c *Config) ProxyFrom(ip netip.Addr) bool { return inPrefixes(c.proxyFrom, ip) }

// inPrefixes reports whether ip (an IPv4-mapped IPv6 address counting as
// the IPv4 one) is in one of prefixes.
func inPrefixes(prefixes []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ProxyProtocol reports whether proxy_protocol_from lists any network.
func (c *Config) ProxyProtocol() bool { return len(c.proxyFrom) > 0 }

// SessionsPerNetwork is the effective max_sessions_per_network: the
// setting, or 4 × max_sessions_per_client when it is 0, so that one host
// holding a whole network (an IPv6 /64) gets a few clients' worth of
// sessions rather than every slot.
func (c *Config) SessionsPerNetwork() int {
	if c.MaxSessionsPerNetwork > 0 {
		return c.MaxSessionsPerNetwork
	}
	return 4 * c.MaxSessionsPerClient
}

// LogLevel returns log.level as a slog.Level.
func (c *Config) LogLevel() slog.Level { return c.level }

// LogValue summarises the effective configuration for the start-up log.
// Backend sections are left to the backends' own String(), logged when
// they are built, so that no secret (an LDAP bind password) can leak here.
func (c *Config) LogValue() slog.Value {
	s, m := c.Session, c.Message
	return slog.GroupValue(
		slog.String("file", c.Path),
		slog.String("hostname", c.Hostname),
		slog.Any("listen", c.Listen),
		slog.Any("listen_tls", c.ListenTLS),
		slog.Duration("drain_timeout", c.DrainTimeout.D()),
		slog.Int("max_sessions", c.MaxSessions),
		slog.Int("max_sessions_per_client", c.MaxSessionsPerClient),
		slog.Int("max_sessions_per_network", c.SessionsPerNetwork()),
		slog.Any("trusted_networks", c.TrustedNetworks),
		slog.Any("proxy_protocol_from", c.ProxyProtocolFrom),
		slog.String("engine_user", c.EngineUser),
		slog.Group("session",
			slog.Int("max_line", s.MaxLine),
			slog.Duration("idle_timeout", s.IdleTimeout.D()),
			slog.Duration("session_timeout", s.SessionTimeout.D()),
			slog.Int("min_data_rate", s.MinDataRate),
			slog.Int("max_errors", s.MaxErrors),
			slog.Int("max_junk_commands", s.MaxJunkCommands),
			slog.String("user_pattern", s.UserPattern),
			slog.Duration("auth_failure_delay", s.AuthFailureDelay.D()),
		),
		slog.Group("message",
			slog.Int64("max_size", m.MaxSize),
			slog.Int("max_header_size", m.MaxHeaderSize),
			slog.Int("max_recipients", m.MaxRecipients),
			slog.Int("max_received", m.MaxReceived),
			slog.String("sender_policy", m.SenderPolicy.String()),
			slog.Bool("received_client_address", m.ReceivedClientAddress),
			slog.String("staging_dir", m.StagingDir),
			slog.Int("memory_threshold", m.MemoryThreshold),
		),
		slog.String("authn", c.Authn.Backend),
		slog.String("delivery", c.Delivery.Backend),
		slog.Group("tls",
			slog.String("cert_file", c.TLS.CertFile),
			slog.String("key_file", c.TLS.KeyFile),
			slog.String("min_version", c.TLS.MinVersion),
		),
		slog.Group("systemd",
			slog.Any("mpp_sockets", c.Systemd.MPPSockets),
			slog.Any("mpps_sockets", c.Systemd.MPPSSockets),
			slog.Any("metrics_sockets", c.Systemd.MetricsSockets),
			slog.Duration("exit_on_idle", c.Systemd.ExitOnIdle.D()),
		),
		slog.String("metrics", c.Metrics.Listen),
	)
}
