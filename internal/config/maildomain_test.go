package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// withMailDomainSources points /etc/mailname and the name lookup at the
// test's own: mailname "" means no file.
func withMailDomainSources(t *testing.T, mailname string, cnames map[string]string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mailname")
	if mailname != "" {
		if err := os.WriteFile(p, []byte(mailname), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oldPath, oldLookup := mailnamePath, lookupCNAME
	mailnamePath = p
	lookupCNAME = func(h string) (string, error) {
		if c, ok := cnames[h]; ok {
			return c, nil
		}
		return "", errors.New("no such host")
	}
	t.Cleanup(func() { mailnamePath, lookupCNAME = oldPath, oldLookup })
}

func TestDefaultMailDomain(t *testing.T) {
	for _, tc := range []struct {
		name, mailname, hostname string
		cnames                   map[string]string
		want                     string
	}{
		{"mailname wins", "mail.example.org\n", "host", map[string]string{"host": "host.example.net."}, "mail.example.org"},
		{"mailname with spaces", "  example.org \nignored\n", "host", nil, "example.org"},
		{"bad mailname", "not a domain!\n", "host", map[string]string{"host": "host.example.net."}, "host.example.net"},
		{"no mailname: the FQDN", "", "host", map[string]string{"host": "host.example.net."}, "host.example.net"},
		{"a dotted host name is its own", "", "host.example.com", map[string]string{"host.example.com": "other.example.net."}, "host.example.com"},
		{"no FQDN: the short name", "", "host", nil, "host"},
		{"the lookup says the short name", "", "host", map[string]string{"host": "host."}, "host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withMailDomainSources(t, tc.mailname, tc.cnames)
			if got := defaultMailDomain(tc.hostname); got != tc.want {
				t.Errorf("defaultMailDomain(%q) = %q, want %q", tc.hostname, got, tc.want)
			}
		})
	}
}

// The default fills both backends' mail_domain; a set one is kept; a
// domain without a dot is reported for the backend in use.
func TestMailDomainFromMailname(t *testing.T) {
	for _, tc := range []struct {
		name, mailname, doc    string
		pam, passwdfile, noDot string
	}{
		{"from /etc/mailname", "example.org\n", "", "example.org", "example.org", ""},
		{"a set one is kept", "", "[authn.passwdfile]\nmail_domain = \"example.net\"\n", "host", "example.net", "host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withMailDomainSources(t, tc.mailname, nil)
			c, err := parse(filepath.Join(t.TempDir(), "c.toml"), []byte("hostname = \"host\"\n[authn]\nbackend = \"pam\"\n"+tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if c.Authn.PAM.MailDomain != tc.pam || c.Authn.Passwdfile.MailDomain != tc.passwdfile {
				t.Errorf("mail_domain: pam %q, passwdfile %q; want %q, %q", c.Authn.PAM.MailDomain, c.Authn.Passwdfile.MailDomain, tc.pam, tc.passwdfile)
			}
			if d := c.MailDomainHasNoDot(); d != tc.noDot {
				t.Errorf("MailDomainHasNoDot = %q, want %q", d, tc.noDot)
			}
		})
	}
}
