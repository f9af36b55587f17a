package config

import (
	"errors"
	"fmt"

	"github.com/mppd/mppd/internal/address"
)

// Passwdfile is the [authn.passwdfile] table of mppd.conf(5), read by
// authn/passwdfile.
type Passwdfile struct {
	// Path is the password file. Required; Load resolves a relative path
	// against the config file's directory.
	Path string `toml:"path"`
	// MailDomain makes the address of a user whose line lists none:
	// user@mail_domain. Required here; Load fills it with hostname when
	// the config file leaves it empty.
	MailDomain string `toml:"mail_domain"`
}

// DefaultPasswdfile returns the defaults: the file /etc/mppd/passwd and no
// mail domain (Load supplies hostname).
func DefaultPasswdfile() Passwdfile {
	return Passwdfile{Path: "/etc/mppd/passwd"}
}

// Validate checks the configuration without touching the file system.
func (c Passwdfile) Validate() error {
	if c.Path == "" {
		return errors.New("passwdfile: path is required")
	}
	if c.MailDomain == "" {
		return errors.New("passwdfile: mail_domain is required")
	}
	if err := address.ValidDomain(c.MailDomain); err != nil {
		return fmt.Errorf("passwdfile: mail_domain: %v", err)
	}
	return nil
}
