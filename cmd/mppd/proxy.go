package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/proxyproto"
)

// proxyHeaderTimeout bounds the wait for a balancer's PROXY protocol
// header: a balancer sends it as soon as it has connected.
const proxyHeaderTimeout = 5 * time.Second

// proxiedConn is a connection from a load balancer, seen as the client's:
// RemoteAddr and LocalAddr are the addresses of the PROXY header, so the
// engine, the throttle, the logs and Received: name the real client.
type proxiedConn struct {
	net.Conn
	remote, local net.Addr
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }
func (c *proxiedConn) LocalAddr() net.Addr  { return c.local }

// startProxied runs a session for a connection from a load balancer in
// proxy_protocol_from (peer). Only the total cap applies before the
// header (refuseProxied); the header is read in the session's goroutine (within
// proxyHeaderTimeout), and the client it names is then held to the
// per-client and per-network caps and the throttle like any other.
func (d *daemon) startProxied(ctx context.Context, raw net.Conn, peer netip.Addr, useTLS bool) {
	d.mu.Lock()
	if len(d.sessions) >= d.maxSessions {
		total := len(d.sessions)
		d.mu.Unlock()
		d.refuseProxied(raw, peer, useTLS, total)
		return
	}
	sc := &sessionConn{Conn: raw}
	d.sessions[sc] = struct{}{}
	d.wg.Add(1)
	d.mu.Unlock()

	go func() {
		defer d.wg.Done()
		var counted netip.Addr // the client counted against the caps
		defer func() { d.release(sc, counted) }()

		conn, client, local, ok := d.readProxyHeader(raw, peer)
		if !ok {
			return
		}
		sc.healthCheck = local
		d.mu.Lock()
		reason := d.clientCapReason(client)
		if reason == "" {
			d.count1(client)
			counted = client
		}
		total, fromIP := len(d.sessions), d.perIP[client]
		d.mu.Unlock()
		if reason != "" {
			d.metrics.Throttled(reason)
			d.log.Warn("session refused", logkey.Client, ipString(client), logkey.Reason, reason, "sessions", total, "client_sessions", fromIP, "proxy", true)
			_ = conn.SetDeadline(time.Now().Add(refusalTimeout))
			if useTLS {
				conn = tls.Server(conn, d.tlsConfig())
			}
			d.refuse(conn, refusalText(reason))
			return
		}
		d.log.Debug("connection accepted", logkey.Client, ipString(client), "proxy", ipString(peer))
		if useTLS {
			conn = tls.Server(conn, d.tlsConfig())
		}
		sc.setConn(conn)
		d.serve(ctx, sc)
	}()
}

// refuseProxied answers 451 to a balancer's connection that arrives at
// the total cap: after its header (so that the client's address is
// logged, and TLS starts where the client expects it), in one of the
// bounded refusal goroutines; beyond them it is closed without a reply.
func (d *daemon) refuseProxied(raw net.Conn, peer netip.Addr, useTLS bool, total int) {
	d.metrics.Throttled("max-sessions")
	started := d.goRefusal(func() {
		conn, client, _, ok := d.readProxyHeader(raw, peer)
		if !ok {
			return
		}
		d.log.Warn("session refused", logkey.Client, ipString(client), logkey.Reason, "max-sessions", "sessions", total, "proxy", true)
		_ = conn.SetDeadline(time.Now().Add(refusalTimeout))
		if useTLS {
			conn = tls.Server(conn, d.tlsConfig())
		}
		d.refuse(conn, refusalText("max-sessions"))
	})
	if !started {
		d.log.Warn("session refused", logkey.Client, ipString(peer), logkey.Reason, "max-sessions", "sessions", total, "proxy", true)
		raw.Close()
	}
}

// readProxyHeader reads the PROXY header from a balancer's connection and
// returns the connection as the client's, and the client's address. A
// missing or invalid header closes the connection, without a greeting.
// A LOCAL header (local: a health check) keeps the balancer's own
// addresses.
func (d *daemon) readProxyHeader(raw net.Conn, peer netip.Addr) (conn net.Conn, client netip.Addr, local, ok bool) {
	_ = raw.SetReadDeadline(time.Now().Add(proxyHeaderTimeout))
	h, err := proxyproto.Read(raw)
	if err != nil {
		d.metrics.Throttled("proxy-header")
		d.log.Warn("no valid PROXY protocol header from a balancer in proxy_protocol_from, closed",
			logkey.Event, logkey.EventProxyRefused, logkey.Client, ipString(peer), logkey.Err, err)
		raw.Close()
		return nil, netip.Addr{}, false, false
	}
	_ = raw.SetReadDeadline(time.Time{})
	if h.Local {
		d.log.Debug("PROXY LOCAL: the balancer's own connection (health check)", logkey.Client, ipString(peer), "version", h.Version)
		return raw, peer, true, true
	}
	client = h.Source.Addr().Unmap()
	conn = &proxiedConn{
		Conn:   raw,
		remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(client, h.Source.Port())),
		local:  net.TCPAddrFromAddrPort(netip.AddrPortFrom(h.Destination.Addr().Unmap(), h.Destination.Port())),
	}
	return conn, client, false, true
}

// proxyPeekWait is how long, while proxy_protocol_from is set, a client
// not in it may take to show a PROXY header before its greeting: a
// balancer sends its header as soon as it has connected, so one that is
// misconfigured, or a client forging its address, is caught here.
const proxyPeekWait = 50 * time.Millisecond

// sentProxyHeader reports whether a client has sent the start of a PROXY
// protocol header, waiting up to wait for its first octets (0: only
// those already there). The octets stay unread. A client that sends one
// later gets the greeting, and the engine closes the session at the
// header's first line.
func sentProxyHeader(conn net.Conn, wait time.Duration) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	if wait > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		defer conn.SetReadDeadline(time.Time{})
	}
	var buf [6]byte
	n := 0
	_ = rc.Read(func(fd uintptr) bool {
		var err error
		n, _, err = unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		// EAGAIN: nothing yet; wait for the socket to be readable
		// (or the deadline) unless told not to.
		return wait == 0 || !errors.Is(err, unix.EAGAIN)
	})
	return n == len(buf) && proxyproto.Looks(buf[:])
}

// refuseForgedProxy closes, without a greeting, a connection whose client
// is not in proxy_protocol_from but sent a PROXY header; it reports
// whether it did.
func (d *daemon) refuseForgedProxy(raw net.Conn, ip netip.Addr) bool {
	wait := time.Duration(0)
	if d.proxyFrom != nil {
		wait = proxyPeekWait
	}
	if !sentProxyHeader(raw, wait) {
		return false
	}
	d.metrics.Throttled("proxy-header")
	d.log.Warn("PROXY protocol header from an address not in proxy_protocol_from, closed",
		logkey.Event, logkey.EventProxyRefused, logkey.Client, ipString(ip))
	raw.Close()
	return true
}
