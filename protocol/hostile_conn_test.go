package protocol

// The hostile-input catalogue (see hostile_test.go): the connection:
// slow clients, deadlines, clients that go away, shutdown.

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testharness"
)

// Case 49: message text trickled below the minimum data rate is cut off.
func TestMinDataRate(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.Limits.IdleTimeout = time.Second
		c.Limits.MinDataRate = 1000
	})
	c := ts.login()
	c.Cmd("DATA", 354)
	start := time.Now()
	// At 10 B/s the rate rule cuts the client off after about 1 s; the
	// idle timeout alone would let it trickle on for the whole loop (60 s).
	// The bound below is far from both, so a slow machine cannot fail it.
	for time.Since(start) < time.Minute {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c.Conn, "x"); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // 10 B/s, each read well inside the idle timeout
		if c.Reader().Buffered() > 0 {
			break
		}
		c.Conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Reader().Peek(1); err == nil {
			break
		}
	}
	c.Expect(451)
	if time.Since(start) > 30*time.Second || len(ts.del.Messages()) != 0 {
		t.Fatalf("trickling client kept %v", time.Since(start))
	}
	// The log names the cap that was hit, not the idle timeout.
	waitFor(t, func() bool { return ts.logged("event=timeout reason=data-rate") })
}

// Case 48 during message text: a client silent after 354 is cut off by the
// idle timeout, and the log says so (not the data rate).
func TestIdleTimeoutInText(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.IdleTimeout = 500 * time.Millisecond })
	c := ts.login()
	c.Cmd("DATA", 354)
	c.Expect(451)
	c.ExpectClosed()
	waitFor(t, func() bool { return ts.logged("event=timeout reason=idle") })
	if strings.Contains(ts.logBuf.String(), "reason=data-rate") || len(ts.del.Messages()) != 0 {
		t.Fatalf("log:\n%s", ts.logBuf)
	}
}

// Case 49: the session deadline ends even a busy session.
func TestSessionTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.SessionTimeout = 500 * time.Millisecond })
	c := ts.dial()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		c.Send("NOOP\r\n")
		if l := c.Line(); strings.HasPrefix(l, "451 ") {
			c.ExpectClosed()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("session outlived its deadline")
}

// Case 65 at the session deadline: a delivery that ends after the session
// deadline still has its reply written (a queued message that is not
// acknowledged would be sent again), and only then does the session close.
func TestReplyAfterSessionDeadline(t *testing.T) {
	const limit = 1500 * time.Millisecond
	ts := newTestServer(t, func(c *Config) { c.Limits.SessionTimeout = limit })
	// Deliver starts after the greeting, so it ends past the deadline.
	ts.del.SetDelay(limit + 100*time.Millisecond)
	c := ts.dial()
	c.Send("USER alice\r\nPASS alice-pw\r\nDATA\r\n" + simpleMessage + ".\r\n")
	for _, code := range []int{250, 250, 354, 250} {
		c.Expect(code)
	}
	c.Expect(451)
	c.ExpectClosed()
	ts.wantDelivered(1)
}

// Case 50: a client that never reads is dropped when the write deadline
// fires, and its goroutine ends.
func TestNonReadingClient(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.Limits.IdleTimeout = 300 * time.Millisecond
		c.Limits.MaxJunk = 1 << 30
	})
	c := ts.dialRaw()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200_000; i++ {
			c.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.WriteString(c.Conn, strings.Repeat("NOOP\r\n", 100)); err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("server kept writing to a client that does not read")
	}
	waitFor(t, func() bool { return ts.logged("event=disconnect") })
}

// Case 64: a client that goes away in the middle of the text has nothing
// delivered.
func TestClientGoneMidText(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.Cmd("DATA", 354)
	c.Send(simpleMessage + "half a body")
	c.Conn.Close()
	waitFor(t, func() bool { return ts.logged("event=client-gone") })
	ts.wantDelivered(0) // no partial message
}

// Case 65: a client that goes away after the final dot still has its
// message delivered (loss is never acceptable; a duplicate is).
func TestClientGoneAfterDot(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.del.SetDelay(200 * time.Millisecond)
	c := ts.login()
	c.Cmd("DATA", 354)
	c.Send(simpleMessage + ".\r\n")
	c.Conn.Close()
	waitFor(t, func() bool { return len(ts.del.Messages()) == 1 })
}

// Case 66: at shutdown an idle session is told 451 and closed at once.
func TestShutdownIdle(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("USER alice", 250)
	ts.cancel()
	c.Expect(451)
	c.ExpectClosed()
}

// Case 67: at shutdown a message being received is finished, delivered and
// acknowledged; the client's QUIT then gets 221, as any other time.
func TestShutdownDuringTextThenQuit(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	textAcrossShutdown(ts, c)
	c.Cmd("QUIT", 221)
	c.ExpectClosed()
	if len(ts.del.Messages()) != 1 {
		t.Fatal("message lost at shutdown")
	}
}

// Case 67, without the QUIT: after the 250 a client that says nothing (or
// anything else) within a moment is told 451 and the session closes.
func TestShutdownDuringText(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	textAcrossShutdown(ts, c)
	c.Expect(451)
	c.ExpectClosed()
	ts.wantDelivered(1) // not lost at shutdown
}

// textAcrossShutdown sends DATA and the start of a message on c, shuts
// the server down, ends the text, and wants the message acknowledged.
func textAcrossShutdown(ts *testServer, c *client) {
	ts.t.Helper()
	c.Cmd("DATA", 354)
	c.Send(simpleMessage)
	time.Sleep(50 * time.Millisecond)
	ts.cancel()
	time.Sleep(50 * time.Millisecond)
	c.Send("more text\r\n.\r\n")
	c.Expect(250)
}

// A session cut during its text while the server shuts down (here by the
// idle timeout; in mppd by the drain timeout) logs state=data, not the
// state of the login before DATA.
func TestShutdownCutDuringTextLogsData(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.IdleTimeout = 300 * time.Millisecond })
	c := ts.dial()
	c.Login("alice", "alice-pw")
	c.Cmd("DATA", 354)
	c.Send(simpleMessage)
	ts.cancel()
	c.Expect(451)
	c.ExpectClosed()
	waitFor(t, func() bool { return strings.Contains(ts.logBuf.String(), "session ended") })
	if log := ts.logBuf.String(); !strings.Contains(log, `event=shutdown state=data reading=text`) {
		t.Errorf("no shutdown line with state=data:\n%s", log)
	}
	if len(ts.del.Messages()) != 0 {
		t.Error("a cut message was delivered")
	}
}

// Serve works on any net.Conn, here a net.Pipe with no IP address.
func TestServeOnPipe(t *testing.T) {
	ts := newTestServer(t, nil)
	server, clientEnd := net.Pipe()
	go ts.srv.Serve(context.Background(), server)
	c := testharness.NewClient(t, clientEnd)
	c.Expect(220)
	c.Login("alice", "alice-pw")
	c.PostRaw(simpleMessage, 250)
	c.Cmd("QUIT", 221)
	if got := ts.del.Messages(); len(got) != 1 || strings.Contains(got[0].Text, "from [") {
		t.Fatalf("delivered %+v", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 10s")
}
