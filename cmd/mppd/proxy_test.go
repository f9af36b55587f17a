package main

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/proxyproto"
)

// proxyDaemon runs a daemon on 127.0.0.1 that takes PROXY headers from
// 127.0.0.1 only, caps sessions at 1 per client, and greets each session
// with the client address it sees and whether it is a health check.
func proxyDaemon(t *testing.T, maxSessions int) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := netip.MustParseAddr("127.0.0.1")
	d := &daemon{
		serve: func(ctx context.Context, conn net.Conn) {
			defer conn.Close()
			hc := conn.(*sessionConn).HealthCheck()
			conn.Write([]byte("220 " + conn.RemoteAddr().String() + " health=" + map[bool]string{true: "yes", false: "no"}[hc] + "\r\n"))
			<-ctx.Done()
		},
		refuse: func(conn net.Conn, why string) {
			conn.Write([]byte("451 " + why + "\r\n"))
			conn.Close()
		},
		log:          quietLog(),
		maxSessions:  maxSessions,
		maxPerClient: 1,
		trusted:      func(netip.Addr) bool { return false },
		proxyFrom:    func(ip netip.Addr) bool { return ip == lb },
		drainTimeout: time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.run(ctx, nil, []net.Listener{l}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return l.Addr().String()
}

// proxyGreeting connects from the loopback address from, writes first,
// and returns the first line the daemon sends ("" if it closes without
// one).
func proxyGreeting(t *testing.T, addr, from string, first []byte) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(first) > 0 {
		if _, err := c.Write(first); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n")
}

func hdr(version int, src string) []byte {
	h := proxyproto.Header{Local: true}
	if src != "" {
		h = proxyproto.Header{Source: netip.MustParseAddrPort(src), Destination: netip.MustParseAddrPort("192.0.2.1:218")}
		if h.Source.Addr().Is6() {
			h.Destination = netip.MustParseAddrPort("[2001:db8::1]:218")
		}
	}
	if version == 1 {
		return proxyproto.AppendV1(nil, h)
	}
	return proxyproto.AppendV2(nil, h, []byte{0x04, 0x00, 0x01, 0x00}) // a NOOP TLV
}

// TestProxyProtocol: from a balancer in proxy_protocol_from the header's
// client is the session's client and is held to the per-client cap; a
// LOCAL header is the balancer's own health check; a balancer's
// connection without a header, and a header from anyone else, are closed
// without a greeting.
func TestProxyProtocol(t *testing.T) {
	addr := proxyDaemon(t, 100)
	cases := []struct {
		name, from string
		first      []byte
		want       string
	}{
		{"v2", "127.0.0.1", hdr(2, "198.51.100.7:40000"), "220 198.51.100.7:40000 health=no"},
		{"v1", "127.0.0.1", hdr(1, "[2001:db8::7]:40001"), "220 [2001:db8::7]:40001 health=no"},
		{"same client over its cap", "127.0.0.1", hdr(2, "198.51.100.7:40002"), "451 Too many sessions, try again later"},
		{"another client", "127.0.0.1", hdr(2, "198.51.100.8:40000"), "220 198.51.100.8:40000 health=no"},
		{"local", "127.0.0.1", hdr(2, ""), "220 127.0.0.1:"},
		{"no header", "127.0.0.1", []byte("USER alice\r\n"), ""},
		{"header from elsewhere", "127.0.0.2", hdr(2, "198.51.100.9:40000"), ""},
		{"v1 header from elsewhere", "127.0.0.3", hdr(1, "198.51.100.9:40000"), ""},
		{"no header from elsewhere", "127.0.0.4", nil, "220 127.0.0.4:"},
	}
	for _, c := range cases {
		got := proxyGreeting(t, addr, c.from, c.first)
		if !strings.HasPrefix(got, c.want) || (c.want == "" && got != "") {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
		if c.name == "local" && !strings.HasSuffix(got, "health=yes") {
			t.Errorf("LOCAL header: %q is not a health check", got)
		}
	}
}

// TestProxyHeaderTimeout: a balancer's connection that sends nothing is
// closed without a greeting once proxyHeaderTimeout has passed.
func TestProxyHeaderTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits proxyHeaderTimeout")
	}
	addr := proxyDaemon(t, 100)
	start := time.Now()
	if got := proxyGreeting(t, addr, "127.0.0.1", nil); got != "" {
		t.Fatalf("got %q without a header", got)
	}
	if took := time.Since(start); took < proxyHeaderTimeout-time.Second {
		t.Errorf("closed after %v", took)
	}
}

// TestProxyTotalCap: a balancer's connection at the total cap gets 451
// after its header is read.
func TestProxyTotalCap(t *testing.T) {
	addr := proxyDaemon(t, 1)
	if got := proxyGreeting(t, addr, "127.0.0.1", hdr(2, "198.51.100.7:40000")); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("first session: %q", got)
	}
	if got := proxyGreeting(t, addr, "127.0.0.1", hdr(2, "198.51.100.8:40000")); got != "451 Too many sessions, try again later" {
		t.Fatalf("at the total cap: %q", got)
	}
}
