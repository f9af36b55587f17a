package ldap

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
)

// fakeDirectory is a tiny plaintext LDAP server for the pool's failure
// paths, which a real slapd cannot produce on demand: it accepts binds with
// password "pw", answers every search with one entry carrying a mail
// attribute, and lets a test decide that a connection dies when its next
// request arrives (a server that closed the connection while it was idle,
// the client learning of it only when it writes).
type fakeDirectory struct {
	l        *loopbackServer
	binds    atomic.Int64
	extended atomic.Int64

	mu       sync.Mutex
	conns    []net.Conn
	dropNext map[net.Conn]bool
	whoAmI   string   // the who-am-I answer; "" answers protocolError, as Samba does
	searches []string // "base filter" of each search, in order
}

func startFakeDirectory(t *testing.T) *fakeDirectory {
	t.Helper()
	f := &fakeDirectory{dropNext: map[net.Conn]bool{}}
	f.l = listenLoopback(t, func(c net.Conn) {
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.serve(c)
	})
	return f
}

// loopbackServer is a listener on loopback, closed when the test ends,
// that counts the connections it accepts.
type loopbackServer struct {
	net.Listener
	accepts atomic.Int64
}

// listenLoopback starts a loopbackServer that hands every connection to
// serve, in a goroutine of its own.
func listenLoopback(t *testing.T, serve func(net.Conn)) *loopbackServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &loopbackServer{Listener: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			go serve(c)
		}
	}()
	return s
}

// dropAll marks every open connection to die at its next request.
func (f *fakeDirectory) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		f.dropNext[c] = true
	}
}

func (f *fakeDirectory) serve(c net.Conn) {
	defer c.Close()
	for {
		req, err := ber.ReadPacket(c)
		if err != nil || len(req.Children) < 2 {
			return
		}
		f.mu.Lock()
		drop := f.dropNext[c]
		f.mu.Unlock()
		if drop {
			return // close without an answer
		}
		id := req.Children[0].Value
		op := req.Children[1]
		switch op.Tag {
		case goldap.ApplicationBindRequest:
			f.binds.Add(1)
			code := uint16(goldap.LDAPResultSuccess)
			if len(op.Children) < 3 || op.Children[2].Data.String() != "pw" {
				code = goldap.LDAPResultInvalidCredentials
			}
			c.Write(response(id, goldap.ApplicationBindResponse, code).Bytes())
		case goldap.ApplicationSearchRequest:
			base := op.Children[0].Data.String()
			filter, _ := goldap.DecompileFilter(op.Children[6])
			f.mu.Lock()
			f.searches = append(f.searches, base+" "+filter)
			f.mu.Unlock()
			entry := envelope(id)
			e := ber.Encode(ber.ClassApplication, ber.TypeConstructed, goldap.ApplicationSearchResultEntry, nil, "entry")
			e.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, "dn"))
			attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes")
			a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attribute")
			a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "mail", "type"))
			vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "values")
			vals.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "alice@example.com", "value"))
			a.AppendChild(vals)
			attrs.AppendChild(a)
			e.AppendChild(attrs)
			entry.AppendChild(e)
			c.Write(entry.Bytes())
			c.Write(response(id, goldap.ApplicationSearchResultDone, goldap.LDAPResultSuccess).Bytes())
		case goldap.ApplicationUnbindRequest:
			return
		case goldap.ApplicationExtendedRequest:
			f.extended.Add(1)
			f.mu.Lock()
			who := f.whoAmI
			f.mu.Unlock()
			if who == "" {
				c.Write(response(id, goldap.ApplicationExtendedResponse, goldap.LDAPResultProtocolError).Bytes())
				break
			}
			c.Write(response(id, goldap.ApplicationExtendedResponse, goldap.LDAPResultSuccess,
				ber.NewString(ber.ClassContext, ber.TypePrimitive, ber.TagEmbeddedPDV, who, "responseValue")).Bytes())
		default:
			c.Write(response(id, goldap.ApplicationExtendedResponse, goldap.LDAPResultProtocolError).Bytes())
		}
	}
}

func envelope(id any) *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP message")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "id"))
	return p
}

// response is an LDAP result; extra (an extended response's value) comes
// after the three fields every result has.
func response(id any, tag ber.Tag, code uint16, extra ...*ber.Packet) *ber.Packet {
	p := envelope(id)
	r := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "response")
	r.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, uint64(code), "code"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matched DN"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "message"))
	for _, x := range extra {
		r.AppendChild(x)
	}
	p.AppendChild(r)
	return p
}

// A pooled connection that turns out to be dead when the next login uses
// it is dialled again and the login goes on: the right password logs in,
// a wrong one is a wrong password, neither is "unavailable".
func TestPooledConnectionDeadOnUse(t *testing.T) {
	f := startFakeDirectory(t)
	c := config.DefaultLDAP()
	c.URIs = []string{"ldap://" + f.l.Addr().String()}
	c.InsecurePlaintext = true
	c.UserDN = "uid={user},dc=example,dc=com"
	c.PoolSize = 1
	b, err := New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	req := func(pw string) (authn.Identity, error) {
		return b.Authenticate(context.Background(), authn.Request{User: "alice", Password: pw})
	}
	if id, err := req("pw"); err != nil || id.Addresses[0] != "alice@example.com" {
		t.Fatalf("first login: %+v, %v", id, err)
	}
	if n := f.l.accepts.Load(); n != 1 {
		t.Fatalf("%d connections after one login", n)
	}
	for i, pw := range []string{"pw", "wrong", "pw"} {
		f.dropAll()
		id, err := req(pw)
		switch {
		case pw == "pw" && err != nil:
			t.Fatalf("login %d after the connection died: %v", i, err)
		case pw == "wrong" && (!authn.IsBadCredentials(err) || authn.Reason(err) != "invalid-credentials"):
			t.Fatalf("wrong password after the connection died: %+v, %v", id, err)
		}
	}
	if n := f.l.accepts.Load(); n != 4 {
		t.Errorf("%d connections, want 4 (one, then one per dead connection)", n)
	}
	_, _, reused := b.PoolStats()
	if reused != 3 {
		t.Errorf("%d checkouts reused a pooled connection, want 3", reused)
	}
}

// After a bind by UPN or down-level name the entry is found by who-am-I
// when the server answers it (Active Directory: "u:CORP\user"), else by
// the name: userPrincipalName, then sAMAccountName; and a server that does
// not answer who-am-I is not asked again.
func TestDirectBindFindsEntry(t *testing.T) {
	for _, tc := range []struct {
		tmpl, who string
		want      []string // the searches made, in order
		extended  int64    // who-am-I requests expected over two logins
	}{
		{"{user}@corp.example.com", `u:CORP\alice`, []string{"dc=example,dc=com (sAMAccountName=alice)"}, 2},
		{"{user}@corp.example.com", "dn:cn=Alice Liddell,dc=example,dc=com", []string{"cn=Alice Liddell,dc=example,dc=com (objectClass=*)"}, 2},
		{"{user}@corp.example.com", "", []string{"dc=example,dc=com (userPrincipalName=alice@corp.example.com)"}, 1},
		{`CORP\{user}`, "", []string{"dc=example,dc=com (sAMAccountName=alice)"}, 1},
	} {
		f := startFakeDirectory(t)
		f.whoAmI = tc.who
		c := config.DefaultLDAP()
		c.URIs = []string{"ldap://" + f.l.Addr().String()}
		c.InsecurePlaintext = true
		c.UserDN = tc.tmpl
		c.SearchBase = "dc=example,dc=com"
		c.AccountAttribute = ""
		c.PoolSize = 1
		b, err := New(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			id, err := b.Authenticate(context.Background(), authn.Request{User: "alice", Password: "pw"})
			if err != nil || id.Addresses[0] != "alice@example.com" {
				t.Fatalf("%s who=%q: %+v %v", tc.tmpl, tc.who, id, err)
			}
		}
		b.Close()
		f.mu.Lock()
		got := f.searches
		f.mu.Unlock()
		if len(got) != 2 || got[0] != tc.want[0] || got[1] != tc.want[0] {
			t.Errorf("%s who=%q: searches %q, want %q twice", tc.tmpl, tc.who, got, tc.want)
		}
		if n := f.extended.Load(); n != tc.extended {
			t.Errorf("%s who=%q: %d who-am-I requests, want %d", tc.tmpl, tc.who, n, tc.extended)
		}
	}
}
