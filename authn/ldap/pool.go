package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/logkey"
)

// conn is one LDAP connection. raw is the TCP connection under any TLS
// layer: deadlines set on it bound the handshake, and one set in the past
// aborts whatever the connection is doing when the caller's context ends.
type conn struct {
	lc        *goldap.Conn
	raw       net.Conn
	uri       string
	idleSince time.Time
}

func (c *conn) close() { c.lc.Close() }

// pool keeps a few connections of one kind for reuse, so a busy server does
// not see a TCP connection, a TLS handshake and a service bind per login.
//
// There are two pools and a connection never moves between them:
//
//   - the search pool: connections bound as the service account (or
//     anonymous when there is none) and used for searches only;
//   - the bind pool: connections used for user binds, and for reads done
//     as the user just bound when there is no service account.
//
// A connection of the bind pool is left authenticated as the last user who
// bound on it (or anonymous after a failed bind). That is harmless because
// every use of such a connection starts with a new Bind, which replaces the
// authorization state (RFC 4511 §4.2.1), and nothing is read on it after a
// failed bind. Reusing it for a search, on the other hand, would run that
// search with a user's rights, or a user's lack of them; hence two pools,
// rather than re-binding a connection as the service account after each
// user bind (a round trip per login for nothing).
//
// At most size connections of a pool are open at once: callers wait for a
// free slot (bounded by their context and the request timeout), idle
// connections are reused newest first, and one idle longer than the idle
// timeout, or closed by the server, is closed and replaced.
type pool struct {
	b       *Backend
	name    string
	service bool // bind as the service account after connecting
	slots   chan struct{}

	mu   sync.Mutex
	idle []*conn

	dialled atomic.Int64 // connections opened, for tests and the log
	reused  atomic.Int64 // checkouts served by an idle connection
}

func newPool(b *Backend, name string, service bool, size int) *pool {
	return &pool{b: b, name: name, service: service, slots: make(chan struct{}, size)}
}

// get returns a connection and whether it came from the idle list. fresh
// skips the idle list (used to retry after a stale pooled connection).
func (p *pool) get(ctx context.Context, fresh bool) (*conn, bool, error) {
	wait, cancel := context.WithTimeout(ctx, time.Duration(p.b.cfg.RequestTimeout))
	defer cancel()
	select {
	case p.slots <- struct{}{}:
	case <-wait.Done():
		if ctx.Err() != nil {
			return nil, false, authn.Unavailable("timeout", ctx.Err())
		}
		return nil, false, authn.Unavailable("busy", fmt.Errorf("ldap: all %d %s connections in use", cap(p.slots), p.name))
	}
	if !fresh {
		if c := p.popIdle(); c != nil {
			p.reused.Add(1)
			return c, true, nil
		}
	}
	c, err := p.b.dial(ctx, p.service)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	p.dialled.Add(1)
	return c, false, nil
}

// popIdle takes the most recently used idle connection that is still
// usable, closing the ones the server closed or that idled too long.
func (p *pool) popIdle() *conn {
	maxIdle := time.Duration(p.b.cfg.PoolIdleTimeout)
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if c.lc.IsClosing() || maxIdle > 0 && time.Since(c.idleSince) > maxIdle {
			c.close()
			continue
		}
		return c
	}
}

// put returns a connection to the pool, or closes it when it is not fit for
// reuse, and frees its slot.
func (p *pool) put(c *conn, keep bool) {
	if keep && !c.lc.IsClosing() && !p.b.closed.Load() {
		c.idleSince = time.Now()
		p.mu.Lock()
		p.idle = append(p.idle, c)
		p.mu.Unlock()
	} else {
		c.close()
	}
	<-p.slots
}

// closeIdle closes every idle connection.
func (p *pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// with runs fn on a connection of the pool. The request timeout is the
// configured one or what is left of ctx, whichever is shorter, and ctx
// ending aborts the connection at once. A pooled connection that turns out
// to be broken (the server closed it while it was idle) is discarded and fn
// runs once more on a freshly dialled one: a dead idle connection must
// never look like a wrong password or an outage.
func (p *pool) with(ctx context.Context, fn func(*conn) error) error {
	fresh := false
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx, fresh)
		if err != nil {
			return err
		}
		timeout := time.Duration(p.b.cfg.RequestTimeout)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
			timeout = max(time.Until(dl), time.Millisecond)
		}
		c.lc.SetTimeout(timeout)
		stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Unix(1, 0)) })
		err = fn(c)
		aborted := !stop()
		broken := aborted || c.lc.IsClosing() || brokenConn(err)
		p.put(c, !broken)
		if aborted {
			return authn.Unavailable("timeout", ctx.Err())
		}
		if broken && reused && attempt == 0 && !isTimeout(err) {
			p.b.log.Debug("ldap: pooled connection was closed, dialling again", "pool", p.name, "uri", c.uri, logkey.Err, err)
			fresh = true
			continue
		}
		return err
	}
}

// brokenConn reports whether err says the connection itself failed, as
// opposed to the server answering a request with a result code.
func brokenConn(err error) bool {
	if err == nil {
		return false
	}
	var le *goldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case goldap.LDAPResultBusy, goldap.LDAPResultUnavailable, goldap.LDAPResultOther,
			goldap.LDAPResultOperationsError, goldap.LDAPResultProtocolError:
			return true // the server may be going away; do not keep this one
		}
		return le.ResultCode >= goldap.ErrorNetwork
	}
	// Our own verdicts (bad credentials, an unreadable entry) are answers
	// from a working connection. An "unavailable" made from an error that
	// is not an LDAP result is not: go-ldap reports a failed write ("unable
	// to send request: ... broken pipe") and a connection the server closed
	// as plain errors, classified "connect" or "timeout" by
	// unavailableReason, and after a failed write the connection is not yet
	// marked closing.
	var bad *authn.BadCredentialsError
	if errors.As(err, &bad) {
		return false
	}
	var un *authn.UnavailableError
	if errors.As(err, &un) {
		return un.Reason == "connect" || un.Reason == "timeout"
	}
	return true
}

func isTimeout(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// go-ldap reports its request timeout, and a read that hit our
	// deadline, as a network error with only the text left.
	msg := err.Error()
	return strings.Contains(msg, "timed out") || strings.Contains(msg, "i/o timeout")
}

// dial connects to the first URI that answers, in the configured order.
func (b *Backend) dial(ctx context.Context, service bool) (*conn, error) {
	var pw string
	if service && b.cfg.ServiceDN != "" {
		var err error
		if pw, err = b.svc.current(); err != nil {
			return nil, err // refused before, and not changed since: logged then
		}
	}
	var last error
	for i, uri := range b.cfg.URIs {
		c, err := b.dialOne(ctx, uri, service, pw)
		if err == nil {
			if i > 0 {
				b.log.Info("ldap: using a fallback server", "uri", uri)
			}
			return c, nil
		}
		last = err
		if authn.Reason(err) == "service-credentials" {
			// Another server would refuse the same password, and
			// count it against the account too.
			break
		}
		b.log.Warn("ldap: cannot connect", "uri", uri, logkey.Reason, authn.Reason(err), logkey.Err, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, last
}

// serviceRetry are the waits before the service account's password is
// tried again after the directory refused it, the last one repeated: a
// second try a moment later (a password just changed on another DC), then
// one every 35 minutes, so that no more than two attempts ever fall in
// Active Directory's default 30-minute lockout observation window, and a
// wrong password in the file never locks the service account. A changed
// password file is read and tried at once.
var serviceRetry = []time.Duration{5 * time.Second, 35 * time.Minute}

// serviceBind holds the service account's password, read again from its
// file when the file changes, and the back-off after the directory refused
// it.
type serviceBind struct {
	mu       sync.Mutex
	file     string
	pw       string
	modTime  time.Time
	size     int64
	refused  string // the password the directory refused last ("" none)
	failures int
	retryAt  time.Time
}

// load reads the password file (at start).
func (s *serviceBind) load(file string) error {
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	pw, err := readSecret(file)
	if err != nil {
		return err
	}
	s.file, s.pw, s.modTime, s.size = file, pw, fi.ModTime(), fi.Size()
	return nil
}

// current returns the password to bind with: the file's, read again when
// it changed (an unreadable or empty file keeps the old one), or an error
// while a password the directory refused waits for its next try.
func (s *serviceBind) current() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fi, err := os.Stat(s.file); err == nil && (!fi.ModTime().Equal(s.modTime) || fi.Size() != s.size) {
		if pw, err := readSecret(s.file); err == nil {
			s.pw, s.modTime, s.size = pw, fi.ModTime(), fi.Size()
		}
	}
	if s.refused != "" && s.pw == s.refused && time.Now().Before(s.retryAt) {
		return "", authn.Unavailable("service-credentials", fmt.Errorf(
			"ldap: the directory refused the service account's password; next try at %s, or when %s changes",
			s.retryAt.Format(time.TimeOnly), s.file))
	}
	return s.pw, nil
}

// refusedNow records that the directory refused pw, and returns the wait
// before it is tried again.
func (s *serviceBind) refusedNow(pw string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pw != s.refused {
		s.refused, s.failures = pw, 0
	}
	wait := serviceRetry[min(s.failures, len(serviceRetry)-1)]
	s.failures++
	s.retryAt = time.Now().Add(wait)
	return wait
}

// accepted clears the back-off.
func (s *serviceBind) accepted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused, s.failures = "", 0
}

// dialOne makes one connection ready for use: TCP, TLS (ldaps:// or
// StartTLS), and the service bind for the search pool, all within the dial
// timeout. go-ldap's StartTLS handshake has no timeout of its own, hence
// the deadline on the raw connection.
func (b *Backend) dialOne(ctx context.Context, uri string, service bool, servicePW string) (*conn, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, authn.Unavailable("config", err)
	}
	ldaps := u.Scheme == "ldaps"
	host := u.Host
	if u.Port() == "" {
		port := "389"
		if ldaps {
			port = "636"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Duration(b.cfg.DialTimeout))
	defer cancel()
	deadline, _ := dctx.Deadline()

	var d net.Dialer
	raw, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		if isTimeout(err) {
			return nil, authn.Unavailable("timeout", fmt.Errorf("ldap: connecting to %s: %w", uri, err))
		}
		return nil, authn.Unavailable("connect", fmt.Errorf("ldap: connecting to %s: %w", uri, err))
	}
	raw.SetDeadline(deadline)
	tcfg := b.tlsConfig(u.Hostname())

	nc := raw
	if ldaps {
		tc := tls.Client(raw, tcfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			raw.Close()
			if isTimeout(err) {
				return nil, authn.Unavailable("timeout", fmt.Errorf("ldap: TLS with %s: %w", uri, err))
			}
			return nil, authn.Unavailable("tls", fmt.Errorf("ldap: TLS with %s: %w", uri, err))
		}
		nc = tc
	}
	lc := goldap.NewConn(nc, ldaps)
	lc.Start()
	lc.SetTimeout(time.Until(deadline))
	if !ldaps && !b.cfg.InsecurePlaintext {
		// RFC 4513 §3: StartTLS before any bind, so no password is ever
		// sent in clear.
		if err := lc.StartTLS(tcfg); err != nil {
			lc.Close()
			if isTimeout(err) {
				return nil, authn.Unavailable("timeout", fmt.Errorf("ldap: StartTLS with %s: %w", uri, err))
			}
			return nil, authn.Unavailable("tls", fmt.Errorf("ldap: StartTLS with %s: %w", uri, err))
		}
	}
	if service && b.cfg.ServiceDN != "" {
		if err := lc.Bind(b.cfg.ServiceDN, servicePW); err != nil {
			lc.Close()
			// A refused service bind is our configuration's fault, never
			// the user's: unavailable, not bad credentials. A wrong
			// password is not tried again for a while: each try counts
			// towards locking the service account.
			if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
				wait := b.svc.refusedNow(servicePW)
				b.log.Error("ldap: the directory refused the service account's password; fix service_password_file (read again when it changes)",
					logkey.Reason, "service-credentials", "uri", uri, "service_dn", b.cfg.ServiceDN, "retry_in", wait.String(), logkey.Err, err)
				return nil, authn.Unavailable("service-credentials", fmt.Errorf("ldap: binding as the service account at %s: %w", uri, err))
			}
			return nil, authn.Unavailable(unavailableReason(err, "service-bind"), fmt.Errorf("ldap: binding as the service account at %s: %w", uri, err))
		}
		b.svc.accepted()
	}
	raw.SetDeadline(time.Time{})
	return &conn{lc: lc, raw: raw, uri: uri}, nil
}

// tlsConfig is built once per connection: ServerName defaults to the host
// of the URI being dialled, so failover checks each server's own name.
func (b *Backend) tlsConfig(host string) *tls.Config {
	name := b.cfg.ServerName
	if name == "" {
		name = host
	}
	return &tls.Config{
		ServerName:   name,
		RootCAs:      b.roots,
		Certificates: b.clientCerts,
		MinVersion:   b.minTLS,
	}
}

// loadTLS reads the CA bundle and the client certificate once, at start.
func (b *Backend) loadTLS() error {
	var err error
	if b.minTLS, err = b.cfg.MinTLS(); err != nil {
		return err
	}
	if b.cfg.CAFile != "" {
		pem, err := os.ReadFile(b.cfg.CAFile)
		if err != nil {
			return fmt.Errorf("ldap: ca_file: %w", err)
		}
		if b.roots, err = parseCAs(b.cfg.CAFile, pem); err != nil {
			return fmt.Errorf("ldap: ca_file: %w", err)
		}
	}
	if b.cfg.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(b.cfg.ClientCert, b.cfg.ClientKey)
		if err != nil {
			return fmt.Errorf("ldap: client_cert: %w", err)
		}
		b.clientCerts = []tls.Certificate{cert}
	}
	return nil
}

// parseCAs reads every certificate of a PEM bundle. Unlike
// x509.CertPool.AppendCertsFromPEM, which skips what it cannot parse, it
// reports the first certificate Go refuses and why (Samba's self-made
// certificate, for one, has a negative serial number), rather than the
// misleading "no certificate in it".
func parseCAs(path string, data []byte) (*x509.CertPool, error) {
	roots := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		n++
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, n, err)
		}
		roots.AddCert(cert)
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return roots, nil
}
