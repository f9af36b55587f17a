package main

import (
	"fmt"
	"log/slog"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/authn/cache"
	"github.com/mppd/mppd/authn/ldap"
	"github.com/mppd/mppd/authn/pam"
	"github.com/mppd/mppd/authn/passwdfile"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/delivery/maildir"
	"github.com/mppd/mppd/delivery/sendmail"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/sendlimit"
	"github.com/mppd/mppd/internal/throttle"
	"github.com/mppd/mppd/protocol"
)

// This file turns the configuration (internal/config, which describes)
// into the daemon's parts. The two switches below and internal/config's
// authnSection and deliverySection are the places that know the backends:
// a new one adds a section there and a case here.

// buildAuthenticator constructs the configured authentication backend and
// puts the concurrency cap, and the cache when enabled, in front of it:
// cache → limit → backend, so that an answer from the cache takes no
// slot. log is handed to the backend; it adds its own attributes. A
// backend that cannot be built is reported at the line of the key its
// error names.
func buildAuthenticator(c *config.Config, log *slog.Logger) (authn.Authenticator, error) {
	var a authn.Authenticator
	var err error
	switch c.Authn.Backend {
	case "passwdfile":
		a, err = newAuthn(passwdfile.New(c.Authn.Passwdfile, log))
	case "pam":
		// Built only with -tags pam; otherwise pam.New says how to
		// rebuild.
		a, err = newAuthn(pam.New(c.Authn.PAM, log))
	case "ldap":
		a, err = newAuthn(ldap.New(c.Authn.LDAP, log))
	default:
		// Load has refused it already.
		return nil, fmt.Errorf("unknown authn.backend %q", c.Authn.Backend)
	}
	if err != nil {
		return nil, c.BackendError("authn."+c.Authn.Backend, err)
	}
	a = authn.Limit(a, c.Authn.MaxConcurrent, c.Authn.QueueTimeout.D(), log)
	if c.Authn.Cache.Enabled {
		a = cache.New(a, c.Authn.Cache, log)
	}
	return a, nil
}

// buildDeliverer constructs the configured delivery backend, with the
// concurrency cap in front of it.
func buildDeliverer(c *config.Config, log *slog.Logger) (delivery.Deliverer, error) {
	var d delivery.Deliverer
	var err error
	switch c.Delivery.Backend {
	case "maildir":
		d, err = newDelivery(maildir.New(c.Delivery.Maildir, log))
	case "sendmail":
		d, err = newDelivery(sendmail.New(c.Delivery.Sendmail, log))
	default:
		return nil, fmt.Errorf("unknown delivery.backend %q", c.Delivery.Backend)
	}
	if err != nil {
		return nil, c.BackendError("delivery."+c.Delivery.Backend, err)
	}
	return delivery.Limit(d, c.Delivery.MaxConcurrent, c.Delivery.QueueTimeout.D(), log), nil
}

// newAuthn and newDelivery turn a backend constructor's result into the
// interface, so that a failed constructor's nil pointer never becomes a
// non-nil interface.
func newAuthn[T authn.Authenticator](b T, err error) (authn.Authenticator, error) {
	if err != nil {
		return nil, err
	}
	return b, nil
}

func newDelivery[T delivery.Deliverer](b T, err error) (delivery.Deliverer, error) {
	if err != nil {
		return nil, err
	}
	return b, nil
}

// protocolConfig returns the engine's configuration.
func protocolConfig(c *config.Config) protocol.Config {
	s, m := c.Session, c.Message
	return protocol.Config{
		Hostname: c.Hostname,
		Limits: protocol.Limits{
			MaxLine:        s.MaxLine,
			MaxMessage:     m.MaxSize,
			MaxHeader:      m.MaxHeaderSize,
			MaxRecipients:  m.MaxRecipients,
			MaxReceived:    m.MaxReceived,
			IdleTimeout:    s.IdleTimeout.D(),
			SessionTimeout: s.SessionTimeout.D(),
			MinDataRate:    s.MinDataRate,
			MaxErrors:      s.MaxErrors,
			MaxJunk:        s.MaxJunkCommands,
		},
		UserPattern:           c.UserPattern(),
		SenderPolicy:          m.SenderPolicy,
		ReceivedClientAddress: m.ReceivedClientAddress,
		AuthFailureDelay:      s.AuthFailureDelay.D(),
		StagingDir:            m.StagingDir,
		MemoryThreshold:       m.MemoryThreshold,
	}
}

// throttleConfig returns the throttle's configuration; trusted_networks
// are exempt from it.
func throttleConfig(c *config.Config) throttle.Config {
	t := c.Throttle
	cfg := throttle.Config{
		Window:        t.Window.D(),
		MaxPerClient:  t.MaxFailuresPerClient,
		MaxPerNetwork: t.MaxFailuresPerNetwork,
		IPv4Prefix:    t.IPv4Prefix,
		IPv6Prefix:    t.IPv6Prefix,
		MaxEntries:    t.MaxEntries,
		Trusted:       c.Trusted,
	}
	for _, p := range t.Penalties {
		cfg.Penalties = append(cfg.Penalties, p.D())
	}
	return cfg
}

// sendLimitConfig returns the sending limits' configuration: [limits],
// and each [limits.users.LOGIN] with the keys it leaves out taken from
// [limits].
func sendLimitConfig(c *config.Config) sendlimit.Config {
	l := c.Limits
	def := sendlimit.Limits{
		MessagesPerHour:   l.MessagesPerHour,
		RecipientsPerHour: l.RecipientsPerHour,
		RecipientsPerDay:  l.RecipientsPerDay,
	}
	cfg := sendlimit.Config{Default: def, MaxEntries: l.MaxEntries}
	if len(l.Users) > 0 {
		cfg.Users = map[string]sendlimit.Limits{}
	}
	for login, o := range l.Users {
		u := def
		if o.MessagesPerHour != nil {
			u.MessagesPerHour = *o.MessagesPerHour
		}
		if o.RecipientsPerHour != nil {
			u.RecipientsPerHour = *o.RecipientsPerHour
		}
		if o.RecipientsPerDay != nil {
			u.RecipientsPerDay = *o.RecipientsPerDay
		}
		cfg.Users[login] = u
	}
	return cfg
}
