package ldap

import (
	"errors"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/mppd/mppd/internal/config"
)

// errBadName is returned for a user name that cannot be put into the
// template safely; the caller answers "bad credentials" without any I/O.
var errBadName = errors.New("user name not usable in the DN template")

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
	if !config.LDAPDNStyle(tmpl) {
		for _, r := range user {
			if r < 0x20 || r == 0x7f || r == ' ' || strings.ContainsRune(upnForbidden, r) {
				return "", errBadName
			}
		}
		return strings.ReplaceAll(tmpl, config.LDAPUser, user), nil
	}
	dn := strings.NewReplacer(config.LDAPUser, goldap.EscapeDN(user)).Replace(tmpl)
	if _, err := goldap.ParseDN(dn); err != nil {
		return "", errBadName
	}
	return dn, nil
}

// expandFilter fills a filter template. Every value is escaped as RFC 4515
// §3 says ("*", "(", ")", "\", NUL and non-ASCII bytes become \XX), exactly
// once, so a user name can only ever be a literal value: "*" matches no
// one, ")(uid=*" adds no clause.
func expandFilter(tmpl, user, dn string) string {
	return strings.NewReplacer(
		config.LDAPUser, goldap.EscapeFilter(user),
		config.LDAPDN, goldap.EscapeFilter(dn),
	).Replace(tmpl)
}
