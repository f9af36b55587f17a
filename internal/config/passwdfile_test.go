package config

import (
	"strings"
	"testing"
)

func TestPasswdfileValidate(t *testing.T) {
	tests := []struct {
		cfg  Passwdfile
		want string
	}{
		{Passwdfile{Path: "/x", MailDomain: "example.org"}, ""},
		{Passwdfile{Path: "/x", MailDomain: "localhost"}, ""},
		{Passwdfile{MailDomain: "example.org"}, "path is required"},
		{Passwdfile{Path: "/x"}, "mail_domain is required"},
		{Passwdfile{Path: "/x", MailDomain: "exa mple.org"}, "mail_domain"},
		{Passwdfile{Path: "/x", MailDomain: "-x.org"}, "mail_domain"},
		{DefaultPasswdfile(), "mail_domain is required"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
