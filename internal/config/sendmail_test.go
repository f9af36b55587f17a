package config

import (
	"strings"
	"testing"
	"time"
)

func TestSendmailValidate(t *testing.T) {
	if err := DefaultSendmail().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := []struct {
		mod  func(*Sendmail)
		want string
	}{
		{func(c *Sendmail) { c.Path = "" }, "delivery.sendmail.path"},
		{func(c *Sendmail) { c.Path = "sendmail" }, "delivery.sendmail.path"},
		{func(c *Sendmail) { c.Timeout = 0 }, "delivery.sendmail.timeout"},
		{func(c *Sendmail) { c.Timeout = Duration(2 * time.Hour) }, "delivery.sendmail.timeout"},
		{func(c *Sendmail) { c.MinUID = 0 }, "delivery.sendmail.min_uid"},
		{func(c *Sendmail) { c.FallbackAccount = "-root" }, "delivery.sendmail.fallback_account"},
		{func(c *Sendmail) { c.FallbackAccount = "a b" }, "delivery.sendmail.fallback_account"},
		{func(c *Sendmail) { c.FallbackAccount = "0" }, "delivery.sendmail.fallback_account"},
		{func(c *Sendmail) { c.PrivilegedGroups = []string{"root", "-x"} }, "delivery.sendmail.privileged_groups"},
	}
	for _, tt := range tests {
		c := DefaultSendmail()
		tt.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want an error naming %s", err, tt.want)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("90s")); err != nil || time.Duration(d) != 90*time.Second {
		t.Errorf("UnmarshalText(90s) = %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("60")); err == nil {
		t.Error("UnmarshalText(60) accepted a duration without a unit")
	}
}
