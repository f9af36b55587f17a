package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
)

// errListener fails Accept with err a number of times, then blocks until
// it is closed.
type errListener struct {
	err    error
	fails  int
	mu     sync.Mutex
	calls  int
	closed chan struct{}
	once   sync.Once
}

func (l *errListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls++
	n := l.calls
	l.mu.Unlock()
	if n <= l.fails {
		return nil, l.err
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *errListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *errListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 218} }

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestAcceptBackoff: EMFILE from Accept makes the loop pause 5 ms, then
// twice as long each time up to 1 s, never spinning and never giving up.
func TestAcceptBackoff(t *testing.T) {
	l := &errListener{err: &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}, fails: 10, closed: make(chan struct{})}
	var mu sync.Mutex
	var pauses []time.Duration
	allDone := make(chan struct{})
	d := &daemon{
		serve:        func(context.Context, net.Conn) { t.Error("serve called") },
		refuse:       func(net.Conn, string) { t.Error("refuse called") },
		log:          quietLog(),
		maxSessions:  10,
		maxPerClient: 10,
		trusted:      func(netip.Addr) bool { return false },
		sleep: func(ctx context.Context, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			pauses = append(pauses, d)
			if len(pauses) == 10 {
				close(allDone)
			}
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.run(ctx, nil, []net.Listener{l}) }()
	select {
	case <-allDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not retry")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	ms := time.Millisecond
	want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}
	if !reflect.DeepEqual(pauses, want) {
		t.Errorf("pauses %v, want %v", pauses, want)
	}
}

// TestListenerFailure: a listener closed under the loop (not by shutdown)
// ends run with an error rather than a silent exit or a spin.
func TestListenerFailure(t *testing.T) {
	l := &errListener{err: net.ErrClosed, fails: 1, closed: make(chan struct{})}
	d := &daemon{log: quietLog(), maxSessions: 1, maxPerClient: 1, trusted: func(netip.Addr) bool { return false }}
	err := d.run(context.Background(), nil, []net.Listener{l})
	if err == nil {
		t.Fatal("run returned nil after its listener failed")
	}
}

// capHarness runs a daemon on a loopback listener with a serve function
// that holds each session until release is closed or ctx is done.
type capHarness struct {
	d       *daemon
	addr    string
	cancel  context.CancelFunc
	errc    chan error
	release chan struct{}

	mu      sync.Mutex
	refused []string
	served  int
}

func newCapHarness(t *testing.T, maxSessions, maxPerClient int, trusted bool) *capHarness {
	t.Helper()
	return newCapHarnessOn(t, "127.0.0.1:0", maxSessions, maxPerClient, func(netip.Addr) bool { return trusted })
}

// newCapHarnessOn is newCapHarness listening on addr, with trusted as the
// daemon's trusted networks.
func newCapHarnessOn(t *testing.T, addr string, maxSessions, maxPerClient int, trusted func(netip.Addr) bool) *capHarness {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &capHarness{addr: l.Addr().String(), errc: make(chan error, 1), release: make(chan struct{})}
	h.d = &daemon{
		serve: func(ctx context.Context, conn net.Conn) {
			defer conn.Close()
			h.mu.Lock()
			h.served++
			h.mu.Unlock()
			conn.Write([]byte("220 hello\r\n"))
			select {
			case <-h.release:
			case <-ctx.Done():
			}
		},
		refuse: func(conn net.Conn, why string) {
			h.mu.Lock()
			h.refused = append(h.refused, why)
			h.mu.Unlock()
			conn.Write([]byte("451 " + why + "\r\n"))
			conn.Close()
		},
		log:          quietLog(),
		maxSessions:  maxSessions,
		maxPerClient: maxPerClient,
		trusted:      trusted,
		drainTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.errc <- h.d.run(ctx, nil, []net.Listener{l}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-h.errc; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return h
}

// greeting connects and returns the first reply line's code.
func (h *capHarness) greeting(t *testing.T) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("reading greeting: %v", err)
	}
	return string(buf)
}

func TestPerClientCap(t *testing.T) {
	h := newCapHarness(t, 100, 2, false)
	for i, want := range []string{"220", "220", "451", "451"} {
		if got := h.greeting(t); got != want {
			t.Errorf("connection %d: got %s, want %s", i+1, got, want)
		}
	}
}

func TestTrustedExempt(t *testing.T) {
	h := newCapHarness(t, 100, 1, true)
	for i := 0; i < 4; i++ {
		if got := h.greeting(t); got != "220" {
			t.Errorf("connection %d: got %s, want 220", i+1, got)
		}
	}
}

func TestTotalCapAndRelease(t *testing.T) {
	h := newCapHarness(t, 2, 100, true)
	for i, want := range []string{"220", "220", "451"} {
		if got := h.greeting(t); got != want {
			t.Errorf("connection %d: got %s, want %s", i+1, got, want)
		}
	}
	close(h.release) // both sessions end
	testenv.WaitFor(t, 5*time.Second, func() bool { return h.d.count() == 0 }, "sessions not released")
	h.d.mu.Lock()
	left := len(h.d.perIP)
	h.d.mu.Unlock()
	if left != 0 {
		t.Errorf("per-IP counts left behind: %v", h.d.perIP)
	}
	if got := h.greeting(t); got != "220" {
		t.Errorf("after release: got %s, want 220", got)
	}
}

// drainDaemon runs a daemon whose sessions are serve, with the given drain
// timeout, on a new loopback listener, until cancel is called; run's
// result comes on errc.
func drainDaemon(t *testing.T, drainTimeout time.Duration, serve func(context.Context, net.Conn)) (d *daemon, addr string, cancel context.CancelFunc, errc chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d = &daemon{
		serve:        serve,
		refuse:       func(net.Conn, string) {},
		log:          quietLog(),
		maxSessions:  10,
		maxPerClient: 10,
		trusted:      func(netip.Addr) bool { return true },
		drainTimeout: drainTimeout,
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc = make(chan error, 1)
	go func() { errc <- d.run(ctx, nil, []net.Listener{l}) }()
	return d, l.Addr().String(), cancel, errc
}

// waitRun waits up to timeout for run's result on errc; an error, or no
// result in time (what says what that means), fails the test.
func waitRun(t *testing.T, errc <-chan error, timeout time.Duration, what string) {
	t.Helper()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(timeout):
		t.Fatal(what)
	}
}

// TestDrainTimeout: a session that ignores the shutdown has its
// connection closed after drain_timeout, and run waits for it to return.
func TestDrainTimeout(t *testing.T) {
	sawCancel := make(chan bool, 1)
	returned := make(chan struct{})
	_, addr, cancel, errc := drainDaemon(t, 100*time.Millisecond, func(ctx context.Context, conn net.Conn) {
		defer close(returned)
		conn.Write([]byte("220 hello\r\n"))
		// A stubborn session: it reads until its connection is
		// closed under it.
		io.Copy(io.Discard, conn)
		sawCancel <- ctx.Err() != nil
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cancel()
	waitRun(t, errc, 5*time.Second, "run did not return after the drain timeout")
	if e := time.Since(start); e < 100*time.Millisecond {
		t.Errorf("run returned after %v, before the drain timeout", e)
	}
	select {
	case <-returned:
	default:
		t.Error("run returned before the session did")
	}
	if !<-sawCancel {
		t.Error("the session's context was not cancelled")
	}
}

// TestDrainWaitsForSessions: a session that ends by itself within the
// drain timeout is not cut short, and run returns as soon as it ends.
func TestDrainWaitsForSessions(t *testing.T) {
	finished := make(chan error, 1)
	d, addr, cancel, errc := drainDaemon(t, 10*time.Second, func(ctx context.Context, conn net.Conn) {
		defer conn.Close()
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // finishing a message
		_, err := conn.Write([]byte("250 done\r\n"))
		finished <- err
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for d.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if e := time.Since(start); e > 5*time.Second {
		t.Errorf("run took %v", e)
	}
	if err := <-finished; err != nil {
		t.Errorf("the session could not finish: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "250" {
		t.Errorf("client got %q, %v", buf, err)
	}
}

// TestDrainTimeoutSparesDelivery (catalogue case 68): when the
// drain timeout passes while a session waits for its delivery (no read or
// write on the connection under way), the connection stays open so that
// the delivery's result still reaches the client; a session reading from
// its client at that moment is stopped at once. run returns when both
// have ended.
func TestDrainTimeoutSparesDelivery(t *testing.T) {
	delivering := make(chan struct{})
	delivered := make(chan struct{}) // the delivery returns
	replyErr := make(chan error, 1)
	readErr := make(chan error, 1)
	d, addr, cancel, errc := drainDaemon(t, 50*time.Millisecond, func(ctx context.Context, conn net.Conn) {
		defer conn.Close()
		buf := make([]byte, 1)
		if _, err := conn.Read(buf); err != nil {
			t.Errorf("first read: %v", err)
			return
		}
		if buf[0] == 'D' {
			// A message was read; its delivery runs past the
			// drain timeout, then the reply is due.
			close(delivering)
			<-delivered
			_, err := conn.Write([]byte("250 queued\r\n"))
			replyErr <- err
			return
		}
		// A client that stays silent: this read must end at the
		// drain timeout, not hang.
		_, err := conn.Read(buf)
		readErr <- err
	})
	dialSend := func(b string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte(b)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	sender := dialSend("D")
	<-delivering
	dialSend("x")
	for d.count() < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	// The silent session is stopped by the drain timeout, however late.
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("the silent session's read returned no error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the silent session's read did not end after the drain timeout")
	}
	select {
	case <-errc:
		t.Fatal("run returned while a delivery was under way")
	default:
	}
	close(delivered)
	if err := <-replyErr; err != nil {
		t.Errorf("the delivery's reply could not be written: %v", err)
	}
	sender.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(sender)
	if string(got) != "250 queued\r\n" {
		t.Errorf("the client got %q (%v), want the delivery's reply", got, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
