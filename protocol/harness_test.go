package protocol

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/authn/authntest"
	"github.com/mppd/mppd/delivery/deliverytest"
	"github.com/mppd/mppd/internal/testenv"
)

// testServer is a protocol.Server on a loopback listener with fake
// backends.
type testServer struct {
	t      *testing.T
	srv    *Server
	auth   *authntest.Fake
	del    *deliverytest.Recorder
	ln     net.Listener
	logBuf *testenv.LogBuffer
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// testConfig is mppd.conf's defaults (internal/config.Default), with no
// failure delay.
func testConfig() Config {
	return Config{
		Hostname: "mpp.example.test",
		Limits: Limits{
			MaxLine:        1000,
			MaxMessage:     10_240_000,
			MaxHeader:      102_400,
			MaxRecipients:  100,
			MaxReceived:    50,
			IdleTimeout:    5 * time.Minute,
			SessionTimeout: 20 * time.Minute,
			MinDataRate:    500,
			MaxErrors:      3,
			MaxJunk:        100,
		},
		UserPattern:           regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`),
		ReceivedClientAddress: true,
		MemoryThreshold:       1 << 20,
	}
}

func newTestServer(t *testing.T, mutate func(*Config)) *testServer {
	t.Helper()
	cfg := testConfig()
	cfg.StagingDir = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{
		t:      t,
		auth:   authntest.New(map[string]string{"alice": "alice-pw", "bob": "bob-pw"}),
		del:    &deliverytest.Recorder{},
		ln:     ln,
		logBuf: &testenv.LogBuffer{},
	}
	ts.srv = &Server{
		Config:   cfg,
		Auth:     ts.auth,
		Delivery: ts.del,
		Log:      slog.New(slog.NewTextHandler(ts.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ts.ctx, ts.cancel = context.WithCancel(context.Background())
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			ts.wg.Add(1)
			go func() {
				defer ts.wg.Done()
				ts.srv.Serve(ts.ctx, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		ts.cancel()
		ts.wg.Wait()
	})
	return ts
}

// client is the test's side of one session.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// dial connects and reads the greeting.
func (ts *testServer) dial() *client {
	ts.t.Helper()
	c := ts.dialRaw()
	c.expect(220)
	return c
}

func (ts *testServer) dialRaw() *client {
	ts.t.Helper()
	conn, err := net.Dial("tcp", ts.ln.Addr().String())
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { conn.Close() })
	return &client{t: ts.t, conn: conn, r: bufio.NewReader(conn)}
}

// send writes raw bytes.
func (c *client) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// line reads one reply line and checks it ends in CRLF.
func (c *client) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading a reply: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// expect reads one reply and requires its code.
func (c *client) expect(code int) string {
	c.t.Helper()
	l := c.line()
	if len(l) < 4 || l[:3] != itoa3(code) || l[3] != ' ' {
		c.t.Fatalf("got reply %q, want %d", l, code)
	}
	return l
}

// cmd sends one command line with CRLF and requires the reply code.
func (c *client) cmd(line string, code int) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(code)
}

// login does USER and PASS as alice.
func (c *client) login() {
	c.t.Helper()
	c.cmd("USER alice", 250)
	c.cmd("PASS alice-pw", 250)
}

// post sends DATA, the text (already in wire form, without the final
// terminator) and the terminator, and requires the final code.
func (c *client) post(wire string, code int) string {
	c.t.Helper()
	c.cmd("DATA", 354)
	c.send(wire + ".\r\n")
	return c.expect(code)
}

// closed requires the server to have closed the connection.
func (c *client) closed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.r.ReadByte()
	if err == nil {
		rest, _ := c.r.ReadString('\n')
		c.t.Fatalf("connection still open, read %q", string(b)+rest)
	}
}

// simpleMessage is a small valid message from alice to bob, in wire form.
const simpleMessage = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello Bob.\r\n"

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// benchServer runs the engine with fake backends for benchmarks.
type benchServer struct {
	b    *testing.B
	addr string
}

func newBenchServer(b *testing.B) *benchServer {
	cfg := testConfig()
	cfg.StagingDir = b.TempDir()
	srv := &Server{
		Config:   cfg,
		Auth:     authntest.New(map[string]string{"alice": "alice-pw"}),
		Delivery: deliverytest.Discard{},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.Serve(ctx, conn)
		}
	}()
	b.Cleanup(func() { cancel(); ln.Close() })
	return &benchServer{b: b, addr: ln.Addr().String()}
}

// session runs one whole session and checks every reply.
func (bs *benchServer) session(msg string) {
	conn, err := net.Dial("tcp", bs.addr)
	if err != nil {
		bs.b.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	expect := func(code string) {
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, code) {
			bs.b.Fatalf("got %q (%v), want %s", l, err, code)
		}
	}
	expect("220")
	io.WriteString(conn, "USER alice\r\nPASS alice-pw\r\nDATA\r\n")
	expect("250")
	expect("250")
	expect("354")
	io.WriteString(conn, msg+".\r\nQUIT\r\n")
	expect("250")
	expect("221")
}
