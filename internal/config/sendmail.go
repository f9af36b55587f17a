package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Sendmail is the [delivery.sendmail] table of mppd.conf(5).
type Sendmail struct {
	// Path is the sendmail-compatible program (Postfix, Exim, OpenSMTPD
	// and Sendmail all install one). It must be absolute: mppd never
	// searches PATH for it.
	Path string `toml:"path"`
	// Timeout bounds one run of the program; when it passes, the whole
	// process group is killed and the message gets 451.
	Timeout Duration `toml:"timeout"`
	// MinUID is the lowest uid a submission may run as. uid 0 and the
	// overflow uid 65534 (nobody) are refused whatever it says.
	MinUID uint32 `toml:"min_uid"`
	// FallbackAccount is the local account used for users the
	// authentication backend gives no local account (the envelope's
	// Account empty, or not known to NSS), for example a dedicated submit user
	// for directory users. The envelope sender is still the
	// authenticated address. Empty: such users get 550.
	FallbackAccount string `toml:"fallback_account"`
	// SwitchUser runs the program as each user's account, which needs root
	// or CAP_SETUID and CAP_SETGID. false runs it as mppd's own user and is
	// only for the case where mppd itself runs as the one account every
	// submission is made as; any other account is then refused.
	SwitchUser bool `toml:"switch_user"`
	// PrivilegedGroups are groups no submitting account may belong to,
	// as its primary group or a supplementary one: the sendmail child
	// would hold the group (root's files, /etc/shadow). Names this host
	// does not know are skipped.
	PrivilegedGroups []string `toml:"privileged_groups"`
}

// DefaultSendmail returns the defaults documented in mppd.conf(5).
func DefaultSendmail() Sendmail {
	return Sendmail{
		Path:             "/usr/sbin/sendmail",
		Timeout:          Duration(60 * time.Second),
		MinUID:           1000,
		SwitchUser:       true,
		PrivilegedGroups: []string{"root", "shadow"},
	}
}

// maxSendmailTimeout keeps a typo ("60m" for "60s") from pinning sessions for hours.
const maxSendmailTimeout = time.Hour

// Validate checks the configuration and names the offending key.
func (c Sendmail) Validate() error {
	const p = "delivery.sendmail."
	var errs []error
	switch {
	case c.Path == "":
		errs = append(errs, fmt.Errorf("%spath: must be set (for example %q)", p, "/usr/sbin/sendmail"))
	case !filepath.IsAbs(c.Path):
		errs = append(errs, fmt.Errorf("%spath: %q is not an absolute path", p, c.Path))
	case strings.ContainsAny(c.Path, "\x00\r\n"):
		errs = append(errs, fmt.Errorf("%spath: contains a control character", p))
	}
	if d := time.Duration(c.Timeout); d <= 0 || d > maxSendmailTimeout {
		errs = append(errs, fmt.Errorf("%stimeout: %s is out of range (more than 0, at most %s)", p, d, maxSendmailTimeout))
	}
	if c.MinUID == 0 {
		errs = append(errs, fmt.Errorf("%smin_uid: must be at least 1 (uid 0 is never allowed)", p))
	}
	if c.FallbackAccount != "" && !ValidAccountName(c.FallbackAccount) {
		errs = append(errs, fmt.Errorf("%sfallback_account: %q is not a valid account name", p, c.FallbackAccount))
	}
	for _, g := range c.PrivilegedGroups {
		if !ValidAccountName(g) {
			errs = append(errs, fmt.Errorf("%sprivileged_groups: %q is not a valid group name", p, g))
		}
	}
	return errors.Join(errs...)
}

// ValidAccountName accepts the names NSS lookups may be given: no leading
// '-', no '/', ':' or whitespace, no control characters, not all digits
// (os/user would read "0" as a uid elsewhere), at most 64 octets. This is
// wider than Debian's useradd default so that directory names (with dots
// or '@') work.
func ValidAccountName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '-' {
		return false
	}
	digits := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || c == ':' || c == '/' || c == ',' {
			return false
		}
		if c < '0' || c > '9' {
			digits = false
		}
	}
	return !digits
}
