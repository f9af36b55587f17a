package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testharness"
)

// TestTLSRefusalsDoNotStall: connections to the mpps port from a client
// at its per-client cap that never send a ClientHello do not hold up
// anyone else. The accept loop refuses them without waiting on the
// handshake, so another client's greeting arrives at once (it took ten
// seconds when the refusal's handshake ran in the accept loop, one
// second per silent connection); and a TLS client over the cap still gets
// its 451 inside TLS.
func TestTLSRefusalsDoNotStall(t *testing.T) {
	m := startTLS(t, "localhost", "max_sessions_per_client = 1\ntrusted_networks = []\n")

	dialTLS(t, m.tlsAddr, m.pool) // 127.0.0.1 is now at its cap
	for i := 0; i < 10; i++ {
		testharness.Dial(t, m.tlsAddr, "127.0.0.1") // says nothing
	}
	start := time.Now()
	other := tlsFrom(t, m.tlsAddr, "127.0.0.2", m.pool)
	other.Expect(220)
	took := time.Since(start)
	t.Logf("greeting of another client after ten silent refused connections: %v", took)
	// The regression was a ten-second stall; a second is far from both
	// it and from a normal greeting, even on a loaded machine.
	if took > time.Second {
		t.Errorf("greeting took %v", took)
	}

	over := tlsFrom(t, m.tlsAddr, "127.0.0.1", m.pool)
	over.Expect(451)
	m.WaitLogCount(0, "reason=max-sessions-per-client", 11)
}

// tlsFrom opens a TLS connection to addr from the loopback address from,
// trusting pool, without reading anything.
func tlsFrom(t *testing.T, addr, from string, pool *x509.CertPool) *testharness.Client {
	t.Helper()
	d := &net.Dialer{Timeout: testharness.IOTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: "localhost"}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s from %s: %v", addr, from, err)
	}
	return testharness.NewClient(t, conn)
}
