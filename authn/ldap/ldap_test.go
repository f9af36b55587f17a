package ldap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
)

func TestExpandDN(t *testing.T) {
	const tmpl = "uid={user},ou=people,dc=example,dc=com"
	for _, tc := range []struct{ user, want string }{
		{"alice", "uid=alice,ou=people,dc=example,dc=com"},
		{"smith, j", `uid=smith\, j,ou=people,dc=example,dc=com`},
		{"a+cn=b", `uid=a\+cn=b,ou=people,dc=example,dc=com`},
		{"x,ou=admins", `uid=x\,ou=admins,ou=people,dc=example,dc=com`},
		{`back\slash`, `uid=back\\slash,ou=people,dc=example,dc=com`},
		{"#hash", `uid=\#hash,ou=people,dc=example,dc=com`},
		{" lead", `uid=\ lead,ou=people,dc=example,dc=com`},
		{"trail ", `uid=trail\ ,ou=people,dc=example,dc=com`},
		{`"q";<>`, `uid=\"q\"\;\<\>,ou=people,dc=example,dc=com`},
		{"nul\x00", `uid=nul\00,ou=people,dc=example,dc=com`},
		{"{dn}", "uid={dn},ou=people,dc=example,dc=com"},
	} {
		got, err := expandDN(tmpl, tc.user)
		if err != nil || got != tc.want {
			t.Errorf("expandDN(%q) = %q, %v; want %q", tc.user, got, err, tc.want)
			continue
		}
		// Whatever the name, it stays the value of the first RDN.
		dn, err := goldap.ParseDN(got)
		if err != nil || len(dn.RDNs) != 4 || dn.RDNs[0].Attributes[0].Value != tc.user {
			t.Errorf("expandDN(%q) = %q does not parse back to one RDN value: %v", tc.user, got, err)
		}
	}
	if _, err := expandDN(tmpl, ""); err == nil {
		t.Error("empty user name accepted")
	}
}

func TestExpandUPN(t *testing.T) {
	got, err := expandDN("{user}@corp.example.com", "alice.smith")
	if err != nil || got != "alice.smith@corp.example.com" {
		t.Errorf("UPN: %q, %v", got, err)
	}
	got, err = expandDN(`CORP\{user}`, "alice")
	if err != nil || got != `CORP\alice` {
		t.Errorf("down-level: %q, %v", got, err)
	}
	for _, user := range []string{"a@other.example.com", `OTHER\a`, "a b", "a\x00", "a\n", "*", "a,b", "a=b", ""} {
		if got, err := expandDN("{user}@corp.example.com", user); !errors.Is(err, errBadName) {
			t.Errorf("UPN with %q: %q, %v; want refused", user, got, err)
		}
	}
}

func TestExpandFilter(t *testing.T) {
	const tmpl = "(&(objectClass=person)(uid={user}))"
	for _, tc := range []struct{ user, want string }{
		{"alice", "(&(objectClass=person)(uid=alice))"},
		{"*", `(&(objectClass=person)(uid=\2a))`},
		{"al*", `(&(objectClass=person)(uid=al\2a))`},
		{")(uid=*", `(&(objectClass=person)(uid=\29\28uid=\2a))`},
		{"*)(|(uid=*", `(&(objectClass=person)(uid=\2a\29\28|\28uid=\2a))`},
		{`\`, `(&(objectClass=person)(uid=\5c))`},
		{`\2a`, `(&(objectClass=person)(uid=\5c2a))`},
		{"al\x00ice", `(&(objectClass=person)(uid=al\00ice))`},
		{"jürgen", `(&(objectClass=person)(uid=j\c3\bcrgen))`},
		{"{dn}", "(&(objectClass=person)(uid={dn}))"}, // single pass: not expanded again
	} {
		got := expandFilter(tmpl, tc.user, "cn=x")
		if got != tc.want {
			t.Errorf("expandFilter(%q) = %q, want %q", tc.user, got, tc.want)
		}
		// The result is one valid filter with exactly the template's
		// structure: an AND of two equality matches.
		f, err := goldap.CompileFilter(got)
		if err != nil {
			t.Errorf("expandFilter(%q) = %q does not compile: %v", tc.user, got, err)
			continue
		}
		if len(f.Children) != 2 || f.Children[1].Tag != goldap.FilterEqualityMatch {
			t.Errorf("expandFilter(%q) = %q changed the filter's structure", tc.user, got)
		}
	}
	got := expandFilter("(&(cn=mppd)(member={dn})(x={user}))", "a*", "uid=a\\2a(x),dc=t")
	if want := `(&(cn=mppd)(member=uid=a\5c2a\28x\29,dc=t)(x=a\2a))`; got != want {
		t.Errorf("group filter = %q, want %q", got, want)
	}
}

// valid is a configuration that passes Validate; the table changes one
// thing at a time.
func valid() config.LDAP {
	c := config.DefaultLDAP()
	c.URIs = []string{"ldap://ldap.example.com", "ldaps://ldap2.example.com:636"}
	c.SearchBase = "dc=example,dc=com"
	c.SearchFilter = "(&(objectClass=person)(uid={user}))"
	return c
}

func TestBindErrorMapping(t *testing.T) {
	ldapErr := func(code uint16, msg string) error { return goldap.NewError(code, errors.New(msg)) }
	for _, tc := range []struct {
		err    error
		bad    bool
		reason string
	}{
		{ldapErr(goldap.LDAPResultInvalidCredentials, ""), true, "bad-password"},
		{ldapErr(goldap.LDAPResultInvalidCredentials, "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563"), true, "bad-password"},
		{ldapErr(goldap.LDAPResultInvalidCredentials, "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 525, v4563"), true, "unknown-user"},
		{ldapErr(goldap.LDAPResultInvalidCredentials, "AcceptSecurityContext error, data 775, v4563"), true, "locked"},
		{ldapErr(goldap.LDAPResultInvalidCredentials, "AcceptSecurityContext error, data 533, v4563"), true, "disabled"},
		{ldapErr(goldap.LDAPResultInvalidCredentials, "AcceptSecurityContext error, data 532, v4563"), true, "password-expired"},
		{ldapErr(goldap.LDAPResultInvalidCredentials, "AcceptSecurityContext error, data 701, v4563"), true, "account-expired"},
		{ldapErr(goldap.LDAPResultInvalidCredentials, "AcceptSecurityContext error, data 773, v4563"), true, "password-change-required"},
		{ldapErr(goldap.LDAPResultInvalidCredentials, "AcceptSecurityContext error, data 530, v4563"), true, "not-permitted-now"},
		{ldapErr(goldap.LDAPResultConstraintViolation, "account locked"), true, "locked"},
		{ldapErr(goldap.LDAPResultUnwillingToPerform, "unauthenticated bind (DN with no password) disallowed"), true, "refused"},
		{ldapErr(goldap.ErrorEmptyPassword, "empty"), true, "empty-password"},
		{ldapErr(goldap.LDAPResultBusy, ""), false, "busy"},
		{ldapErr(goldap.LDAPResultUnavailable, ""), false, "unavailable"},
		{ldapErr(goldap.LDAPResultAdminLimitExceeded, ""), false, "busy"},
		{ldapErr(goldap.LDAPResultTimeLimitExceeded, ""), false, "timeout"},
		{ldapErr(goldap.ErrorNetwork, "ldap: connection closed"), false, "connect"},
		{ldapErr(goldap.ErrorNetwork, "ldap: connection timed out"), false, "timeout"},
		{ldapErr(goldap.LDAPResultOperationsError, ""), false, "bind"},
		{ldapErr(goldap.LDAPResultOther, ""), false, "bind"},
		{errors.New("unable to read LDAP response packet: EOF"), false, "connect"},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), false, "timeout"},
	} {
		err := bindError(tc.err, "bad-password")
		if authn.IsBadCredentials(err) != tc.bad || authn.Reason(err) != tc.reason {
			t.Errorf("bindError(%v) = %v (bad=%v reason=%q), want bad=%v reason=%q",
				tc.err, err, authn.IsBadCredentials(err), authn.Reason(err), tc.bad, tc.reason)
		}
	}
	// In a direct bind, AD's 52e (like a plain invalidCredentials) does
	// not say whether the name or the password was wrong.
	for _, msg := range []string{"", "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563"} {
		if r := authn.Reason(bindError(ldapErr(goldap.LDAPResultInvalidCredentials, msg), "invalid-credentials")); r != "invalid-credentials" {
			t.Errorf("direct bind, %q: reason %q, want invalid-credentials", msg, r)
		}
	}
	if r := unavailableReason(fmt.Errorf("x: %w", os.ErrDeadlineExceeded), "search"); r != "timeout" {
		t.Errorf("deadline: %q", r)
	}
	if brokenConn(authn.Rejected("bad-password", goldap.NewError(49, nil))) {
		t.Error("a bind refused with 49 marks the connection broken")
	}
	if !brokenConn(authn.Unavailable("connect", goldap.NewError(goldap.ErrorNetwork, nil))) {
		t.Error("a network error does not mark the connection broken")
	}
	// go-ldap's own words for a write to a connection the server reset
	// and for one it closed: plain errors, not LDAP results.
	for _, e := range []error{
		errors.New("unable to send request: write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe"),
		errors.New("unable to read LDAP response packet: EOF"),
		fmt.Errorf("read: %w", os.ErrDeadlineExceeded),
	} {
		if err := bindError(e, "bad-password"); !brokenConn(err) {
			t.Errorf("bindError(%v) = %v does not mark the connection broken", e, err)
		}
	}
	if brokenConn(authn.Unavailable("unreadable-entry", errors.New("ldap: cannot read the entry"))) {
		t.Error("an entry the directory would not show marks the connection broken")
	}
}

func TestAddressesAndAccount(t *testing.T) {
	for v, want := range map[string]string{
		"alice@example.com":       "alice@example.com",
		" alice@example.com ":     "alice@example.com",
		"SMTP:Alice@Example.com":  "Alice@example.com",
		"smtp:alias@example.com":  "alias@example.com",
		"X500:/o=Corp/cn=alice":   "",
		"sip:alice@example.com":   "",
		"alice":                   "",
		"alice@":                  "",
		"a b@example.com":         "",
		"<alice@example.com>":     "",
		"alice@example.com\nBcc:": "",
		"a@b@example.com":         "",
	} {
		got, ok := mailAddress(v)
		if got != want || ok != (want != "") {
			t.Errorf("mailAddress(%q) = %q, %v; want %q", v, got, ok, want)
		}
	}
	if got := pickAccount([]string{"alice.smith", "asmith"}, "ASMITH"); got != "asmith" {
		t.Errorf("pickAccount chose %q", got)
	}
	if got := pickAccount([]string{"-root", "x/y", "alice"}, "a"); got != "alice" {
		t.Errorf("pickAccount chose %q", got)
	}
	if got := pickAccount(nil, "alice"); got != "" {
		t.Errorf("pickAccount chose %q", got)
	}
}

func TestIdentity(t *testing.T) {
	c := valid()
	c.AddressAttributes = []string{"mail", "proxyAddresses"}
	b, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &entry{dn: "uid=alice,dc=x", attrs: map[string][]string{
		"mail":           {"alice@example.com"},
		"proxyaddresses": {"SMTP:alice@example.com", "smtp:a@example.com", "X500:/o=x"},
		"uid":            {"alice"},
	}}
	id, err := b.identity(authn.Request{User: "Alice"}, e)
	if err != nil || id.Login != "alice" || id.Account != "alice" || strings.Join(id.Addresses, " ") != "alice@example.com a@example.com" {
		t.Errorf("identity = %+v, %v", id, err)
	}
	_, err = b.identity(authn.Request{User: "bob"}, &entry{dn: "uid=bob,dc=x", attrs: map[string][]string{"uid": {"bob"}}})
	if !authn.IsBadCredentials(err) || authn.Reason(err) != "no-address" {
		t.Errorf("no address: %v", err)
	}
}

// stalledServer accepts connections on loopback, counts them and never
// answers: a stalled directory.
func stalledServer(t *testing.T) *loopbackServer {
	t.Helper()
	return listenLoopback(t, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
}

func stalledConfig(l net.Listener) config.LDAP {
	c := config.DefaultLDAP()
	c.URIs = []string{"ldap://" + l.Addr().String()}
	c.UserDN = "uid={user},ou=people,dc=example,dc=com"
	c.DialTimeout = config.Duration(300 * time.Millisecond)
	c.RequestTimeout = config.Duration(300 * time.Millisecond)
	return c
}

// An empty password is refused before any I/O: the server sees no
// connection at all.
func TestEmptyPasswordNoIO(t *testing.T) {
	l := stalledServer(t)
	b, err := New(stalledConfig(l), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Authenticate(context.Background(), authn.Request{User: "alice", Password: ""})
	if !authn.IsBadCredentials(err) || authn.Reason(err) != "empty-password" {
		t.Fatalf("empty password: %v", err)
	}
	if sd, bd, _ := b.PoolStats(); sd+bd != 0 {
		t.Fatalf("%d connections dialled for an empty password", sd+bd)
	}
	time.Sleep(50 * time.Millisecond)
	if n := l.accepts.Load(); n != 0 {
		t.Fatalf("%d connections for an empty password", n)
	}
}

// A server that accepts and then says nothing costs a login the timeouts,
// not forever, and the answer is "unavailable" (451), never 530.
func TestStalledServerTimesOut(t *testing.T) {
	l := stalledServer(t)
	for name, change := range map[string]func(*config.LDAP){
		"starttls":  func(*config.LDAP) {},                               // stalls in the dial phase
		"bind":      func(c *config.LDAP) { c.InsecurePlaintext = true }, // stalls on the bind request
		"ldaps":     func(c *config.LDAP) { c.URIs[0] = "ldaps://" + l.Addr().String() },
		"ctx-first": func(c *config.LDAP) { c.InsecurePlaintext, c.RequestTimeout = true, config.Duration(time.Minute) },
	} {
		t.Run(name, func(t *testing.T) {
			c := stalledConfig(l)
			change(&c)
			b, err := New(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			// The context is far longer than the timeouts under test
			// (300 ms), and the bound below far shorter than the context,
			// so a loaded machine cannot make this fail but a missing
			// timeout does.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if name == "ctx-first" {
				cancel()
				ctx, cancel = context.WithTimeout(context.Background(), 400*time.Millisecond)
			}
			defer cancel()
			start := time.Now()
			_, err = b.Authenticate(ctx, authn.Request{User: "alice", Password: "pw"})
			took := time.Since(start)
			if err == nil || authn.IsBadCredentials(err) || authn.Reason(err) != "timeout" {
				t.Fatalf("stalled server: %v (reason %q), want unavailable/timeout", err, authn.Reason(err))
			}
			if took > 10*time.Second {
				t.Fatalf("stalled server took %v", took)
			}
		})
	}
}

func TestNewReadsFiles(t *testing.T) {
	dir := t.TempDir()
	c := valid()
	c.ServiceDN, c.ServicePasswordFile = "cn=svc,dc=example,dc=com", filepath.Join(dir, "missing")
	if _, err := New(c, nil); err == nil || !strings.Contains(err.Error(), "ldap: service_password_file") {
		t.Errorf("missing password file: %v", err)
	}
	os.WriteFile(c.ServicePasswordFile, []byte("\nsecond line\n"), 0o600)
	if _, err := New(c, nil); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty service password: %v", err)
	}
	os.WriteFile(c.ServicePasswordFile, []byte("s3cret\r\n"), 0o600)
	b, err := New(c, nil)
	if err != nil || b.svc.pw != "s3cret" {
		t.Fatalf("service password %v", err)
	}
	if s := b.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "mode=search-bind") || !strings.Contains(s, "tls=on") {
		t.Errorf("String() = %q", s)
	}
	notPEM := c.ServicePasswordFile
	c = valid()
	c.CAFile = notPEM
	if _, err := New(c, nil); err == nil || !strings.Contains(err.Error(), "ldap: ca_file") {
		t.Errorf("bad CA file: %v", err)
	}
	c = valid()
	c.InsecurePlaintext = true
	if b, err := New(c, nil); err != nil || !strings.Contains(b.String(), "INSECURE-PLAINTEXT") {
		t.Errorf("insecure String: %v", err)
	}
	// A certificate made the way Samba makes its own (negative serial
	// number): Go refuses it, and the error says why.
	c = valid()
	c.CAFile = "testdata/negative-serial.pem"
	if _, err := New(c, nil); err == nil || !strings.Contains(err.Error(), "certificate 1: x509: negative serial number") {
		t.Errorf("negative serial: %v", err)
	}
}

// The service password file is read again when it changes; a password the
// directory refused waits for its retry time, a new one is tried at once.
func TestServicePasswordBackoff(t *testing.T) {
	file := filepath.Join(t.TempDir(), "svc")
	os.WriteFile(file, []byte("wrong\n"), 0o600)
	var s serviceBind
	if err := s.load(file); err != nil {
		t.Fatal(err)
	}
	pw, err := s.current()
	if err != nil || pw != "wrong" {
		t.Fatalf("current: %q %v", pw, err)
	}
	if wait := s.refusedNow(pw); wait != serviceRetry[0] {
		t.Fatalf("first wait %v", wait)
	}
	if _, err := s.current(); authn.Reason(err) != "service-credentials" {
		t.Fatalf("during the back-off: %v", err)
	}
	s.retryAt = time.Now() // as if the wait had passed
	if pw, err := s.current(); err != nil || pw != "wrong" {
		t.Fatalf("after the wait: %q %v", pw, err)
	}
	if wait := s.refusedNow(pw); wait != serviceRetry[1] {
		t.Fatalf("second wait %v", wait)
	}
	if wait := s.refusedNow(pw); wait != serviceRetry[len(serviceRetry)-1] {
		t.Fatalf("third wait %v", wait)
	}
	os.WriteFile(file, []byte("right-and-longer\n"), 0o600)
	if pw, err := s.current(); err != nil || pw != "right-and-longer" {
		t.Fatalf("after the file changed: %q %v", pw, err)
	}
	s.accepted()
	os.WriteFile(file, []byte("\n"), 0o600) // emptied by mistake: keep the old one
	if pw, err := s.current(); err != nil || pw != "right-and-longer" {
		t.Fatalf("after the file was emptied: %q %v", pw, err)
	}
}
