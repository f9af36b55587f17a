package protocol

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/mppd/mppd/authn/authntest"
	"github.com/mppd/mppd/delivery/deliverytest"
	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// testServer is a protocol.Server on a loopback listener with fake
// backends.
type testServer struct {
	t      *testing.T
	srv    *Server
	auth   *authntest.Fake
	del    *deliverytest.Recorder
	addr   string // where it listens
	logBuf *testenv.LogBuffer
	ctx    context.Context
	cancel context.CancelFunc
}

// testConfig is mppd.conf's defaults, with no failure delay.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Hostname = "mpp.example.test"
	cfg.AuthFailureDelay = 0
	return cfg
}

// newTestServer serves the engine of newTestEngine, with alice and bob,
// on a loopback listener.
func newTestServer(t *testing.T, mutate func(*Config)) *testServer {
	t.Helper()
	ts := newTestEngine(t, map[string]string{"alice": "alice-pw", "bob": "bob-pw"}, mutate)
	ts.ctx, ts.cancel = context.WithCancel(context.Background())
	ts.addr = testharness.Serve(t, func(conn net.Conn) { ts.srv.Serve(ts.ctx, conn) })
	t.Cleanup(ts.cancel) // runs first: the sessions end, then the listener
	return ts
}

// newTestEngine is a testServer that does not listen: the engine with
// testConfig (changed by mutate), fake backends that know users (name to
// password), and its log at debug level in logBuf.
func newTestEngine(t *testing.T, users map[string]string, mutate func(*Config)) *testServer {
	t.Helper()
	cfg := testConfig()
	cfg.StagingDir = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	ts := &testServer{
		t:      t,
		auth:   authntest.New(users),
		del:    &deliverytest.Recorder{},
		logBuf: &testenv.LogBuffer{},
	}
	ts.srv = &Server{
		Config:   cfg,
		Auth:     ts.auth,
		Delivery: ts.del,
		Log:      slog.New(slog.NewTextHandler(ts.logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return ts
}

// client is the test's side of one session.
type client = testharness.Client

// dial connects and reads the greeting.
func (ts *testServer) dial() *client {
	ts.t.Helper()
	c := ts.dialRaw()
	c.Expect(220)
	return c
}

// login connects and logs in as alice.
func (ts *testServer) login() *client {
	ts.t.Helper()
	c := ts.dial()
	c.Login("alice", "alice-pw")
	return c
}

// logged reports whether the server's log holds s.
func (ts *testServer) logged(s string) bool {
	return strings.Contains(ts.logBuf.String(), s)
}

// wantLog stops the test, showing the log, unless the log holds each of
// words.
func (ts *testServer) wantLog(words ...string) {
	ts.t.Helper()
	for _, w := range words {
		if !ts.logged(w) {
			ts.t.Fatalf("no %q in the log:\n%s", w, ts.logBuf)
		}
	}
}

// wantDelivered stops the test unless the deliverer took n messages.
func (ts *testServer) wantDelivered(n int) {
	ts.t.Helper()
	if got := len(ts.del.Messages()); got != n {
		ts.t.Fatalf("%d messages delivered, want %d", got, n)
	}
}

func (ts *testServer) dialRaw() *client {
	ts.t.Helper()
	return testharness.Dial(ts.t, ts.addr, "")
}

// simpleMessage is a small valid message from alice to bob, in wire form.
const simpleMessage = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello Bob.\r\n"

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
	ctx, cancel := context.WithCancel(context.Background())
	addr := testharness.Serve(b, func(conn net.Conn) { srv.Serve(ctx, conn) })
	b.Cleanup(cancel)
	return &benchServer{b: b, addr: addr}
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
