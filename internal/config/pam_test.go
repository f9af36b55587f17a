package config

import (
	"strings"
	"testing"
	"time"
)

func TestPAMDefaults(t *testing.T) {
	c := DefaultPAM()
	if c.Service != "mppd" || c.Timeout.D() != 10*time.Second || c.Workers != 16 || c.QueueTimeout.D() != 5*time.Second {
		t.Fatalf("defaults changed without updating mppd.conf(5): %+v", c)
	}
	// mail_domain has no default: the default config alone is invalid.
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "mail_domain: required") {
		t.Fatalf("Validate() = %v, want mail_domain required", err)
	}
	c.MailDomain = "example.org"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
}

func TestPAMValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*PAM)
		want   string // substring of the error; "" means valid
	}{
		{"ok", func(c *PAM) {}, ""},
		{"zero queue timeout means no wait", func(c *PAM) { c.QueueTimeout = 0 }, ""},
		{"one worker", func(c *PAM) { c.Workers = 1 }, ""},
		{"service with dot and dash", func(c *PAM) { c.Service = "mppd-test.v2" }, ""},
		{"empty service", func(c *PAM) { c.Service = "" }, "service: must not be empty"},
		{"service path", func(c *PAM) { c.Service = "../shadow" }, "service: \"../shadow\""},
		{"service slash", func(c *PAM) { c.Service = "a/b" }, "service:"},
		{"service dotdot", func(c *PAM) { c.Service = ".." }, "service:"},
		{"service NUL", func(c *PAM) { c.Service = "mppd\x00x" }, "service:"},
		{"service too long", func(c *PAM) { c.Service = strings.Repeat("a", 65) }, "service:"},
		{"no mail domain", func(c *PAM) { c.MailDomain = "" }, "mail_domain: required"},
		{"bad mail domain", func(c *PAM) { c.MailDomain = "exa mple.org" }, "mail_domain:"},
		{"address literal", func(c *PAM) { c.MailDomain = "[192.0.2.1]" }, "mail_domain:"},
		{"zero timeout", func(c *PAM) { c.Timeout = 0 }, "timeout: must be greater than zero"},
		{"huge timeout", func(c *PAM) { c.Timeout = Duration(time.Hour) }, "timeout: must be at most"},
		{"zero workers", func(c *PAM) { c.Workers = 0 }, "workers: must be between 1 and 1024"},
		{"too many workers", func(c *PAM) { c.Workers = 1025 }, "workers:"},
		{"negative queue timeout", func(c *PAM) { c.QueueTimeout = -1 }, "queue_timeout: must not be negative"},
		{"huge queue timeout", func(c *PAM) { c.QueueTimeout = Duration(time.Hour) }, "queue_timeout: must be at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultPAM()
			c.MailDomain = "example.org"
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestPAMValidateReportsEveryKey(t *testing.T) {
	err := PAM{}.Validate()
	if err == nil {
		t.Fatal("zero PAM validated")
	}
	for _, key := range []string{"service:", "mail_domain:", "timeout:", "workers:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.D() != 90*time.Second {
		t.Fatalf("UnmarshalText(1m30s) = %v, %v", d, err)
	}
	for _, bad := range []string{"10", "soon", "-1s", ""} {
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", bad)
		}
	}
	if b, _ := Duration(1500 * time.Millisecond).MarshalText(); string(b) != "1.5s" {
		t.Errorf("MarshalText = %q", b)
	}
}
