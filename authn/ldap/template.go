package ldap

import (
	"errors"
	"fmt"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
)

// The placeholders of the templates. Expansion is a single pass
// (strings.Replacer), so a user name that itself contains "{dn}" is not
// expanded again.
const (
	phUser = "{user}"
	phDN   = "{dn}"
)

// errBadName is returned for a user name that cannot be put into the
// template safely; the caller answers "bad credentials" without any I/O.
var errBadName = errors.New("user name not usable in the DN template")

// dnStyle reports whether a direct-bind template is a DN ("uid={user},...")
// rather than an Active Directory UPN ("{user}@corp.example.com") or
// down-level name ("CORP\{user}").
func dnStyle(tmpl string) bool {
	return strings.Contains(strings.ReplaceAll(tmpl, phUser, ""), "=")
}

func checkDNTemplate(tmpl string) error {
	if !strings.Contains(tmpl, phUser) {
		return fmt.Errorf("%q does not contain %s", tmpl, phUser)
	}
	if dnStyle(tmpl) {
		if _, err := goldap.ParseDN(strings.ReplaceAll(tmpl, phUser, "x")); err != nil {
			return fmt.Errorf("%q is not a DN template: %v", tmpl, err)
		}
	}
	return nil
}

// upnForbidden are the characters refused in a user name put into a UPN or
// down-level template: they would change which account the name denotes
// (another realm after "@", another domain after "\") and no real account
// name contains them.
const upnForbidden = "@\\/,=+\"<>;#*()[]:|?"

// expandDN fills the direct-bind template. In a DN template the user part
// is escaped as RFC 4514 §2.4 says (so "a,ou=x" stays one RDN value); the
// result must still parse as a DN. In a UPN template a name with any of
// upnForbidden, a space or a control byte is refused.
func expandDN(tmpl, user string) (string, error) {
	if user == "" || len(user) > 256 {
		return "", errBadName
	}
	if !dnStyle(tmpl) {
		for _, r := range user {
			if r < 0x20 || r == 0x7f || r == ' ' || strings.ContainsRune(upnForbidden, r) {
				return "", errBadName
			}
		}
		return strings.ReplaceAll(tmpl, phUser, user), nil
	}
	dn := strings.NewReplacer(phUser, goldap.EscapeDN(user)).Replace(tmpl)
	if _, err := goldap.ParseDN(dn); err != nil {
		return "", errBadName
	}
	return dn, nil
}

func checkFilterTemplate(tmpl string, group bool) error {
	if group {
		if !strings.Contains(tmpl, phUser) && !strings.Contains(tmpl, phDN) {
			return fmt.Errorf("%q contains neither %s nor %s", tmpl, phUser, phDN)
		}
	} else if !strings.Contains(tmpl, phUser) {
		return fmt.Errorf("%q does not contain %s", tmpl, phUser)
	} else if strings.Contains(tmpl, phDN) {
		// The user's DN is what this search finds: it is not known yet.
		return fmt.Errorf("%q contains %s, which only a group search can use", tmpl, phDN)
	}
	f := strings.NewReplacer(phUser, "x", phDN, "cn=x").Replace(tmpl)
	if _, err := goldap.CompileFilter(f); err != nil {
		return fmt.Errorf("%q is not a filter template: %v", tmpl, err)
	}
	return nil
}

// expandFilter fills a filter template. Every value is escaped as RFC 4515
// §3 says ("*", "(", ")", "\", NUL and non-ASCII bytes become \XX), exactly
// once, so a user name can only ever be a literal value: "*" matches no
// one, ")(uid=*" adds no clause.
func expandFilter(tmpl, user, dn string) string {
	return strings.NewReplacer(
		phUser, goldap.EscapeFilter(user),
		phDN, goldap.EscapeFilter(dn),
	).Replace(tmpl)
}
