package mppclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/mppclient/mpptest"
	"github.com/mppd/mppd/internal/testharness"
)

// tlsFake starts the scripted server behind TLS (mpps) with a fresh
// certificate for "mppd.test" and returns it with a pool trusting it.
func tlsFake(t *testing.T) (*mpptest.Server, *x509.CertPool) {
	t.Helper()
	cert, err := testharness.SelfSigned("mppd.test")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := mpptest.ListenTLS(nil, cert.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, cert.Pool()
}

// The whole session runs inside TLS, and the bytes the server received are
// the same as over plain TCP.
func TestPostOverTLS(t *testing.T) {
	srv, pool := tlsFake(t)
	opt := Options{Timeout: 5 * time.Second, TLS: &tls.Config{RootCAs: pool, ServerName: "mppd.test"}}
	c, err := Dial(context.Background(), srv.Addr(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := post(c, "alice", "pw", "To: bob\n\n.\nend"); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	ss := srv.Sessions()
	if len(ss) != 1 || string(ss[0].Texts[0]) != "To: bob\r\n\r\n..\r\nend\r\n" {
		t.Fatalf("sessions %+v", ss)
	}
}

// Without a ServerName, Dial checks the certificate against the host of
// the address (here the IP 127.0.0.1, which the certificate carries).
func TestTLSServerNameFromAddress(t *testing.T) {
	srv, pool := tlsFake(t)
	c, err := Dial(context.Background(), srv.Addr(), Options{Timeout: 5 * time.Second, TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	c.Quit()
}

// A certificate the client does not trust, or one for another name, ends
// the session before anything is sent, as a connection error of the
// handshake.
func TestTLSRefusedCertificates(t *testing.T) {
	srv, pool := tlsFake(t)
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		want string
	}{
		{"untrusted", &tls.Config{ServerName: "mppd.test"}, "certificate signed by unknown authority"},
		{"wrong name", &tls.Config{RootCAs: pool, ServerName: "other.test"}, "other.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Dial(context.Background(), srv.Addr(), Options{Timeout: 5 * time.Second, TLS: tc.cfg})
			var ce *ConnError
			if !errors.As(err, &ce) || ce.Step != "TLS handshake" {
				t.Fatalf("err = %v (%T), want a ConnError of the TLS handshake", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "connection to "+srv.Addr()+" failed during TLS handshake: ") {
				t.Errorf("err = %q", err)
			}
		})
	}
	srv.Close()
	for _, s := range srv.Sessions() {
		if len(s.Commands) != 0 {
			t.Errorf("commands sent over a refused TLS session: %q", s.Commands)
		}
	}
}
