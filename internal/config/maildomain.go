package config

import (
	"context"
	"net"
	"os"
	"strings"
	"time"

	"github.com/mppd/mppd/internal/address"
)

// mailnamePath is Debian's mail name file (the domain the MTA puts on
// local users' addresses); a variable for tests.
var mailnamePath = "/etc/mailname"

// lookupCNAME finds the canonical (fully qualified) name of a host; a
// variable for tests.
var lookupCNAME = func(host string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupCNAME(ctx, host)
}

// defaultMailDomain is the mail_domain of the password file and PAM
// backends when the file sets none: the first line of /etc/mailname when
// it holds a valid domain, else the host's fully qualified name, else
// hostname itself. mppd warns when the result has no dot (MailDomainHasNoDot).
func defaultMailDomain(hostname string) string {
	if b, err := os.ReadFile(mailnamePath); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if d := strings.TrimSpace(line); d != "" && address.ValidDomain(d) == nil {
			return d
		}
	}
	if hostname == "" || strings.Contains(hostname, ".") {
		return hostname
	}
	if cname, err := lookupCNAME(hostname); err == nil {
		if fq := strings.TrimSuffix(cname, "."); strings.Contains(fq, ".") && address.ValidDomain(fq) == nil {
			return fq
		}
	}
	return hostname
}

// MailDomainHasNoDot returns the mail_domain of the configured backend when
// it has no dot (a short host name: alice@myhost is no address anyone can
// reply to), else "".
func (c *Config) MailDomainHasNoDot() string {
	var d string
	switch c.Authn.Backend {
	case "pam":
		d = c.Authn.PAM.MailDomain
	case "passwdfile":
		d = c.Authn.Passwdfile.MailDomain
	}
	if d != "" && !strings.Contains(d, ".") {
		return d
	}
	return ""
}
