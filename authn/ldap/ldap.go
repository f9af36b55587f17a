// Package ldap authenticates mppd users against a directory (OpenLDAP,
// 389-ds/FreeIPA, Active Directory) with an LDAP simple bind (RFC 4513
// §5.1.3), over TLS, and reads the identity from the user's entry: the
// addresses the user may send as and the local account to submit as.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync/atomic"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/address"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
)

// Backend is the LDAP authenticator. It is safe for concurrent use.
type Backend struct {
	cfg         config.LDAP
	log         *slog.Logger
	roots       *x509.CertPool
	clientCerts []tls.Certificate
	minTLS      uint16
	scope       int

	search   *pool // service-account (or anonymous) searches
	binds    *pool // user binds
	closed   atomic.Bool
	noWhoAmI atomic.Bool // the server refused who-am-I once
	svc      serviceBind
}

var _ authn.Authenticator = (*Backend)(nil)

// New checks cfg, reads the service password and the TLS files, and returns
// the backend. It does not contact the directory: mppd must start, and
// answer 451, while the directory is down.
func New(cfg config.LDAP, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Backend{cfg: cfg, log: log}
	b.scope, _ = cfg.Scope()
	if err := b.loadTLS(); err != nil {
		return nil, err
	}
	if cfg.ServicePasswordFile != "" {
		if err := b.svc.load(cfg.ServicePasswordFile); err != nil {
			return nil, fmt.Errorf("ldap: service_password_file: %w", err)
		}
	}
	b.search = newPool(b, "search", true, cfg.PoolSize)
	b.binds = newPool(b, "bind", false, cfg.PoolSize)
	return b, nil
}

// readSecret returns the first line of a file, without its line ending. An
// empty password is refused: it would make the service bind anonymous.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("%s: the first line (the password) is empty", path)
	}
	return pw, nil
}

// Close closes the pooled connections. The backend must not be used after.
func (b *Backend) Close() error {
	b.closed.Store(true)
	b.search.closeIdle()
	b.binds.closeIdle()
	return nil
}

// String describes the backend for the start-up log (no secrets).
func (b *Backend) String() string {
	var s strings.Builder
	fmt.Fprintf(&s, "ldap uris=%s", strings.Join(b.cfg.URIs, ","))
	switch {
	case b.cfg.InsecurePlaintext:
		s.WriteString(" tls=INSECURE-PLAINTEXT")
	default:
		s.WriteString(" tls=on")
	}
	if b.cfg.Direct() {
		fmt.Fprintf(&s, " mode=direct-bind user_dn=%q", b.cfg.UserDN)
	} else {
		fmt.Fprintf(&s, " mode=search-bind base=%q filter=%q", b.cfg.SearchBase, b.cfg.SearchFilter)
	}
	if b.cfg.ServiceDN != "" {
		fmt.Fprintf(&s, " service_dn=%q", b.cfg.ServiceDN)
	}
	if b.groups() {
		s.WriteString(" group=required")
	}
	fmt.Fprintf(&s, " pool=%d", b.cfg.PoolSize)
	return s.String()
}

// Check connects to the directory as a login would (TCP, TLS, and the
// service account's bind when there is one) and reads search_base (the
// root DSE when there is none), for mppd --check-config: a wrong URI, CA
// file, service password or search base shows before the first login.
// A wrong service password then counts once towards its lockout.
func (b *Backend) Check(ctx context.Context) error {
	base := b.cfg.SearchBase
	return b.search.with(ctx, func(c *conn) error {
		_, err := c.lc.Search(goldap.NewSearchRequest(base, goldap.ScopeBaseObject, goldap.NeverDerefAliases,
			1, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
		if err != nil {
			return authn.Unavailable(unavailableReason(err, "search"), fmt.Errorf("ldap: reading %q at %s: %w", base, c.uri, err))
		}
		return nil
	})
}

// PoolStats reports how many connections each pool has opened and how many
// checkouts an idle connection served, for tests and diagnostics.
func (b *Backend) PoolStats() (searchDialled, bindDialled, reused int64) {
	return b.search.dialled.Load(), b.binds.dialled.Load(), b.search.reused.Load() + b.binds.reused.Load()
}

// entry is what we learnt about the user's directory entry.
type entry struct {
	dn    string
	attrs map[string][]string // keys lower-cased
}

func (e *entry) get(attr string) []string { return e.attrs[strings.ToLower(attr)] }

// Authenticate implements authn.Authenticator.
func (b *Backend) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	// An LDAP simple bind with a name and an empty password is an
	// "unauthenticated bind" (RFC 4513 §5.1.2) that many servers answer
	// with success: the classic login bypass. Refuse it here, before any
	// I/O; go-ldap refuses too, but we do not rely on that alone.
	if req.Password == "" {
		return authn.Identity{}, authn.Rejected("empty-password", nil)
	}
	if req.User == "" || len(req.User) > 256 {
		return authn.Identity{}, authn.Rejected("bad-username", nil)
	}
	if b.closed.Load() {
		return authn.Identity{}, authn.Unavailable("closed", errors.New("ldap backend closed"))
	}

	var (
		e   *entry
		err error
	)
	if b.cfg.Direct() {
		e, err = b.directBind(ctx, req)
	} else {
		e, err = b.searchBind(ctx, req)
	}
	if err != nil {
		return authn.Identity{}, err
	}
	return b.identity(req, e)
}

// directBind binds with the DN, UPN or down-level name made from the
// template, then reads the entry and checks the groups: as the service
// account when there is one, otherwise as the user on the same connection.
func (b *Backend) directBind(ctx context.Context, req authn.Request) (*entry, error) {
	name, err := expandDN(b.cfg.UserDN, req.User)
	if err != nil {
		return nil, authn.Rejected("bad-username", err)
	}
	asService := b.cfg.ServiceDN != ""
	var (
		e   *entry
		who string
	)
	err = b.binds.with(ctx, func(c *conn) error {
		if err := c.lc.Bind(name, req.Password); err != nil {
			// The server does not say whether the name or the
			// password was wrong.
			return bindError(err, "invalid-credentials")
		}
		if !config.LDAPDNStyle(b.cfg.UserDN) {
			who = b.whoAmI(c)
		}
		if asService {
			return nil
		}
		var err error
		if e, err = b.readEntry(c, name, who); err != nil {
			return err
		}
		return b.checkGroups(c, e, req.User)
	})
	if err != nil || !asService {
		return e, err
	}
	err = b.search.with(ctx, func(c *conn) error {
		var err error
		if e, err = b.readEntry(c, name, who); err != nil {
			return err
		}
		return b.checkGroups(c, e, req.User)
	})
	return e, err
}

// whoAmI asks the server who the connection is bound as (the "Who am I?"
// operation, RFC 4532), after a bind with a UPN or down-level name. Active
// Directory answers "u:CORP\user"; a server that does not know the
// operation (Samba's AD DC) is not asked again, and the entry is then found
// from the name itself.
func (b *Backend) whoAmI(c *conn) string {
	if b.noWhoAmI.Load() {
		return ""
	}
	res, err := c.lc.WhoAmI(nil)
	if err != nil {
		var le *goldap.Error
		if errors.As(err, &le) && le.ResultCode < goldap.ErrorNetwork {
			b.noWhoAmI.Store(true)
			b.log.Info("ldap: the server does not answer who-am-I; finding entries by userPrincipalName or sAMAccountName", logkey.Err, err)
		}
		return ""
	}
	return res.AuthzID
}

// searchBind finds the entry as the service account (or anonymously), then
// binds as it with the user's password, then checks the groups.
func (b *Backend) searchBind(ctx context.Context, req authn.Request) (*entry, error) {
	var e *entry
	filter := expandFilter(b.cfg.SearchFilter, req.User, "")
	err := b.search.with(ctx, func(c *conn) error {
		var err error
		e, err = b.findOne(c, b.cfg.SearchBase, b.scope, filter)
		return err
	})
	if err != nil {
		return nil, err
	}
	asService := b.cfg.ServiceDN != ""
	err = b.binds.with(ctx, func(c *conn) error {
		if err := c.lc.Bind(e.dn, req.Password); err != nil {
			return bindError(err, "bad-password")
		}
		if asService {
			return nil
		}
		return b.checkGroups(c, e, req.User)
	})
	if err != nil || !asService || !b.groups() {
		return e, err
	}
	err = b.search.with(ctx, func(c *conn) error { return b.checkGroups(c, e, req.User) })
	return e, err
}

// attributes are the ones read from the user's entry.
func (b *Backend) attributes() []string {
	attrs := append([]string(nil), b.cfg.AddressAttributes...)
	if b.cfg.AccountAttribute != "" {
		attrs = append(attrs, b.cfg.AccountAttribute)
	}
	return attrs
}

// findOne searches for the user's entry and requires exactly one: the size
// limit is 2, so a filter that matches many entries costs nothing and is
// refused rather than answered with the first of them.
func (b *Backend) findOne(c *conn, base string, scope int, filter string) (*entry, error) {
	res, err := c.lc.Search(goldap.NewSearchRequest(base, scope, goldap.NeverDerefAliases,
		2, 0, false, filter, b.attributes(), nil))
	// An ambiguous search is the directory's problem, shown in the
	// engine's auth-failed line (err=), which carries the session.
	ambiguous := func() error {
		return fmt.Errorf("ldap: the user search %s matched more than one entry", filter)
	}
	if goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) {
		return nil, authn.Rejected("ambiguous-user", ambiguous())
	}
	if err != nil {
		return nil, authn.Unavailable(unavailableReason(err, "search"), err)
	}
	switch len(res.Entries) {
	case 0:
		return nil, authn.Rejected("unknown-user", nil)
	case 1:
	default:
		return nil, authn.Rejected("ambiguous-user", ambiguous())
	}
	return toEntry(res.Entries[0]), nil
}

// readEntry reads the attributes of the entry just bound as. name is the
// bind name: a DN, a UPN or a down-level name. who is the server's
// who-am-I answer ("dn:..." or "u:DOMAIN\user"), or empty.
//
// Active Directory accepts for a bind the explicit userPrincipalName, the
// implicit one (sAMAccountName@the domain's DNS name, even when the
// account's own UPN is another one or unset) and DOMAIN\sAMAccountName. So
// without a who-am-I answer, a UPN is looked up as a userPrincipalName
// first and, when no entry has it, as the sAMAccountName of its local part;
// a down-level name by the sAMAccountName after the backslash.
func (b *Backend) readEntry(c *conn, name, who string) (*entry, error) {
	var (
		e   *entry
		err error
	)
	base := func(dn string) { e, err = b.findOne(c, dn, goldap.ScopeBaseObject, "(objectClass=*)") }
	sam := func(acct string) {
		e, err = b.findOne(c, b.cfg.SearchBase, b.scope, "(sAMAccountName="+goldap.EscapeFilter(acct)+")")
	}
	switch {
	case config.LDAPDNStyle(b.cfg.UserDN):
		base(name)
	case strings.HasPrefix(who, "dn:") && len(who) > 3:
		base(who[3:])
	case strings.HasPrefix(who, "u:") && strings.Contains(who, "\\"):
		_, acct, _ := strings.Cut(who, "\\")
		sam(acct)
	case strings.Contains(name, "\\"):
		_, acct, _ := strings.Cut(name, "\\")
		sam(acct)
	default:
		e, err = b.findOne(c, b.cfg.SearchBase, b.scope, "(userPrincipalName="+goldap.EscapeFilter(name)+")")
		if err != nil && authn.Reason(err) == "unknown-user" {
			if local, _, ok := strings.Cut(name, "@"); ok {
				sam(local)
			}
		}
	}
	if err != nil && authn.Reason(err) == "unknown-user" {
		// The bind succeeded, so the account exists; not finding its
		// entry is an access-control or configuration problem in the
		// directory, not the user's fault.
		return nil, authn.Unavailable("unreadable-entry", fmt.Errorf("ldap: cannot read the entry of %q after binding", name))
	}
	return e, err
}

func toEntry(le *goldap.Entry) *entry {
	e := &entry{dn: le.DN, attrs: make(map[string][]string, len(le.Attributes))}
	for _, a := range le.Attributes {
		k := strings.ToLower(a.Name)
		e.attrs[k] = append(e.attrs[k], a.Values...)
	}
	return e
}

// groups reports whether group membership is required.
func (b *Backend) groups() bool { return b.cfg.GroupFilter != "" || b.cfg.GroupSearchFilter != "" }

// checkGroups applies the optional authorization: the user's entry must
// match group_filter, and group_search_filter must find a group.
func (b *Backend) checkGroups(c *conn, e *entry, user string) error {
	if b.cfg.GroupFilter != "" {
		ok, err := b.exists(c, e.dn, goldap.ScopeBaseObject, b.cfg.GroupFilter)
		if err != nil {
			return err
		}
		if !ok {
			return authn.Rejected("not-in-group", nil)
		}
	}
	if b.cfg.GroupSearchFilter != "" {
		ok, err := b.exists(c, b.cfg.GroupSearchBase, goldap.ScopeWholeSubtree,
			expandFilter(b.cfg.GroupSearchFilter, user, e.dn))
		if err != nil {
			return err
		}
		if !ok {
			return authn.Rejected("not-in-group", nil)
		}
	}
	return nil
}

// exists reports whether a search finds at least one entry; it asks for no
// attributes ("1.1", RFC 4511 §4.5.1.8) and one entry at most. A base the
// directory does not have (noSuchObject: a group_search_base that is wrong,
// or hidden from the account searching) is a configuration fault, not a
// user outside the group: it is "unavailable" (451), never 530 for all.
func (b *Backend) exists(c *conn, base string, scope int, filter string) (bool, error) {
	res, err := c.lc.Search(goldap.NewSearchRequest(base, scope, goldap.NeverDerefAliases,
		1, 0, false, filter, []string{"1.1"}, nil))
	switch {
	case goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded):
		return true, nil
	case err != nil:
		return false, authn.Unavailable(unavailableReason(err, "group-search"), err)
	}
	return len(res.Entries) > 0, nil
}

// identity builds the authn.Identity from the entry.
func (b *Backend) identity(req authn.Request, e *entry) (authn.Identity, error) {
	id := authn.Identity{Login: req.User}
	log := b.log.With(logkey.Session, req.Session)
	if b.cfg.AccountAttribute != "" {
		if acct := pickAccount(e.get(b.cfg.AccountAttribute), req.User); acct != "" {
			id.Login, id.Account = acct, acct
		} else {
			log.Warn("ldap: entry has no usable account attribute", "dn", e.dn, "attribute", b.cfg.AccountAttribute)
		}
	}
	seen := map[string]bool{}
	for _, attr := range b.cfg.AddressAttributes {
		for _, v := range e.get(attr) {
			a, ok := mailAddress(v)
			if !ok {
				if v != "" && !strings.Contains(v, ":") {
					log.Warn("ldap: ignoring a value that is not a mail address", "dn", e.dn, "attribute", attr, "value", v)
				}
				continue
			}
			if k := strings.ToLower(a); !seen[k] {
				seen[k] = true
				id.Addresses = append(id.Addresses, a)
			}
		}
	}
	if len(id.Addresses) == 0 {
		if b.cfg.DefaultDomain == "" {
			return authn.Identity{}, authn.Rejected("no-address", fmt.Errorf("ldap: %q has none of %v", e.dn, b.cfg.AddressAttributes))
		}
		id.Addresses = []string{id.Login + "@" + b.cfg.DefaultDomain}
	}
	return id, nil
}

var accountRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$`)

// pickAccount chooses the local account among the attribute's values (uid
// may have several): the one equal to what the user typed, else the first.
// Values that could not be an account name (a leading "-", a slash,
// control bytes) are ignored.
func pickAccount(vals []string, typed string) string {
	first := ""
	for _, v := range vals {
		if !accountRE.MatchString(v) {
			continue
		}
		if strings.EqualFold(v, typed) {
			return v
		}
		if first == "" {
			first = v
		}
	}
	return first
}

// mailAddress checks one attribute value against mppd's mailbox grammar
// (package address) and returns its canonical form. Active Directory's
// proxyAddresses values carry a type ("SMTP:primary@x", "smtp:alias@x",
// "X500:..."); the SMTP ones are used, the others skipped.
func mailAddress(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if typ, rest, ok := strings.Cut(v, ":"); ok {
		if !strings.EqualFold(typ, "smtp") {
			return "", false
		}
		v = rest
	}
	a, err := address.Parse(v)
	if err != nil {
		return "", false
	}
	return a, true
}

// bindError classifies the result of a user bind. reason names a plain
// invalidCredentials (and Active Directory's "52e", which is the same):
// "bad-password" when a search found the entry, "invalid-credentials" for a
// direct bind, where the server does not say whether the name or the
// password was wrong.
func bindError(err error, reason string) error {
	var le *goldap.Error
	if !errors.As(err, &le) {
		return authn.Unavailable(unavailableReason(err, "bind"), err)
	}
	switch le.ResultCode {
	case goldap.LDAPResultInvalidCredentials:
		if r := adReason(le); r != "" {
			reason = r
		}
		return authn.Rejected(reason, err)
	case goldap.LDAPResultConstraintViolation:
		// OpenLDAP ppolicy and 389-ds answer a locked account this way.
		return authn.Rejected("locked", err)
	case goldap.LDAPResultUnwillingToPerform, goldap.LDAPResultInappropriateAuthentication:
		// The server refuses this account's bind (disabled account,
		// unauthenticated binds disallowed).
		return authn.Rejected("refused", err)
	case goldap.ErrorEmptyPassword:
		return authn.Rejected("empty-password", err)
	}
	return authn.Unavailable(unavailableReason(err, "bind"), err)
}

// adDataRE finds the sub-code Active Directory puts in the diagnostic
// message of invalidCredentials: "... AcceptSecurityContext error, data 775, v4563".
var adDataRE = regexp.MustCompile(`\bdata ([0-9a-fA-F]{3}),`)

// adReason names Active Directory's sub-code of invalidCredentials with the
// words the PAM backend uses for the same states.
func adReason(le *goldap.Error) string {
	if le.Err == nil {
		return ""
	}
	m := adDataRE.FindStringSubmatch(le.Err.Error())
	if m == nil {
		return ""
	}
	switch strings.ToLower(m[1]) {
	case "525":
		return "unknown-user"
	case "530", "531":
		return "not-permitted-now" // outside logon hours, or from another workstation
	case "532":
		return "password-expired"
	case "533":
		return "disabled"
	case "701":
		return "account-expired"
	case "773":
		return "password-change-required"
	case "775":
		return "locked"
	}
	// "52e" (bad name or password) and codes we do not know: the caller's
	// reason for a plain invalidCredentials.
	return ""
}

// unavailableReason names an error that means "cannot decide now".
func unavailableReason(err error, fallback string) string {
	var un *authn.UnavailableError
	if errors.As(err, &un) {
		return un.Reason
	}
	if isTimeout(err) {
		return "timeout"
	}
	var le *goldap.Error
	if !errors.As(err, &le) {
		// go-ldap reports a connection the server closed ("unable to
		// read LDAP response packet: EOF") as a plain error.
		return "connect"
	}
	switch le.ResultCode {
	case goldap.LDAPResultBusy, goldap.LDAPResultAdminLimitExceeded:
		return "busy"
	case goldap.LDAPResultUnavailable:
		return "unavailable"
	case goldap.LDAPResultTimeLimitExceeded:
		return "timeout"
	case goldap.ErrorNetwork:
		return "connect"
	}
	return fallback
}
