package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCert writes a fresh self-signed ECDSA certificate for 127.0.0.1
// with common name cn, and its key, into dir as cert.pem and key.pem, and
// returns their paths and a pool that trusts it.
func testCert(t testing.TB, dir, cn string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Written to temporary names and renamed, so a reload never reads a
	// half-written file (as an ACME client does it).
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func writeAtomic(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// dialTLS connects to an mpps address, verifies the server against pool,
// reads the 220 greeting, and returns the client and the server's
// certificate.
func dialTLS(t testing.TB, addr string, pool *x509.CertPool) (*client, *x509.Certificate) {
	t.Helper()
	d := &net.Dialer{Timeout: ioTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, r: newReader(conn)}
	c.expect(220)
	return c, conn.ConnectionState().PeerCertificates[0]
}

// tlsConfigTOML is extraTOML for an mpps listener on addr with the pair.
func tlsConfigTOML(addr, certFile, keyFile string) string {
	return fmt.Sprintf("listen_tls = [%q]\n[tls]\ncert_file = %q\nkey_file = %q\n", addr, certFile, keyFile)
}

// TestTLSListenerAndReload: an mpps listener (listen_tls) serves MPP inside
// TLS with a test-generated certificate; TLS 1.1 is refused; SIGHUP loads
// a new certificate without dropping the session in progress; a broken
// certificate at the next SIGHUP is logged and the previous one stays in
// use.
func TestTLSListenerAndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool1 := testCert(t, dir, "first")
	extra, root := devBackends(t, alice)
	m := startMppd(t, tlsConfigTOML(anyPort, certFile, keyFile)+extra)
	tlsAddr := m.ListenAddr("mpps")

	c, cert := dialTLS(t, tlsAddr, pool1)
	if cert.Subject.CommonName != "first" {
		t.Fatalf("server certificate %q, want first", cert.Subject.CommonName)
	}
	c.cmd("USER "+alice.name, 250)
	c.cmd("PASS "+alice.password, 250)
	c.data("To: bob@example.test\nSubject: over TLS\n\nsecret\n", 250)
	waitDelivered(t, root, "bob@example.test", 1)

	// TLS 1.1 and below are refused.
	old, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", tlsAddr,
		&tls.Config{RootCAs: pool1, MaxVersion: tls.VersionTLS11})
	if err == nil {
		old.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}

	// A new pair, then SIGHUP: new connections get it, the open session
	// goes on.
	_, _, pool2 := testCert(t, dir, "second")
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m.waitLog("result=ok cert_file=")
	c.cmd("NOOP", 250)
	_, cert = dialTLS(t, tlsAddr, pool2)
	if cert.Subject.CommonName != "second" {
		t.Fatalf("after SIGHUP the server certificate is %q, want second", cert.Subject.CommonName)
	}

	// A broken certificate: logged, and the second pair stays.
	writeAtomic(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o644)
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m.waitLog("certificate reload failed, keeping the one in use")
	c.cmd("NOOP", 250)
	c2, cert := dialTLS(t, tlsAddr, pool2)
	if cert.Subject.CommonName != "second" {
		t.Fatalf("after a failed reload the server certificate is %q, want second", cert.Subject.CommonName)
	}
	c2.cmd("QUIT", 221)
	c.cmd("QUIT", 221)
	if strings.Contains(m.Log(), alice.password) {
		t.Error("the password is in the log")
	}
}

// TestTLSBadCertificateAtStart: a certificate that does not load stops
// mppd at start with status 2, naming the file.
func TestTLSBadCertificateAtStart(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("junk"), 0o644)
	extra, _ := devBackends(t)
	path := writeConfig(t, anyPort, tlsConfigTOML(anyPort, bad, bad)+extra)
	out, code := runMppd(t, "", "--config", path)
	if code != 2 || !strings.Contains(out, "cannot load the TLS certificate") || !strings.Contains(out, bad) {
		t.Errorf("status %d, output:\n%s", code, out)
	}
}

// TestMetricsEndpoint: after one post, /metrics counts a session, a
// successful login with the backend's name, a queued message and one
// delivery in the latency histogram.
func TestMetricsEndpoint(t *testing.T) {
	extra, _ := devBackends(t, alice)
	m := startMppd(t, fmt.Sprintf("[metrics]\nlisten = %q\n", anyPort)+extra)
	metricsAddr := m.ListenAddr("metrics")
	c := login(t, m, alice)
	c.data("To: bob@example.test\nSubject: counted\n\nhello\n", 250)
	c.cmd("QUIT", 221)
	if !c.closed() {
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
	deadline := time.Now().Add(ioTimeout)
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
	hc := &http.Client{Timeout: ioTimeout}
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
