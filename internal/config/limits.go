package config

import (
	"sort"
	"strings"

	"github.com/mppd/mppd/internal/sendlimit"
)

// Limits is the [limits] section: how much one login may send, over
// sliding windows (internal/sendlimit). 0 is unlimited.
type Limits struct {
	MessagesPerHour   int `toml:"messages_per_hour"`
	RecipientsPerHour int `toml:"recipients_per_hour"`
	RecipientsPerDay  int `toml:"recipients_per_day"`
	// MaxEntries bounds the table of logins.
	MaxEntries int `toml:"max_entries"`
	// Users holds per-login overrides, [limits.users.NAME], for known
	// bulk senders.
	Users map[string]UserLimits `toml:"users"`
}

// UserLimits is one login's override. A key it leaves out (nil) keeps
// the section's value.
type UserLimits struct {
	MessagesPerHour   *int `toml:"messages_per_hour"`
	RecipientsPerHour *int `toml:"recipients_per_hour"`
	RecipientsPerDay  *int `toml:"recipients_per_day"`
}

func defaultLimits() Limits {
	d := sendlimit.DefaultConfig()
	return Limits{
		MessagesPerHour:   d.Default.MessagesPerHour,
		RecipientsPerHour: d.Default.RecipientsPerHour,
		RecipientsPerDay:  d.Default.RecipientsPerDay,
		MaxEntries:        d.MaxEntries,
	}
}

// maxLimit is the largest value a limit may take: past it, 0
// (unlimited) says the same thing more plainly.
const maxLimit = 10_000_000

// validateLimits checks [limits].
func (c *Config) validateLimits(v *validator) {
	l := &c.Limits
	v.intRange("limits.messages_per_hour", int64(l.MessagesPerHour), 0, maxLimit, "0 is unlimited")
	v.intRange("limits.recipients_per_hour", int64(l.RecipientsPerHour), 0, maxLimit, "0 is unlimited")
	v.intRange("limits.recipients_per_day", int64(l.RecipientsPerDay), 0, maxLimit, "0 is unlimited")
	v.intRange("limits.max_entries", int64(l.MaxEntries), 100, 10_000_000, "")
	logins := make([]string, 0, len(l.Users))
	for u := range l.Users {
		logins = append(logins, u)
	}
	sort.Strings(logins)
	seen := map[string]string{}
	for _, u := range logins {
		key := "limits.users." + u
		if u == "" || strings.TrimSpace(u) != u || hasControlChar(u) {
			v.fail(key, "%q is not a login name", u)
			continue
		}
		// Logins are compared without case, as the limiter does.
		if other, ok := seen[strings.ToLower(u)]; ok {
			v.fail(key, "%q and %q are the same login (case is ignored)", other, u)
		}
		seen[strings.ToLower(u)] = u
		o := l.Users[u]
		for _, f := range []struct {
			name string
			val  *int
		}{{"messages_per_hour", o.MessagesPerHour}, {"recipients_per_hour", o.RecipientsPerHour}, {"recipients_per_day", o.RecipientsPerDay}} {
			if f.val != nil {
				v.intRange(key+"."+f.name, int64(*f.val), 0, maxLimit, "0 is unlimited")
			}
		}
	}
}

func hasControlChar(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
