package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testharness"
)

// testCert writes a fresh self-signed certificate with common name cn
// and its key into dir as cert.pem and key.pem, and returns their paths
// and a pool that trusts it.
func testCert(t testing.TB, dir, cn string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c, certFile, keyFile := testharness.WriteCert(t, dir, cn)
	return certFile, keyFile, c.Pool()
}

// dialTLS connects to an mpps address, verifies the server against pool,
// reads the 220 greeting, and returns the client and the server's
// certificate.
func dialTLS(t testing.TB, addr string, pool *x509.CertPool) (*testharness.Client, *x509.Certificate) {
	t.Helper()
	d := &net.Dialer{Timeout: testharness.IOTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := testharness.NewClient(t, conn)
	c.Expect(220)
	return c, conn.ConnectionState().PeerCertificates[0]
}

// dialTLSCert is dialTLS for a server that must present the certificate
// whose common name is cn.
func dialTLSCert(t testing.TB, addr string, pool *x509.CertPool, cn string) *testharness.Client {
	t.Helper()
	c, cert := dialTLS(t, addr, pool)
	if cert.Subject.CommonName != cn {
		t.Fatalf("server certificate %q, want %q", cert.Subject.CommonName, cn)
	}
	return c
}

// tlsConfigTOML is extraTOML for an mpps listener on addr with the pair.
func tlsConfigTOML(addr, certFile, keyFile string) string {
	return fmt.Sprintf("listen_tls = [%q]\n[tls]\ncert_file = %q\nkey_file = %q\n", addr, certFile, keyFile)
}

// tlsDaemon is a running mppd with the development backends (alice) and,
// next to its plain listener, an mpps listener with a fresh certificate.
type tlsDaemon struct {
	*testharness.Daemon
	tlsAddr  string         // the mpps listener
	certFile string         // the certificate, in a directory of its own
	pool     *x509.CertPool // trusts it
	root     string         // the maildir root
}

// startTLS starts mppd with settings (lines of the top-level table)
// followed by the mpps listener, with a certificate for cn, and the
// development backends for alice.
func startTLS(t testing.TB, cn, settings string) tlsDaemon {
	t.Helper()
	certFile, keyFile, pool := testCert(t, t.TempDir(), cn)
	extra, root := devBackends(t, alice)
	m := testharness.Start(t, settings+tlsConfigTOML(testharness.AnyPort, certFile, keyFile)+extra)
	return tlsDaemon{Daemon: m, tlsAddr: m.ListenAddr("mpps"), certFile: certFile, pool: pool, root: root}
}

// TestTLSListenerAndReload: an mpps listener (listen_tls) serves MPP inside
// TLS with a test-generated certificate; TLS 1.1 is refused; SIGHUP loads
// a new certificate without dropping the session in progress; a broken
// certificate at the next SIGHUP is logged and the previous one stays in
// use.
func TestTLSListenerAndReload(t *testing.T) {
	m := startTLS(t, "first", "")

	c := dialTLSCert(t, m.tlsAddr, m.pool, "first")
	c.Login(alice.name, alice.password)
	c.Post("To: bob@example.test\nSubject: over TLS\n\nsecret\n", 250)
	waitDelivered(t, m.root, "bob@example.test", 1)

	// TLS 1.1 and below are refused.
	old, err := tls.DialWithDialer(&net.Dialer{Timeout: testharness.IOTimeout}, "tcp", m.tlsAddr,
		&tls.Config{RootCAs: m.pool, MaxVersion: tls.VersionTLS11})
	if err == nil {
		old.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}

	// A new pair, then SIGHUP: new connections get it, the open session
	// goes on.
	_, _, pool2 := testCert(t, filepath.Dir(m.certFile), "second")
	if err := m.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m.WaitLog("result=ok cert_file=")
	c.Cmd("NOOP", 250)
	dialTLSCert(t, m.tlsAddr, pool2, "second") // after SIGHUP

	// A broken certificate: logged, and the second pair stays.
	testharness.WriteAtomic(t, m.certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o644)
	if err := m.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m.WaitLog("certificate reload failed, keeping the one in use")
	c.Cmd("NOOP", 250)
	c2 := dialTLSCert(t, m.tlsAddr, pool2, "second") // the failed reload kept it
	c2.Cmd("QUIT", 221)
	c.Cmd("QUIT", 221)
	if strings.Contains(m.Log(), alice.password) {
		t.Error("the password is in the log")
	}
}

// TestTLSBadCertificateAtStart: a certificate that does not load stops
// mppd at start with status 78, naming the file.
func TestTLSBadCertificateAtStart(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("junk"), 0o644)
	extra, _ := devBackends(t)
	path := testharness.WriteConfig(t, tlsConfigTOML(testharness.AnyPort, bad, bad)+extra)
	out, code := testharness.Run(t, "", "--config", path)
	if code != 78 || !strings.Contains(out, "cannot load the TLS certificate") || !strings.Contains(out, bad) {
		t.Errorf("status %d, output:\n%s", code, out)
	}
}

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

// TestMetricsEndpoint: after one post, /metrics counts a session, a
// successful login with the backend's name, a queued message and one
// delivery in the latency histogram.
func TestMetricsEndpoint(t *testing.T) {
	extra, _ := devBackends(t, alice)
	m := testharness.Start(t, fmt.Sprintf("[metrics]\nlisten = %q\n", testharness.AnyPort)+extra)
	metricsAddr := m.ListenAddr("metrics")
	c := login(t, m, alice)
	c.Post("To: bob@example.test\nSubject: counted\n\nhello\n", 250)
	c.Cmd("QUIT", 221)
	if !c.Closed() {
		t.Fatal("still open after QUIT")
	}

	want := []string{
		"mppd_sessions_total 1\n",
		`mppd_logins_total{backend="passwdfile",result="ok"} 1`,
		`mppd_messages_total{result="queued"} 1`,
		`mppd_delivery_duration_seconds_count{result="ok"} 1`,
		`mppd_connections_total{role="mpp"} 1`,
	}
	// The session's end is counted just after the client sees the close.
	var body string
	deadline := time.Now().Add(testharness.IOTimeout)
	for {
		body = getMetrics(t, metricsAddr)
		if strings.Contains(body, "mppd_sessions 0\n") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, w := range append(want, "mppd_sessions 0\n") {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %q", w)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

func getMetrics(t testing.TB, addr string) string {
	t.Helper()
	hc := &http.Client{Timeout: testharness.IOTimeout}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	return string(b)
}
