package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// validLDAP is a configuration that passes Validate; the table changes one
// thing at a time.
func validLDAP() LDAP {
	c := DefaultLDAP()
	c.URIs = []string{"ldap://ldap.example.com", "ldaps://ldap2.example.com:636"}
	c.SearchBase = "dc=example,dc=com"
	c.SearchFilter = "(&(objectClass=person)(uid={user}))"
	return c
}

func TestLDAPValidate(t *testing.T) {
	if err := validLDAP().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if err := DefaultLDAP().Validate(); err == nil {
		t.Error("DefaultLDAP alone (no URI, no mode) validated")
	}
	direct := func(c *LDAP) {
		c.SearchBase, c.SearchFilter, c.UserDN = "", "", "uid={user},ou=people,dc=example,dc=com"
	}
	for _, tc := range []struct {
		name   string
		change func(*LDAP)
		want   string // "" means valid
	}{
		{"direct", direct, ""},
		{"upn", func(c *LDAP) { c.SearchFilter, c.UserDN = "", "{user}@corp.example.com" }, ""},
		{"upn without base", func(c *LDAP) { direct(c); c.UserDN = "{user}@corp.example.com" }, "search_base: required with a UPN"},
		{"dn template with base", func(c *LDAP) { direct(c); c.SearchBase = "dc=x" }, "search_base: not used"},
		{"both modes", func(c *LDAP) { c.UserDN = "uid={user},dc=x" }, "user_dn: direct bind (user_dn) and search then bind"},
		{"no mode", func(c *LDAP) { c.SearchBase, c.SearchFilter = "", "" }, "user_dn: set user_dn"},
		{"template without user", func(c *LDAP) { direct(c); c.UserDN = "uid=alice,dc=x" }, "user_dn: \"uid=alice,dc=x\" does not contain {user}"},
		{"filter without user", func(c *LDAP) { c.SearchFilter = "(uid=alice)" }, "search_filter: \"(uid=alice)\" does not contain {user}"},
		{"search filter with {dn}", func(c *LDAP) { c.SearchFilter = "(&(uid={user})(member={dn}))" }, "search_filter: \"(&(uid={user})(member={dn}))\" contains {dn}, which only a group search can use"},
		{"broken filter", func(c *LDAP) { c.SearchFilter = "(uid={user}" }, "search_filter: "},
		{"filter no base", func(c *LDAP) { c.SearchBase = "" }, "search_base: required"},
		{"bad base", func(c *LDAP) { c.SearchBase = "not a dn" }, "search_base: \"not a dn\" is not a DN"},
		{"no uris", func(c *LDAP) { c.URIs = nil }, "uris: at least one"},
		{"http uri", func(c *LDAP) { c.URIs = []string{"http://x"} }, "uris: \"http://x\": scheme must be ldap or ldaps"},
		{"uri with dn", func(c *LDAP) { c.URIs = []string{"ldap://x/dc=example,dc=com"} }, "uris: \"ldap://x/dc=example,dc=com\": only scheme://host[:port]"},
		{"tls 1.1", func(c *LDAP) { c.MinTLSVersion = "1.1" }, "min_tls_version: \"1.1\""},
		{"tls 1.3", func(c *LDAP) { c.MinTLSVersion = "1.3" }, ""},
		{"cert without key", func(c *LDAP) { c.ClientCert = "/x.pem" }, "client_cert: client_cert and client_key go together"},
		{"zero dial timeout", func(c *LDAP) { c.DialTimeout = 0 }, "dial_timeout: must be positive"},
		{"zero request timeout", func(c *LDAP) { c.RequestTimeout = 0 }, "request_timeout: must be positive"},
		{"pool 0", func(c *LDAP) { c.PoolSize = 0 }, "pool_size: must be 1 to 64, not 0"},
		{"scope base", func(c *LDAP) { c.SearchScope = "base" }, "search_scope: \"base\""},
		{"service dn alone", func(c *LDAP) { c.ServiceDN = "cn=svc,dc=x" }, "service_dn: service_dn and service_password_file go together"},
		{"service both", func(c *LDAP) { c.ServiceDN, c.ServicePasswordFile = "cn=svc,dc=x", "/etc/mppd/ldap.secret" }, ""},
		{"group filter", func(c *LDAP) { c.GroupFilter = "(memberOf=cn=g,dc=x)" }, ""},
		{"bad group filter", func(c *LDAP) { c.GroupFilter = "memberOf=(" }, "group_filter: "},
		{"group search half", func(c *LDAP) { c.GroupSearchBase = "dc=x" }, "group_search_base: group_search_base and group_search_filter go together"},
		{"group search", func(c *LDAP) { c.GroupSearchBase, c.GroupSearchFilter = "dc=x", "(member={dn})" }, ""},
		{"group search no placeholder", func(c *LDAP) { c.GroupSearchBase, c.GroupSearchFilter = "dc=x", "(cn=g)" }, "group_search_filter: \"(cn=g)\" contains neither"},
		{"no address attrs", func(c *LDAP) { c.AddressAttributes = nil }, "address_attributes: at least one"},
		{"attr injection", func(c *LDAP) { c.AddressAttributes = []string{"mail)(x=*"} }, "address_attributes: \"mail)(x=*\" is not an attribute name"},
		{"account attr", func(c *LDAP) { c.AccountAttribute = "sAMAccountName" }, ""},
		{"no account attr", func(c *LDAP) { c.AccountAttribute = "" }, ""},
		{"bad domain", func(c *LDAP) { c.DefaultDomain = "@x" }, "default_domain: "},
		// The worked examples of mppd.conf(5).
		{"ad example", func(c *LDAP) {
			c.SearchBase = "DC=corp,DC=example,DC=com"
			c.SearchFilter = "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
			c.ServiceDN, c.ServicePasswordFile = "CN=svc-mppd,OU=Service Accounts,DC=corp,DC=example,DC=com", "/etc/mppd/ldap.secret"
			c.GroupFilter = "(memberOf:1.2.840.113556.1.4.1941:=CN=Mail Posters,OU=Groups,DC=corp,DC=example,DC=com)"
			c.AddressAttributes, c.AccountAttribute = []string{"mail", "proxyAddresses"}, "sAMAccountName"
		}, ""},
		{"freeipa example", func(c *LDAP) {
			c.SearchBase = "cn=users,cn=accounts,dc=example,dc=org"
			c.SearchFilter = "(&(objectClass=posixAccount)(uid={user})(!(nsAccountLock=TRUE)))"
			c.ServiceDN, c.ServicePasswordFile = "uid=mppd,cn=sysaccounts,cn=etc,dc=example,dc=org", "/etc/mppd/ldap.secret"
			c.GroupFilter = "(memberOf=cn=mail-posters,cn=groups,cn=accounts,dc=example,dc=org)"
		}, ""},
		{"openldap group search example", func(c *LDAP) {
			c.GroupSearchBase, c.GroupSearchFilter = "ou=groups,dc=example,dc=org", "(&(objectClass=groupOfNames)(cn=mail-users)(member={dn}))"
		}, ""},
	} {
		c := validLDAP()
		tc.change(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: validated, want error %q", tc.name, tc.want)
		case tc.want != "" && !strings.Contains(err.Error(), "ldap: "+tc.want):
			t.Errorf("%s: error %q does not contain %q", tc.name, err, "ldap: "+tc.want)
		}
	}
}

// The TOML table decodes into LDAP as mppd.conf(5) documents it.
func TestLDAPTOML(t *testing.T) {
	const doc = `
uris = ["ldap://a.example.com", "ldap://b.example.com"]
ca_file = "/etc/ssl/certs/corp-ca.pem"
dial_timeout = "2s"
request_timeout = "1500ms"
pool_size = 8
search_base = "dc=example,dc=com"
search_filter = "(uid={user})"
service_dn = "cn=mppd,dc=example,dc=com"
service_password_file = "/etc/mppd/ldap.secret"
address_attributes = ["mail", "mailAlternateAddress"]
`
	c := DefaultLDAP()
	dec := toml.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DialTimeout != Duration(2*time.Second) || c.RequestTimeout != Duration(1500*time.Millisecond) ||
		c.PoolSize != 8 || c.AccountAttribute != "uid" || c.MinTLSVersion != "1.2" || len(c.URIs) != 2 {
		t.Errorf("decoded %+v", c)
	}
	c = DefaultLDAP()
	if err := toml.Unmarshal([]byte(`dial_timeout = "soon"`), &c); err == nil {
		t.Error("a bad duration decoded")
	}
}

// The down-level template as the manual spells it: single quotes, a TOML
// literal string. In double quotes "\{" is an invalid escape.
func TestLDAPDownLevelTemplateInManual(t *testing.T) {
	man, err := os.ReadFile("../../man/mppd.conf.5")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, line := range strings.Split(string(man), "\n") {
		if !strings.HasPrefix(line, "user_dn = ") || !strings.Contains(line, `\e`) {
			continue
		}
		found++
		line = strings.ReplaceAll(line, `\e`, `\`) // roff's backslash
		c := DefaultLDAP()
		if err := toml.Unmarshal([]byte(line), &c); err != nil || c.UserDN != `CORP\{user}` {
			t.Errorf("the manual's %s: %v, user_dn %q", line, err, c.UserDN)
		}
	}
	if found == 0 {
		t.Error("the manual has no down-level user_dn example")
	}
	c := DefaultLDAP()
	if err := toml.Unmarshal([]byte(`user_dn = "CORP\{user}"`), &c); err == nil {
		t.Error("a down-level name in double quotes decoded")
	}
}
