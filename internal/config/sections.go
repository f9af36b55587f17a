package config

import (
	"fmt"
)

// section is a backend's config section.
type section interface{ Validate() error }

// authnSection returns the chosen authentication backend's section. This
// switch and cmd/mppd's buildAuthenticator are the places that know the
// backends.
func (c *Config) authnSection() (section, error) {
	switch c.Authn.Backend {
	case "passwdfile":
		return c.Authn.Passwdfile, nil
	case "pam":
		// Validated whether or not mppd is built with -tags pam.
		return c.Authn.PAM, nil
	case "ldap":
		return c.Authn.LDAP, nil
	}
	return nil, fmt.Errorf("unknown backend %q (known: passwdfile, pam, ldap)", c.Authn.Backend)
}

// deliverySection is authnSection for delivery.
func (c *Config) deliverySection() (section, error) {
	switch c.Delivery.Backend {
	case "maildir":
		return c.Delivery.Maildir, nil
	case "sendmail":
		return c.Delivery.Sendmail, nil
	}
	return nil, fmt.Errorf("unknown backend %q (known: maildir, sendmail)", c.Delivery.Backend)
}

// BackendError is the error of a backend (section, "delivery.sendmail")
// that could not be built from this valid config: it names the file, and
// the line of the key the backend's error names, as a validation error
// does.
func (c *Config) BackendError(section string, err error) error {
	v := &validator{path: c.Path, lines: c.lines}
	if c.Path == "" {
		v.path = "(defaults)"
	}
	v.backendFail(section, err)
	return v.err()
}
