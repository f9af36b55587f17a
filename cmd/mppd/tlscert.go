package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/metrics"
)

// certStore holds the certificate the mpps listeners present, in the
// engine. The monitor reads the files (the engine may not) and sends the
// PEM text, at start and after each SIGHUP; the new pair replaces the old
// one atomically for the handshakes that follow, and one that does not
// load leaves the old one in place. Sessions already running keep the TLS
// state they negotiated.
type certStore struct {
	certFile, keyFile string
	log               *slog.Logger
	metrics           *metrics.Metrics
	cur               atomic.Pointer[tls.Certificate]
}

// load takes the pair from its PEM text. reload says it is a SIGHUP, for
// the log and the metrics; a failure then keeps the certificate in use.
// certFile and keyFile only name the files in messages.
func (s *certStore) load(certPEM, keyPEM []byte, reload bool) error {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err == nil && cert.Leaf == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	if err != nil {
		s.metrics.CertificateLoaded(time.Time{}, reload, false)
		err = fmt.Errorf("TLS certificate %s, key %s: %w", s.certFile, s.keyFile, err)
		if reload && s.cur.Load() != nil {
			s.log.Error("certificate reload failed, keeping the one in use", logkey.Event, logkey.EventTLSReload, "result", "failed", logkey.Err, err)
		}
		return err
	}
	s.cur.Store(&cert)
	s.metrics.CertificateLoaded(cert.Leaf.NotAfter, reload, true)
	result := "ok"
	if !reload {
		result = "loaded"
	}
	s.log.Info("TLS certificate", logkey.Event, logkey.EventTLSReload, "result", result, "cert_file", s.certFile,
		"subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	if now := time.Now(); now.After(cert.Leaf.NotAfter) || now.Before(cert.Leaf.NotBefore) {
		s.log.Warn("TLS certificate is not valid now", logkey.Event, logkey.EventTLSInvalidTime,
			"not_before", cert.Leaf.NotBefore.UTC().Format(time.RFC3339), "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func (s *certStore) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cur.Load()
	if c == nil {
		return nil, errors.New("no certificate loaded")
	}
	return c, nil
}

// config is the server side of every mpps connection. MPP is a
// line-oriented protocol with no ALPN name of its own.
func (s *certStore) config(minVersion uint16) *tls.Config {
	return &tls.Config{
		MinVersion:     minVersion,
		GetCertificate: s.getCertificate,
	}
}

// handshakeTimeout bounds the TLS handshake of an mpps connection; the
// session's own deadlines start with its greeting, after it.
const handshakeTimeout = 30 * time.Second

// handshake completes the TLS handshake of an mpps connection before the
// session starts, within handshakeTimeout (and the session idle timeout
// if shorter), so that a client that never sends a ClientHello holds a
// session slot no longer than that. A failed handshake is logged and the
// connection closed.
func handshake(ctx context.Context, tc *tls.Conn, idle time.Duration, log *slog.Logger, m *metrics.Metrics) bool {
	limit := min(handshakeTimeout, idle)
	_ = tc.SetDeadline(time.Now().Add(limit))
	hctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := tc.HandshakeContext(hctx)
	m.TLSHandshake(err == nil)
	if err != nil {
		log.Info("TLS handshake failed", logkey.Event, logkey.EventTLSFailed, logkey.Client, clientAddr(tc), logkey.Err, err)
		tc.Close()
		return false
	}
	_ = tc.SetDeadline(time.Time{})
	st := tc.ConnectionState()
	log.Debug("TLS established", logkey.Event, logkey.EventTLS, logkey.Client, clientAddr(tc),
		"version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	return true
}

func clientAddr(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return "-"
}
