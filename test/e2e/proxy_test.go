package e2e

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/proxyproto"
	"github.com/mppd/mppd/internal/testharness"
)

// TestProxyProtocolListeners: with proxy_protocol_from naming 127.0.0.1,
// a v1 header on the plain port and a v2 header in front of the TLS
// handshake on the mpps port each make the header's address the client:
// in the logs and in Received:. The TLS handshake starts right after the
// header, in the same segment, so this also shows the header is read to
// its last octet and no further.
func TestProxyProtocolListeners(t *testing.T) {
	m := startTLS(t, "localhost", "proxy_protocol_from = [\"127.0.0.1/32\"]\n")

	dst := netip.MustParseAddrPort("192.0.2.1:218")
	plain := testharness.Dial(t, m.Addr(), "127.0.0.1")
	plain.Send(string(proxyproto.AppendV1(nil, proxyproto.Header{Source: netip.MustParseAddrPort("198.51.100.7:40000"), Destination: dst})))
	plain.Expect(220)
	plain.Login(alice.name, alice.password)
	plain.Post("To: bob@example.test\nSubject: plain-proxied\n\nx\n", 250)

	raw, err := net.DialTimeout("tcp", m.tlsAddr, testharness.IOTimeout)
	if err != nil {
		t.Fatal(err)
	}
	hdr := proxyproto.AppendV2(nil, proxyproto.Header{Source: netip.MustParseAddrPort("[2001:db8::7]:40000"), Destination: netip.MustParseAddrPort("[2001:db8::1]:218")}, nil)
	if _, err := raw.Write(hdr); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{RootCAs: m.pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	_ = tc.SetDeadline(time.Now().Add(testharness.IOTimeout))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS after the PROXY header: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	c := testharness.NewClient(t, tc)
	c.Expect(220)
	c.Login(alice.name, alice.password)
	c.Post("To: bob@example.test\nSubject: tls-proxied\n\nx\n", 250)

	for _, msg := range waitDelivered(t, m.root, "bob@example.test", 2) {
		h, _ := headerBody(t, msg)
		want := "Received: from [198.51.100.7]"
		if strings.Contains(h, "tls-proxied") {
			want = "Received: from [IPv6:2001:db8::7]"
		}
		if !strings.Contains(h, want) {
			t.Errorf("want %q in:\n%s", want, h)
		}
	}
	m.WaitLog("client=198.51.100.7 ")
	m.WaitLog("client=2001:db8::7 ")
	logins := 0
	for _, l := range strings.Split(m.Log(), "\n") {
		if strings.Contains(l, "event=login") {
			logins++
			if strings.Contains(l, "client=127.0.0.1") {
				t.Errorf("a login logged with the balancer's address: %s", l)
			}
		}
	}
	if logins != 2 {
		t.Errorf("%d login lines, want 2", logins)
	}
}
