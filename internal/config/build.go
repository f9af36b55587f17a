package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/authn/ldap"
	"github.com/mppd/mppd/authn/pam"
	"github.com/mppd/mppd/authn/passwdfile"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/delivery/maildir"
	"github.com/mppd/mppd/delivery/sendmail"
	"github.com/mppd/mppd/protocol"
)

// section is a backend's config section.
type section interface{ Validate() error }

// authnBackend returns the chosen authentication backend's section and its
// constructor. This switch is the one place that knows the backends: a new
// one adds its section to Authn and a case here.
func (c *Config) authnBackend() (section, func(*slog.Logger) (authn.Authenticator, error), error) {
	switch c.Authn.Backend {
	case "passwdfile":
		cfg := c.Authn.Passwdfile
		return cfg, func(log *slog.Logger) (authn.Authenticator, error) {
			b, err := passwdfile.New(cfg, log)
			if err != nil {
				return nil, err
			}
			return b, nil
		}, nil
	case "pam":
		// Built only with -tags pam; otherwise pam.New says how to
		// rebuild, and the config is still checked.
		cfg := c.Authn.PAM
		return cfg, func(log *slog.Logger) (authn.Authenticator, error) {
			b, err := pam.New(cfg, log)
			if err != nil {
				return nil, err
			}
			return b, nil
		}, nil
	case "ldap":
		cfg := c.Authn.LDAP
		return cfg, func(log *slog.Logger) (authn.Authenticator, error) {
			b, err := ldap.New(cfg, log)
			if err != nil {
				return nil, err
			}
			return b, nil
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown backend %q (known: passwdfile, pam, ldap)", c.Authn.Backend)
}

// deliveryBackend is authnBackend for delivery.
func (c *Config) deliveryBackend() (section, func(*slog.Logger) (delivery.Deliverer, error), error) {
	switch c.Delivery.Backend {
	case "maildir":
		cfg := c.Delivery.Maildir
		return cfg, func(log *slog.Logger) (delivery.Deliverer, error) {
			b, err := maildir.New(cfg, log)
			if err != nil {
				return nil, err
			}
			return b, nil
		}, nil
	case "sendmail":
		cfg := c.Delivery.Sendmail
		return cfg, func(log *slog.Logger) (delivery.Deliverer, error) {
			b, err := sendmail.New(cfg, log)
			if err != nil {
				return nil, err
			}
			return b, nil
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown backend %q (known: maildir, sendmail)", c.Delivery.Backend)
}

// buildError is the error of a backend (section, "delivery.sendmail")
// that could not be built from a valid config: it names the file, and the
// line of the key the backend names, as a validation error does.
func (c *Config) buildError(section string, err error) error {
	v := &validator{path: c.Path, lines: c.lines}
	if c.Path == "" {
		v.path = "(defaults)"
	}
	v.backendFail(section, err)
	return v.err()
}

// BuildAuthenticator constructs the configured authentication backend.
// log is handed to the backend; it adds its own attributes.
func (c *Config) BuildAuthenticator(log *slog.Logger) (authn.Authenticator, error) {
	_, build, err := c.authnBackend()
	if err != nil {
		return nil, err
	}
	a, err := build(log)
	if err != nil {
		return nil, c.buildError("authn."+c.Authn.Backend, err)
	}
	return c.wrapAuthn(a, log), nil
}

// BuildDeliverer constructs the configured delivery backend.
func (c *Config) BuildDeliverer(log *slog.Logger) (delivery.Deliverer, error) {
	_, build, err := c.deliveryBackend()
	if err != nil {
		return nil, err
	}
	d, err := build(log)
	if err != nil {
		return nil, c.buildError("delivery."+c.Delivery.Backend, err)
	}
	return c.wrapDelivery(d, log), nil
}

// Protocol returns the engine's configuration.
func (c *Config) Protocol() protocol.Config {
	p := protocol.DefaultConfig()
	p.Hostname = c.Hostname
	p.Limits = protocol.Limits{
		MaxLine:        c.Session.MaxLine,
		MaxMessage:     c.Message.MaxSize,
		MaxHeader:      c.Message.MaxHeaderSize,
		MaxRecipients:  c.Message.MaxRecipients,
		MaxReceived:    c.Message.MaxReceived,
		IdleTimeout:    c.Session.IdleTimeout.D(),
		SessionTimeout: c.Session.SessionTimeout.D(),
		MinDataRate:    c.Session.MinDataRate,
		MaxErrors:      c.Session.MaxErrors,
		MaxJunk:        c.Session.MaxJunkCommands,
	}
	p.UserPattern = c.UserPattern()
	p.SenderPolicy = c.Message.SenderPolicy
	p.ReceivedClientAddress = c.Message.ReceivedClientAddress
	p.AuthFailureDelay = c.Session.AuthFailureDelay.D()
	p.StagingDir = c.Message.StagingDir
	p.MemoryThreshold = c.Message.MemoryThreshold
	return p
}

// UserPattern returns the compiled session.user_pattern.
func (c *Config) UserPattern() *regexp.Regexp {
	if c.userPattern == nil {
		return regexp.MustCompile(c.Session.UserPattern)
	}
	return c.userPattern
}

// Trusted reports whether a client address is in trusted_networks.
func (c *Config) Trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range c.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
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
		slog.Any("trusted_networks", c.TrustedNetworks),
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
