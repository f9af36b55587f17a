package config

import (
	"testing"
)

func TestLimitsDefaults(t *testing.T) {
	l := Default().Limits
	if l.MessagesPerHour != 200 || l.RecipientsPerHour != 1000 || l.RecipientsPerDay != 5000 || l.MaxEntries != 10000 || len(l.Users) != 0 {
		t.Fatalf("default [limits] %+v", l)
	}
}

func TestLimitsOverrides(t *testing.T) {
	c, err := parse("mppd.toml", []byte(`[limits]
messages_per_hour = 10
[limits.users.newsletter]
messages_per_hour = 0
recipients_per_day = 90000
[limits.users."first.last"]
recipients_per_hour = 7
`))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Limits.Users["newsletter"]
	if n.MessagesPerHour == nil || *n.MessagesPerHour != 0 || n.RecipientsPerHour != nil || *n.RecipientsPerDay != 90000 {
		t.Errorf("newsletter override %+v", n)
	}
	if f := c.Limits.Users["first.last"]; f.RecipientsPerHour == nil || *f.RecipientsPerHour != 7 {
		t.Errorf("first.last override %+v", f)
	}
}

func TestLimitsErrors(t *testing.T) {
	checkLoadErrors(t, map[string]string{
		"[limits]\nmessages_per_hour = -1\n":                 "FILE:2: limits.messages_per_hour: -1 is out of range 0..10000000 (0 is unlimited)",
		"[limits]\nrecipients_per_day = 20000000\n":          "FILE:2: limits.recipients_per_day",
		"[limits]\nmax_entries = 5\n":                        "FILE:2: limits.max_entries: 5 is out of range",
		"[limits]\nper_hour = 5\n":                           "FILE:2: limits.per_hour: unknown key",
		"[limits.users.bob]\nmessages = 5\n":                 "FILE:2: limits.users.bob.messages: unknown key",
		"[limits.users.bob]\n\nrecipients_per_hour = -3\n":   "FILE:3: limits.users.bob.recipients_per_hour: -3 is out of range",
		"[limits.users.Bob]\n[limits.users.bob]\n":           "limits.users.bob: \"Bob\" and \"bob\" are the same login",
		"[limits.users.\" bob\"]\nmessages_per_hour = 1\n":   "is not a login name",
		"[limits.users.bob]\nmessages_per_hour = \"lots\"\n": "FILE:2: limits.users.bob.messages_per_hour",
	})
}
