package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/metrics"
)

// Backoff after a failed Accept. EMFILE/ENFILE (out of file descriptors)
// and their kin clear only when other connections close, so the loop waits
// instead of spinning, doubling the wait up to a second.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// daemon accepts connections on its listeners and runs a session for each,
// within the caps on concurrent sessions, and shuts down gracefully.
type daemon struct {
	// serve runs one session to its end and closes conn
	// (protocol.Server.Serve).
	serve func(ctx context.Context, conn net.Conn)
	// refuse answers 451 and closes conn (protocol.Refuse).
	refuse func(conn net.Conn, why string)
	log    *slog.Logger
	// maxSessions caps sessions in total; maxPerClient caps them per
	// client IP address and maxPerNetwork (0: no cap) per network of
	// ipv4Prefix or ipv6Prefix bits, except for trusted addresses.
	maxSessions   int
	maxPerClient  int
	maxPerNetwork int
	ipv4Prefix    int
	ipv6Prefix    int
	trusted       func(netip.Addr) bool
	// tlsConfig is the TLS configuration of mpps listeners (nil when
	// there are none): the daemon accepts raw TCP on them and does the
	// handshake off the accept goroutine.
	tlsConfig func() *tls.Config
	// proxyFrom, when set, reports whether a peer is a load balancer
	// whose connections start with a PROXY protocol header
	// (proxy_protocol_from; proxy.go).
	proxyFrom func(netip.Addr) bool
	// admit, when set, reports whether a client may start a session at
	// all: false while the throttle blocks its address or network
	// (internal/throttle, Throttle.Admit).
	admit func(netip.Addr) bool
	// drainTimeout is how long shutdown waits for sessions to end by
	// themselves before closing their connections.
	drainTimeout time.Duration

	// notify sends a state to systemd (sd_notify); nil outside systemd.
	notify func(state string) error
	// watchdog is WatchdogSec= (WATCHDOG_USEC); 0 for none.
	watchdog time.Duration
	// exitOnIdle, when not zero, ends run after that long without a
	// session (socket-activated mode only).
	exitOnIdle time.Duration
	// metrics counts refusals; nil when metrics are off.
	metrics *metrics.Metrics

	mu         sync.Mutex
	sessions   map[*sessionConn]struct{}
	perIP      map[netip.Addr]int
	perNet     map[netip.Prefix]int
	refusing   chan struct{}  // one per refusal under way off the accept goroutine
	lastActive time.Time      // when the last session ended, or run began
	wg         sync.WaitGroup // one per running session
	sleep      func(ctx context.Context, d time.Duration)
}

// run serves on listeners until ctx is done (a signal), then shuts down:
// it stops accepting, lets sessions see ctx's cancellation (the engine
// closes idle ones with 451 and lets a message in progress finish), waits
// up to drainTimeout, stops the sessions still waiting on their clients
// (drain), and waits for every session goroutine. stopSignals is called once shutdown starts, so
// that a second signal terminates the process at once.
//
// Under systemd it sends READY=1 once every accept loop runs, STATUS= with
// the session count, WATCHDOG=1 while it runs (drain included), and
// STOPPING=1 when shutdown starts. With exitOnIdle it also ends by itself
// after that long without a session: it stops accepting (systemd keeps
// the sockets and queues new connections for the next mppd), lets any
// session accepted meanwhile finish undisturbed, and returns nil.
//
// It returns nil after a shutdown, or the error of a listener that failed
// for good (it then shuts down the same way).
func (d *daemon) run(ctx context.Context, stopSignals func(), listeners []net.Listener) error {
	d.mu.Lock() // count() may already be asked (tests, the supervisor)
	d.sessions = map[*sessionConn]struct{}{}
	d.perIP = map[netip.Addr]int{}
	d.perNet = map[netip.Prefix]int{}
	d.refusing = make(chan struct{}, refusalWorkers)
	d.lastActive = time.Now()
	d.mu.Unlock()
	if d.sleep == nil {
		d.sleep = sleepCtx
	}

	// acceptCtx ends with ctx, when a listener fails, or when idle;
	// sessionCtx is cancelled after, and its cancellation is the shutdown
	// signal the engine acts on.
	acceptCtx, cancelAccept := context.WithCancel(ctx)
	defer cancelAccept()
	sessionCtx, cancelSessions := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSessions()

	errs := make(chan error, len(listeners))
	var loops sync.WaitGroup
	for _, l := range listeners {
		d.log.Info("listening", "addr", l.Addr().String(), "role", roleOf(l))
		loops.Add(1)
		go func() {
			defer loops.Done()
			if err := d.acceptLoop(acceptCtx, sessionCtx, l); err != nil {
				errs <- err
				cancelAccept()
			}
		}()
	}
	d.sendNotify("READY=1\n" + d.statusText("serving", 0))

	var idle atomic.Bool
	var draining atomic.Bool
	superviseCtx, stopSupervise := context.WithCancel(context.WithoutCancel(ctx))
	supervised := make(chan struct{})
	go func() {
		defer close(supervised)
		d.supervise(superviseCtx, draining.Load, func() {
			idle.Store(true)
			cancelAccept()
		})
	}()
	defer func() {
		stopSupervise()
		<-supervised
		// systemd shows the last STATUS= on the stopped unit too
		// ("shutting down: 1 session"): clear it, last.
		d.sendNotify("STATUS=")
	}()

	<-acceptCtx.Done()
	draining.Store(true)
	d.sendNotify("STOPPING=1\n" + d.statusText("shutting down", d.count()))
	var failure error
	select {
	case failure = <-errs:
	default:
	}
	// Stop accepting: closing a listener makes its Accept return. Under
	// socket activation this closes mppd's copy only; systemd keeps the
	// socket and the connections queued on it.
	for _, l := range listeners {
		l.Close()
	}
	loops.Wait()
	if idle.Load() && failure == nil {
		d.waitIdle(ctx)
	}
	if stopSignals != nil {
		stopSignals()
	}
	cancelSessions()
	d.drain()
	return failure
}

// waitIdle waits, after an exit on idle, for the sessions accepted just
// before the listeners closed to end by themselves, or for a signal (ctx),
// after which the ordinary drain applies.
func (d *daemon) waitIdle(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// drain waits up to drainTimeout for the sessions to end, then cuts the
// ones that are left (sessionConn.cut) and waits for their goroutines. A
// cut session still waiting on its delivery is not disturbed: the engine
// never cancels a delivery under way, and its reply must reach the client
// (a message queued by sendmail but never acknowledged would be sent again
// by the client). That wait is bounded by the delivery backend's own
// timeout, which TimeoutStopSec= in mppd.service allows for.
func (d *daemon) drain() {
	n := d.count()
	d.log.Info("shutting down", logkey.Event, logkey.EventShutdown, "sessions", n, "drain_timeout", d.drainTimeout)
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(d.drainTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	d.mu.Lock()
	left := len(d.sessions)
	for c := range d.sessions {
		c.cut()
	}
	d.mu.Unlock()
	d.log.Warn("drain timeout, stopped reading from the remaining sessions", "sessions", left)
	<-done
}

func (d *daemon) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sessions)
}

// acceptLoop accepts on l until acceptCtx is done. A failed Accept is
// retried after a growing pause, whatever the error (EMFILE, ENFILE,
// ENOBUFS, ECONNABORTED...), so the loop neither spins nor gives up; only a
// listener closed under it ends the loop with an error.
func (d *daemon) acceptLoop(acceptCtx, sessionCtx context.Context, l net.Listener) error {
	backoff := time.Duration(0)
	for {
		conn, err := l.Accept()
		if err != nil {
			if acceptCtx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			if backoff == 0 {
				backoff = minBackoff
			} else {
				backoff = min(2*backoff, maxBackoff)
			}
			d.log.Warn("accept failed, pausing", "addr", l.Addr().String(), logkey.Err, err, "pause", backoff)
			d.sleep(acceptCtx, backoff)
			continue
		}
		backoff = 0
		d.metrics.Connection(roleOf(l))
		d.start(sessionCtx, conn, roleOf(l) == roleMPPS)
	}
}

// refusalWorkers bounds the refusals answered at once off the accept
// goroutine (mpps: each needs a TLS handshake); beyond it a refused
// connection is closed without a reply. refusalTimeout bounds each.
const (
	refusalWorkers = 16
	refusalTimeout = 5 * time.Second
)

// start runs a session for conn, or refuses it when a cap is reached or
// the throttle blocks its client. It runs in the accept goroutine and
// never waits on the client: a refusal on a plain connection is one write
// to a fresh socket, whose send buffer takes it at once; a refusal on an
// mpps connection needs a handshake, done by refuseConn in a goroutine of
// its own. The TLS handshake of a session is done by the session's
// goroutine (sessionFunc).
func (d *daemon) start(ctx context.Context, raw net.Conn, useTLS bool) {
	ip := remoteIP(raw)
	if d.proxyFrom != nil && ip.IsValid() && d.proxyFrom(ip) {
		d.startProxied(ctx, raw, ip, useTLS)
		return
	}
	d.mu.Lock()
	reason := d.capReason(ip)
	if reason != "" {
		total, fromIP := len(d.sessions), d.perIP[ip]
		d.mu.Unlock()
		d.refuseConn(raw, ip, useTLS, reason, total, fromIP)
		return
	}
	sc := &sessionConn{Conn: raw}
	d.sessions[sc] = struct{}{}
	d.count1(ip)
	d.wg.Add(1)
	d.mu.Unlock()
	d.log.Debug("connection accepted", logkey.Client, ipString(ip))

	go func() {
		defer d.wg.Done()
		defer d.release(sc, ip)
		if d.refuseForgedProxy(raw, ip) {
			return
		}
		if useTLS {
			sc.setConn(tls.Server(raw, d.tlsConfig()))
		}
		d.serve(ctx, sc)
	}()
}

// capReason says why a new session from ip is refused ("" if it is not):
// the total cap, the per-client cap, the per-network cap (trusted
// networks are exempt from both), or the throttle. d.mu is held.
func (d *daemon) capReason(ip netip.Addr) string {
	if len(d.sessions) >= d.maxSessions {
		return "max-sessions"
	}
	return d.clientCapReason(ip)
}

// clientCapReason is capReason without the total cap. d.mu is held.
func (d *daemon) clientCapReason(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return ""
	case d.perIP[ip] >= d.maxPerClient && !d.trusted(ip):
		return "max-sessions-per-client"
	case d.maxPerNetwork > 0 && d.perNet[d.networkOf(ip)] >= d.maxPerNetwork && !d.trusted(ip):
		return "max-sessions-per-network"
	case d.admit != nil && !d.admit(ip):
		return "throttled"
	}
	return ""
}

// count1 counts a new session from ip against its address and network.
// d.mu is held.
func (d *daemon) count1(ip netip.Addr) {
	if !ip.IsValid() {
		return
	}
	d.perIP[ip]++
	d.perNet[d.networkOf(ip)]++
}

// networkOf is the network ip counts against for the per-network cap:
// the throttle's ipv4_prefix or ipv6_prefix, so that one host owning a
// whole IPv6 /64 counts once.
func (d *daemon) networkOf(ip netip.Addr) netip.Prefix {
	bits := d.ipv6Prefix
	if ip.Is4() {
		bits = d.ipv4Prefix
	}
	if bits <= 0 || bits > ip.BitLen() {
		bits = ip.BitLen()
	}
	p, _ := ip.Prefix(bits)
	return p
}

// refuseConn logs and counts a refused connection and answers it 451: at
// once on a plain connection, in a bounded goroutine on an mpps one.
func (d *daemon) refuseConn(conn net.Conn, ip netip.Addr, useTLS bool, reason string, total, fromIP int) {
	d.metrics.Throttled(reason)
	d.log.Warn("session refused", logkey.Client, ipString(ip), logkey.Reason, reason, "sessions", total, "client_sessions", fromIP)
	why := refusalText(reason)
	if !useTLS {
		// The deadline only guards against a pathological peer.
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		d.refuse(conn, why)
		return
	}
	started := d.goRefusal(func() {
		_ = conn.SetDeadline(time.Now().Add(refusalTimeout))
		d.refuse(tls.Server(conn, d.tlsConfig()), why)
	})
	if !started {
		d.log.Debug("too many refusals at once, closing without a reply", logkey.Client, ipString(ip))
		conn.Close()
	}
}

// goRefusal runs refusal in one of the bounded refusal goroutines (those
// of d.refusing) and reports true; when all of them are busy, it reports
// false at once and refusal does not run.
func (d *daemon) goRefusal(refusal func()) bool {
	select {
	case d.refusing <- struct{}{}:
	default:
		return false
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() { <-d.refusing }()
		refusal()
	}()
	return true
}

// refusalText is the 451 text for a refusal's reason.
func refusalText(reason string) string {
	if reason == "throttled" {
		return "Too many failed logins, try again later"
	}
	return "Too many sessions, try again later"
}

// release forgets a finished session from ip (the zero Addr: none).
func (d *daemon) release(conn *sessionConn, ip netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.sessions, conn)
	d.lastActive = time.Now()
	if !ip.IsValid() {
		return
	}
	if d.perIP[ip]--; d.perIP[ip] <= 0 {
		delete(d.perIP, ip)
	}
	n := d.networkOf(ip)
	if d.perNet[n]--; d.perNet[n] <= 0 {
		delete(d.perNet, n)
	}
}

// cutWriteGrace bounds each write to a client after the drain timeout:
// time enough for a reply to reach a client that reads, not to wait on one
// that does not.
const cutWriteGrace = 5 * time.Second

// sessionConn is a session's connection as the daemon hands it to the
// engine. It knows whether a read or write is under way, so that the end
// of the drain (cut) can stop a session waiting on its client without
// closing the connection of one waiting on its delivery, whose reply is
// still to be written.
type sessionConn struct {
	net.Conn

	mu      sync.Mutex
	reading int  // Reads under way
	writing int  // Writes under way
	isCut   bool // the drain timeout has passed

	// healthCheck marks a load balancer's own connection (PROXY
	// LOCAL), set before the session starts.
	healthCheck bool
}

// HealthCheck tells the engine to log the session's start and end at
// debug level: a balancer's health checks, every few seconds, would
// otherwise fill the log.
func (c *sessionConn) HealthCheck() bool { return c.healthCheck }

// Read fails at once with a timeout once the connection is cut; the engine
// treats a timeout during shutdown as the shutdown (451, then close).
func (c *sessionConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.isCut {
		c.mu.Unlock()
		return 0, os.ErrDeadlineExceeded
	}
	c.reading++
	c.mu.Unlock()
	defer c.done(&c.reading)
	return c.Conn.Read(p)
}

// Write works after the cut, within cutWriteGrace, so that a delivery's
// reply and the closing 451 still go out.
func (c *sessionConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.isCut {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(cutWriteGrace))
	}
	c.writing++
	c.mu.Unlock()
	defer c.done(&c.writing)
	return c.Conn.Write(p)
}

// done ends a Read or a Write that counted itself in n (c.reading or
// c.writing).
func (c *sessionConn) done(n *int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*n--
}

// cut ends the session's wait on its client: a read under way returns at
// once (its deadline is moved to now; the engine sets a read's deadline
// before the read, so this one stands), later reads fail, and a write under
// way, which at this point is waiting on a client that does not read, is
// ended the same way.
func (c *sessionConn) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.isCut = true
	now := time.Now()
	if c.reading > 0 {
		_ = c.Conn.SetReadDeadline(now)
	}
	if c.writing > 0 {
		_ = c.Conn.SetWriteDeadline(now)
	}
}

// NetConn is the connection the session reads from: a *tls.Conn on an
// mpps listener (sessionFunc does the handshake). Like Read and Write, it
// runs on the session's goroutine, the one that calls setConn, and so
// needs no lock.
func (c *sessionConn) NetConn() net.Conn { return c.Conn }

// setConn replaces the connection (by the same connection inside TLS)
// before the session starts reading and writing. It takes the lock for
// cut, which another goroutine may run at any time.
func (c *sessionConn) setConn(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Conn = conn
}

// remoteIP is the client's IP address, IPv4-mapped IPv6 unmapped so that
// one client counts once; the zero Addr when the connection has none.
func remoteIP(conn net.Conn) netip.Addr {
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

func ipString(ip netip.Addr) string {
	if !ip.IsValid() {
		return "-"
	}
	return ip.String()
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
