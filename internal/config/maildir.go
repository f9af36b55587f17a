package config

import (
	"errors"
	"strings"
)

// Maildir is the [delivery.maildir] table of mppd.conf(5), read by
// delivery/maildir.
type Maildir struct {
	// Root is the directory holding one Maildir per recipient. Required;
	// created (mode 0700) when missing; Load resolves a relative path
	// against the config file's directory.
	Root string `toml:"root"`
}

// DefaultMaildir returns the defaults: the root /var/lib/mppd/maildir.
func DefaultMaildir() Maildir {
	return Maildir{Root: "/var/lib/mppd/maildir"}
}

// Validate checks the configuration without touching the file system.
func (c Maildir) Validate() error {
	if c.Root == "" {
		return errors.New("maildir: root is required")
	}
	if strings.ContainsRune(c.Root, 0) {
		return errors.New("maildir: root contains a NUL")
	}
	return nil
}
