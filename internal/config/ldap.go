package config

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/mppd/mppd/internal/address"
)

// LDAP is the [authn.ldap] table of mppd.conf(5).
//
// The user's entry is found in one of two ways, and exactly one must be
// configured:
//   - direct bind: UserDN is a template such as
//     "uid={user},ou=people,dc=example,dc=com" (the user part DN-escaped,
//     RFC 4514) or an Active Directory UPN such as "{user}@corp.example.com";
//   - search then bind: SearchBase and SearchFilter, a filter template such as
//     "(&(objectClass=inetOrgPerson)(uid={user}))" (the user part
//     filter-escaped, RFC 4515), searched as the service account (or
//     anonymously when ServiceDN is empty); exactly one entry must match.
type LDAP struct {
	// URIs are tried in order when a connection cannot be made: the first
	// one that answers is used. ldap:// URIs use StartTLS (RFC 4513 §3),
	// ldaps:// URIs TLS from the first byte.
	URIs []string `toml:"uris"`
	// InsecurePlaintext lets ldap:// URIs run without StartTLS, so that
	// passwords cross the network in clear. Only for a directory on the
	// same host or in tests; the name is meant to be noticed in review.
	InsecurePlaintext bool `toml:"insecure_plaintext"`
	// CAFile is a PEM bundle of the CAs that sign the server certificate;
	// empty means the system roots.
	CAFile string `toml:"ca_file"`
	// ServerName is the name checked in the server certificate; empty means
	// the host of the URI in use.
	ServerName string `toml:"server_name"`
	// ClientCert and ClientKey are a PEM certificate and key presented to
	// the server, for directories that require them. Both or neither.
	ClientCert string `toml:"client_cert"`
	ClientKey  string `toml:"client_key"`
	// MinTLSVersion is "1.2" or "1.3".
	MinTLSVersion string `toml:"min_tls_version"`

	// DialTimeout bounds one TCP connect plus the TLS handshake and the
	// service-account bind to one URI; then the next URI is tried.
	DialTimeout Duration `toml:"dial_timeout"`
	// RequestTimeout bounds each LDAP request (go-ldap sets none by
	// default, so a stalled server would hang a login forever).
	RequestTimeout Duration `toml:"request_timeout"`
	// PoolSize is the most connections open at once in each of the two
	// pools (service-account searches, user binds); idle ones are kept for
	// reuse up to PoolIdleTimeout.
	PoolSize        int      `toml:"pool_size"`
	PoolIdleTimeout Duration `toml:"pool_idle_timeout"`

	// UserDN is the direct-bind template.
	UserDN string `toml:"user_dn"`
	// SearchBase, SearchFilter and SearchScope ("sub" or "one") are the
	// search-then-bind settings.
	SearchBase   string `toml:"search_base"`
	SearchFilter string `toml:"search_filter"`
	SearchScope  string `toml:"search_scope"`
	// ServiceDN is the account the searches bind as; its password is the
	// first line of ServicePasswordFile, never in the main configuration.
	ServiceDN           string `toml:"service_dn"`
	ServicePasswordFile string `toml:"service_password_file"`

	// GroupFilter, when set, is a filter the user's own entry must match,
	// such as "(memberOf=cn=mppd,ou=groups,dc=example,dc=com)".
	GroupFilter string `toml:"group_filter"`
	// GroupSearchBase and GroupSearchFilter, when set, name a search that
	// must find at least one group; the filter may use {dn} (the user's DN)
	// and {user}, both filter-escaped, such as
	// "(&(objectClass=groupOfNames)(cn=mppd)(member={dn}))".
	GroupSearchBase   string `toml:"group_search_base"`
	GroupSearchFilter string `toml:"group_search_filter"`

	// AddressAttributes are read in order for the addresses the user may
	// send as; the first value found is the primary address.
	AddressAttributes []string `toml:"address_attributes"`
	// DefaultDomain, when set, gives a user with no address attribute the
	// address <account>@DefaultDomain; otherwise such a user is refused.
	DefaultDomain string `toml:"default_domain"`
	// AccountAttribute holds the local account name (Identity.Account and
	// Identity.Login); empty means the user name as typed is the login
	// and there is no local account.
	AccountAttribute string `toml:"account_attribute"`
}

// DefaultLDAP returns the defaults documented in mppd.conf(5). It has no
// URI and no way to find users, so it does not validate on its own.
func DefaultLDAP() LDAP {
	return LDAP{
		MinTLSVersion:     "1.2",
		DialTimeout:       Duration(5 * time.Second),
		RequestTimeout:    Duration(10 * time.Second),
		PoolSize:          4,
		PoolIdleTimeout:   Duration(60 * time.Second),
		SearchScope:       "sub",
		AddressAttributes: []string{"mail"},
		AccountAttribute:  "uid",
	}
}

// Validate checks the configuration and names the offending key, as
// "ldap: key: what is wrong" (the first problem found).
func (c LDAP) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("ldap: "+key+": "+format, args...))
	}

	if len(c.URIs) == 0 {
		bad("uris", "at least one ldap:// or ldaps:// URI is required")
	}
	for _, s := range c.URIs {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			bad("uris", "%q: %v", s, err)
		case u.Scheme != "ldap" && u.Scheme != "ldaps":
			bad("uris", "%q: scheme must be ldap or ldaps", s)
		case u.Host == "":
			bad("uris", "%q: no host", s)
		case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil:
			bad("uris", "%q: only scheme://host[:port] is allowed (put the base DN in search_base)", s)
		}
	}
	if _, err := c.MinTLS(); err != nil {
		bad("min_tls_version", "%v", err)
	}
	if (c.ClientCert == "") != (c.ClientKey == "") {
		bad("client_cert", "client_cert and client_key go together")
	}
	if c.DialTimeout <= 0 {
		bad("dial_timeout", "must be positive")
	}
	if c.RequestTimeout <= 0 {
		bad("request_timeout", "must be positive")
	}
	if c.PoolSize < 1 || c.PoolSize > 64 {
		bad("pool_size", "must be 1 to 64, not %d", c.PoolSize)
	}
	if c.PoolIdleTimeout < 0 {
		bad("pool_idle_timeout", "must not be negative")
	}

	direct := c.UserDN != ""
	search := c.SearchFilter != ""
	switch {
	case direct && search:
		bad("user_dn", "direct bind (user_dn) and search then bind (search_filter) exclude each other; set one")
	case !direct && !search:
		bad("user_dn", "set user_dn (direct bind) or search_base and search_filter (search then bind)")
	case direct:
		if err := checkDNTemplate(c.UserDN); err != nil {
			bad("user_dn", "%v", err)
			break
		}
		// A UPN ("{user}@corp.example.com") is not a DN, so the entry
		// is found after the bind by userPrincipalName under search_base.
		switch {
		case LDAPDNStyle(c.UserDN) && c.SearchBase != "":
			bad("search_base", "not used with a DN template in user_dn; remove it")
		case !LDAPDNStyle(c.UserDN) && c.SearchBase == "":
			bad("search_base", "required with a UPN user_dn (%q), to read the user's entry", c.UserDN)
		case !LDAPDNStyle(c.UserDN):
			if _, err := goldap.ParseDN(c.SearchBase); err != nil {
				bad("search_base", "%q is not a DN: %v", c.SearchBase, err)
			}
		}
	case search:
		if c.SearchBase == "" {
			bad("search_base", "required with search_filter")
		} else if _, err := goldap.ParseDN(c.SearchBase); err != nil {
			bad("search_base", "%q is not a DN: %v", c.SearchBase, err)
		}
		if err := checkFilterTemplate(c.SearchFilter, false); err != nil {
			bad("search_filter", "%v", err)
		}
	}
	if _, err := c.Scope(); err != nil {
		bad("search_scope", "%v", err)
	}
	if (c.ServiceDN == "") != (c.ServicePasswordFile == "") {
		bad("service_dn", "service_dn and service_password_file go together")
	}
	if c.ServiceDN != "" {
		if _, err := goldap.ParseDN(c.ServiceDN); err != nil {
			bad("service_dn", "%q is not a DN: %v", c.ServiceDN, err)
		}
	}
	if c.GroupFilter != "" {
		if _, err := goldap.CompileFilter(c.GroupFilter); err != nil {
			bad("group_filter", "%q: %v", c.GroupFilter, err)
		}
	}
	if (c.GroupSearchBase == "") != (c.GroupSearchFilter == "") {
		bad("group_search_base", "group_search_base and group_search_filter go together")
	} else if c.GroupSearchFilter != "" {
		if _, err := goldap.ParseDN(c.GroupSearchBase); err != nil {
			bad("group_search_base", "%q is not a DN: %v", c.GroupSearchBase, err)
		}
		if err := checkFilterTemplate(c.GroupSearchFilter, true); err != nil {
			bad("group_search_filter", "%v", err)
		}
	}
	if len(c.AddressAttributes) == 0 {
		bad("address_attributes", "at least one attribute is required (mail, usually)")
	}
	for _, a := range c.AddressAttributes {
		if !validAttr(a) {
			bad("address_attributes", "%q is not an attribute name", a)
		}
	}
	if c.AccountAttribute != "" && !validAttr(c.AccountAttribute) {
		bad("account_attribute", "%q is not an attribute name", c.AccountAttribute)
	}
	if c.DefaultDomain != "" {
		if err := address.ValidDomain(c.DefaultDomain); err != nil {
			bad("default_domain", "%v", err)
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// Direct reports whether the configuration uses direct bind.
func (c LDAP) Direct() bool { return c.UserDN != "" }

// MinTLS returns min_tls_version as a crypto/tls version.
func (c LDAP) MinTLS() (uint16, error) {
	switch s := c.MinTLSVersion; s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q: must be \"1.2\" or \"1.3\"", c.MinTLSVersion)
}

// Scope returns search_scope as a go-ldap scope.
func (c LDAP) Scope() (int, error) {
	switch s := c.SearchScope; s {
	case "sub", "":
		return goldap.ScopeWholeSubtree, nil
	case "one":
		return goldap.ScopeSingleLevel, nil
	}
	return 0, fmt.Errorf("%q: must be \"sub\" or \"one\"", c.SearchScope)
}

// validAttr accepts an attribute description: a name or an OID, with
// options (RFC 4512 §2.5), nothing that could change a filter's meaning.
func validAttr(a string) bool {
	if a == "" || len(a) > 128 {
		return false
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == ';') {
			return false
		}
	}
	return true
}

// LDAPUser and LDAPDN are the placeholders of the LDAP templates. Expansion is a single pass
// (strings.Replacer), so a user name that itself contains "{dn}" is not
// expanded again.
const (
	LDAPUser = "{user}"
	LDAPDN   = "{dn}"
)

// LDAPDNStyle reports whether a direct-bind template is a DN ("uid={user},...")
// rather than an Active Directory UPN ("{user}@corp.example.com") or
// down-level name ("CORP\{user}").
func LDAPDNStyle(tmpl string) bool {
	return strings.Contains(strings.ReplaceAll(tmpl, LDAPUser, ""), "=")
}

func checkDNTemplate(tmpl string) error {
	if !strings.Contains(tmpl, LDAPUser) {
		return fmt.Errorf("%q does not contain %s", tmpl, LDAPUser)
	}
	if LDAPDNStyle(tmpl) {
		if _, err := goldap.ParseDN(strings.ReplaceAll(tmpl, LDAPUser, "x")); err != nil {
			return fmt.Errorf("%q is not a DN template: %v", tmpl, err)
		}
	}
	return nil
}

func checkFilterTemplate(tmpl string, group bool) error {
	if group {
		if !strings.Contains(tmpl, LDAPUser) && !strings.Contains(tmpl, LDAPDN) {
			return fmt.Errorf("%q contains neither %s nor %s", tmpl, LDAPUser, LDAPDN)
		}
	} else if !strings.Contains(tmpl, LDAPUser) {
		return fmt.Errorf("%q does not contain %s", tmpl, LDAPUser)
	} else if strings.Contains(tmpl, LDAPDN) {
		// The user's DN is what this search finds: it is not known yet.
		return fmt.Errorf("%q contains %s, which only a group search can use", tmpl, LDAPDN)
	}
	f := strings.NewReplacer(LDAPUser, "x", LDAPDN, "cn=x").Replace(tmpl)
	if _, err := goldap.CompileFilter(f); err != nil {
		return fmt.Errorf("%q is not a filter template: %v", tmpl, err)
	}
	return nil
}
