package protocol

// The engine's share of the hostile-input catalogue in
// shared/notes/limits-and-bad-input.md; each test names its case number.

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
)

// Case 8: each malformed command counts as an error; the third ends the
// session with 451.
func TestErrorLimit(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.cmd("FOO", 500)
	c.cmd("USER", 501)
	c.cmd("DATA", 503)
	c.expect(451)
	c.closed()
	if !strings.Contains(ts.logBuf.String(), `verb=FOO`) || !strings.Contains(ts.logBuf.String(), "event=error-limit") {
		t.Fatalf("log:\n%s", ts.logBuf)
	}
}

// Case 8: an unknown verb is logged as at most six escaped bytes.
func TestUnknownVerbLoggedShort(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.cmd("ABCDEFGHIJ\x01 ip=6.6.6.6", 500)
	log := ts.logBuf.String()
	if strings.Contains(log, "GHIJ") || strings.Contains(log, "ip=6.6.6.6") {
		t.Fatalf("log shows too much of the verb:\n%s", log)
	}
}

// Case 9: HTTP verbs on the MPP port get 500 and the connection closes;
// a TLS handshake is closed without a word.
func TestCrossProtocol(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, req := range []string{"GET / HTTP/1.1", "POST /x HTTP/1.1", "CONNECT host:443 HTTP/1.1"} {
		c := ts.dial()
		c.cmd(req, 500)
		c.closed()
	}
	c := ts.dial()
	c.send("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n")
	c.closed()
	if !strings.Contains(ts.logBuf.String(), "event=wrong-protocol") {
		t.Fatal("no wrong-protocol log line")
	}
}

// Case 11: everything in one write with a wrong password: replies in
// order, the body lines are errors, nothing is delivered.
func TestPipelinedWrongPassword(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.send("USER alice\r\nPASS wrong\r\nDATA\r\n" + simpleMessage + ".\r\nQUIT\r\n")
	c.expect(250)
	c.expect(530)
	c.expect(503) // DATA
	c.expect(500) // "From: ..." is no command
	c.expect(500) // "To: ..." reaches the error limit
	c.expect(451)
	c.closed()
	if len(ts.del.messages()) != 0 {
		t.Fatal("a pipelined message was delivered after a failed login")
	}
}

// Pipelined commands with a right password are all answered, in order.
func TestPipelinedSession(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.send("USER alice\r\nPASS alice-pw\r\nDATA\r\n" + simpleMessage + ".\r\nDATA\r\n" + simpleMessage + ".\r\nQUIT\r\n")
	for _, code := range []int{250, 250, 354, 250, 354, 250, 221} {
		c.expect(code)
	}
	if n := len(ts.del.messages()); n != 2 {
		t.Fatalf("%d messages delivered, want 2", n)
	}
}

// Case 12: NOOPs past the junk limit count as errors.
func TestJunkLimit(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxJunk = 5 })
	c := ts.dial()
	c.send(strings.Repeat("NOOP\r\n", 100))
	for i := 0; i < 5; i++ {
		c.expect(250)
	}
	for i := 0; i < 3; i++ {
		c.expect(503)
	}
	c.expect(451)
	c.closed()
	if !strings.Contains(ts.logBuf.String(), "event=junk-limit") {
		t.Fatal("no junk-limit log line")
	}
}

// Case 14 (decision 4): a command may end in a bare LF.
func TestBareLFCommand(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.send("USER alice\n")
	c.expect(250)
	c.send("PASS alice-pw\n")
	c.expect(250)
}

// Case 29 and the line limit: an over-long line gets 500 without a
// backend call and without losing step with the client.
func TestLongLine(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.cmd("USER alice", 250)
	c.cmd("PASS "+strings.Repeat("x", 100_000), 500)
	c.cmd("PASS alice-pw", 250)
	if n := ts.auth.count(); n != 1 {
		t.Fatalf("backend asked %d times", n)
	}
	// Exactly at the limit (1000 octets with CRLF) is still a line.
	c2 := ts.dial()
	c2.cmd("NOOP "+strings.Repeat("x", 1000-len("NOOP \r\n")), 501)
	c2.cmd("NOOP "+strings.Repeat("x", 1000-len("NOOP \r\n")+1), 500)
}

// Case 43: an endless line is answered 500 at the limit's end... the line
// never ends, so the session ends at the idle timeout with memory bounded.
func TestEndlessLine(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.IdleTimeout = 300 * time.Millisecond })
	c := ts.dial()
	junk := strings.Repeat("A", 64<<10)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c.conn, junk); err != nil {
			break // the server hung up
		}
	}
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, _ := io.ReadAll(c.r)
	if !strings.HasPrefix(string(rest), "451 ") {
		t.Fatalf("after an endless line got %q", rest)
	}
}

// Cases 17 and 44: SMTP-smuggling-style dot lines never end the text; the
// "commands" after them are text, and the message is refused at the real
// end.
func TestSmuggling(t *testing.T) {
	for _, fake := range []string{"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n"} {
		ts := newTestServer(t, nil)
		c := ts.dial()
		c.login()
		c.cmd("DATA", 354)
		c.send("From: alice@example.test\r\nTo: bob@example.test\r\n\r\nbody" + fake + "USER mallory\r\nPASS x\r\nDATA\r\n")
		c.send("From: alice@example.test\r\nTo: victim@example.test\r\n\r\nspoofed\r\n.\r\n")
		c.expect(550)
		c.cmd("NOOP", 250)
		if n := len(ts.del.messages()); n != 0 {
			t.Fatalf("%q: %d messages delivered", fake, n)
		}
		if ts.auth.count() != 1 {
			t.Fatalf("%q: smuggled PASS reached the backend", fake)
		}
	}
}

// Decision 4: ordinary lines may end in a bare LF; they are normalised.
func TestBareLFInText(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.login()
	c.post("From: alice@example.test\nTo: bob@example.test\n\nline one\nline two\r\n", 250)
	if got := ts.del.messages()[0].msg; !strings.HasSuffix(got, "\n\nline one\nline two\n") || strings.Contains(got, "\r") {
		t.Fatalf("delivered %q", got)
	}
}

// Case 18 and bare CR: refused after the real end.
func TestNULAndBareCRInText(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, bad := range []string{"a\x00b\r\n", "a\rb\r\n"} {
		c := ts.dial()
		c.login()
		c.post(simpleMessage+bad, 550)
	}
	if len(ts.del.messages()) != 0 {
		t.Fatal("delivered")
	}
}

// Case 20: an empty message has no recipients.
func TestEmptyMessage(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.login()
	c.post("", 550)
	if !strings.Contains(ts.logBuf.String(), "reason=no-recipients") {
		t.Fatalf("log:\n%s", ts.logBuf)
	}
}

// Case 44: an oversized message is read to its real end, then 550; what
// looked like commands inside it is never run.
func TestOversizedMessage(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxMessage = 10_000 })
	c := ts.dial()
	c.login()
	c.cmd("DATA", 354)
	c.send(simpleMessage + strings.Repeat("0123456789abcdef\r\n", 1000) + ".\nHELP\r\n")
	c.send(".\r\n")
	c.expect(550)
	c.cmd("NOOP", 250)
	if len(ts.del.messages()) != 0 {
		t.Fatal("an oversized message was delivered")
	}
}

// Case 45: a header block over the limit is refused.
func TestHeaderBomb(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.login()
	c.post(simpleMessage[:len(simpleMessage)-len("\r\nHello Bob.\r\n")]+strings.Repeat("X: y\r\n", 30_000)+"\r\nbody\r\n", 550)
	if !strings.Contains(ts.logBuf.String(), "reason=header-too-big") {
		t.Fatalf("log:\n%s", ts.logBuf)
	}
}

// Case 46: one recipient over the limit refuses the whole message.
func TestTooManyRecipients(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxRecipients = 3 })
	c := ts.dial()
	c.login()
	c.post("To: a@x.test, b@x.test, c@x.test, d@x.test\r\n\r\nhi\r\n", 550)
	c = ts.dial()
	c.login()
	c.post("To: a@x.test, b@x.test, c@x.test\r\n\r\nhi\r\n", 250)
	if got := ts.del.messages(); len(got) != 1 || len(got[0].env.Recipients) != 3 {
		t.Fatalf("deliveries %+v", got)
	}
}

// Case 47: a mail loop is refused.
func TestMailLoop(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.login()
	c.post(strings.Repeat("Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n", 51)+simpleMessage, 550)
}

// Cases 34 and 38, and the envelope: recipients come from To/Cc/Bcc, Bcc
// is not delivered, the envelope sender is the authenticated address.
func TestRecipientsAndBcc(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.login()
	c.post("From: alice@example.test\r\nTo: Bob <bob@example.test>\r\nCc: carol@example.test\r\nBcc: dave@example.test\r\n\r\nhi\r\n", 250)
	got := ts.del.messages()[0]
	if strings.Join(got.env.Recipients, ",") != "bob@example.test,carol@example.test,dave@example.test" {
		t.Fatalf("recipients %v", got.env.Recipients)
	}
	if strings.Contains(strings.ToLower(got.msg), "bcc:") || got.env.Sender != "alice@example.test" {
		t.Fatalf("delivered %q from %q", got.msg, got.env.Sender)
	}
	for _, h := range []string{"Received: ", "Date: ", "Message-ID: "} {
		if !strings.Contains(got.msg, h) {
			t.Fatalf("no %q added:\n%s", h, got.msg)
		}
	}

	c = ts.dial()
	c.login()
	c.post("From: alice@example.test\r\nTo: -oQ/tmp/q@example.test\r\n\r\nhi\r\n", 550)
}

// Case 41: a forged From gets a truthful Sender (default policy) or is
// refused (reject policy); the envelope sender is the user's either way.
func TestSenderForgery(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.login()
	c.post("From: ceo@example.test\r\nTo: bob@example.test\r\n\r\nwire money\r\n", 250)
	got := ts.del.messages()[0]
	if !strings.Contains(got.msg, "Sender: alice@example.test\n") || got.env.Sender != "alice@example.test" {
		t.Fatalf("delivered %q from %q", got.msg, got.env.Sender)
	}

	ts = newTestServer(t, func(c *Config) { c.SenderPolicy = SenderReject })
	c = ts.dial()
	c.login()
	c.post("From: ceo@example.test\r\nTo: bob@example.test\r\n\r\nwire money\r\n", 550)
	c = ts.dial()
	c.login()
	c.post("To: bob@example.test\r\n\r\nno From at all\r\n", 250)
	if got := ts.del.messages()[0].msg; !strings.Contains(got, "From: alice@example.test\n") {
		t.Fatalf("no From added: %q", got)
	}
}

// A message larger than the memory threshold is staged in a file and
// delivered intact.
func TestLargeMessageSpills(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MemoryThreshold = 4096 })
	c := ts.dial()
	c.login()
	line := strings.Repeat("x", 70)
	c.post(simpleMessage+strings.Repeat(line+"\r\n", 20_000), 250)
	got := ts.del.messages()[0].msg
	if n := strings.Count(got, line+"\n"); n != 20_000 {
		t.Fatalf("%d body lines delivered, want 20000", n)
	}
}

// Free space is checked before 354 (Postfix queue_minfree).
func TestLowStagingSpace(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxMessage = 1 << 60 })
	c := ts.dial()
	c.login()
	c.cmd("DATA", 451)
	c.cmd("NOOP", 451)
}

// Case 49: message text trickled below the minimum data rate is cut off.
func TestMinDataRate(t *testing.T) {
	ts := newTestServer(t, func(c *Config) {
		c.Limits.IdleTimeout = time.Second
		c.Limits.MinDataRate = 1000
	})
	c := ts.dial()
	c.login()
	c.cmd("DATA", 354)
	start := time.Now()
	// At 10 B/s the rate rule cuts the client off after about 1 s; the
	// idle timeout alone would let it trickle on for the whole loop (60 s).
	// The bound below is far from both, so a slow machine cannot fail it.
	for time.Since(start) < time.Minute {
		c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c.conn, "x"); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond) // 10 B/s, each read well inside the idle timeout
		if c.r.Buffered() > 0 {
			break
		}
		c.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.r.Peek(1); err == nil {
			break
		}
	}
	c.expect(451)
	if time.Since(start) > 30*time.Second || len(ts.del.messages()) != 0 {
		t.Fatalf("trickling client kept %v", time.Since(start))
	}
	// The log names the cap that was hit (issue 7), not the idle timeout.
	waitFor(t, func() bool { return strings.Contains(ts.logBuf.String(), "event=timeout reason=data-rate") })
}

// Case 48 during message text: a client silent after 354 is cut off by the
// idle timeout, and the log says so (not the data rate).
func TestIdleTimeoutInText(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.IdleTimeout = 500 * time.Millisecond })
	c := ts.dial()
	c.login()
	c.cmd("DATA", 354)
	c.expect(451)
	c.closed()
	waitFor(t, func() bool { return strings.Contains(ts.logBuf.String(), "event=timeout reason=idle") })
	if strings.Contains(ts.logBuf.String(), "reason=data-rate") || len(ts.del.messages()) != 0 {
		t.Fatalf("log:\n%s", ts.logBuf)
	}
}

// Case 49: the session deadline ends even a busy session.
func TestSessionTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.SessionTimeout = 500 * time.Millisecond })
	c := ts.dial()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		c.send("NOOP\r\n")
		if l := c.line(); strings.HasPrefix(l, "451 ") {
			c.closed()
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
	ts.del.delay = limit + 100*time.Millisecond
	c := ts.dial()
	c.send("USER alice\r\nPASS alice-pw\r\nDATA\r\n" + simpleMessage + ".\r\n")
	for _, code := range []int{250, 250, 354, 250} {
		c.expect(code)
	}
	c.expect(451)
	c.closed()
	if n := len(ts.del.messages()); n != 1 {
		t.Fatalf("%d messages delivered, want 1", n)
	}
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
			c.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.WriteString(c.conn, strings.Repeat("NOOP\r\n", 100)); err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("server kept writing to a client that does not read")
	}
	waitFor(t, func() bool { return strings.Contains(ts.logBuf.String(), "event=disconnect") })
}

// Case 64: a client that goes away in the middle of the text has nothing
// delivered.
func TestClientGoneMidText(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.login()
	c.cmd("DATA", 354)
	c.send(simpleMessage + "half a body")
	c.conn.Close()
	waitFor(t, func() bool { return strings.Contains(ts.logBuf.String(), "event=client-gone") })
	if len(ts.del.messages()) != 0 {
		t.Fatal("a partial message was delivered")
	}
}

// Case 65: a client that goes away after the final dot still has its
// message delivered (loss is never acceptable; a duplicate is).
func TestClientGoneAfterDot(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.del.delay = 200 * time.Millisecond
	c := ts.dial()
	c.login()
	c.cmd("DATA", 354)
	c.send(simpleMessage + ".\r\n")
	c.conn.Close()
	waitFor(t, func() bool { return len(ts.del.messages()) == 1 })
}

// Case 66: at shutdown an idle session is told 451 and closed at once.
func TestShutdownIdle(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.cmd("USER alice", 250)
	ts.cancel()
	c.expect(451)
	c.closed()
}

// Case 67: at shutdown a message being received is finished, delivered and
// acknowledged, then the session closes with 451.
func TestShutdownDuringText(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.login()
	c.cmd("DATA", 354)
	c.send(simpleMessage)
	time.Sleep(50 * time.Millisecond)
	ts.cancel()
	time.Sleep(50 * time.Millisecond)
	c.send("more text\r\n.\r\n")
	c.expect(250)
	c.expect(451)
	c.closed()
	if len(ts.del.messages()) != 1 {
		t.Fatal("message lost at shutdown")
	}
}

// Decision 8: a failed login takes at least the floor, whatever the reason;
// a successful one is not delayed.
func TestAuthFailureFloor(t *testing.T) {
	const floor = 150 * time.Millisecond
	ts := newTestServer(t, func(c *Config) { c.AuthFailureDelay = floor })
	c := ts.dial()
	c.cmd("USER alice", 250)
	start := time.Now()
	c.cmd("PASS wrong", 530)
	if took := time.Since(start); took < floor {
		t.Fatalf("failure answered in %v, floor %v", took, floor)
	}

	// With a floor far beyond the client's 10 s read deadline, a delayed
	// success would fail the read: no assertion on how fast a loaded
	// machine answers.
	ts = newTestServer(t, func(c *Config) { c.AuthFailureDelay = time.Hour })
	c = ts.dial()
	c.cmd("USER alice", 250)
	c.cmd("PASS alice-pw", 250)
}

// Decision 8 with a backend that is slow on some rejections only (pam_unix
// sleeps after a wrong password, not after the right password of an
// expired account): once a slow rejection has been seen, a quick one is
// padded to the same time, so the quick 530 does not say "right password".
func TestAuthFailureFloorTracksSlowestRejection(t *testing.T) {
	const slow = 400 * time.Millisecond
	ts := newTestServer(t, func(c *Config) { c.AuthFailureDelay = 10 * time.Millisecond })
	ts.auth.delay = map[string]time.Duration{"alice": slow}
	fail := func(user string) time.Duration {
		c := ts.dial()
		c.cmd("USER "+user, 250)
		start := time.Now()
		c.cmd("PASS wrong", 530)
		return time.Since(start)
	}
	fail("alice") // the slow kind of rejection
	if took := fail("nosuchuser"); took < slow {
		t.Fatalf("a quick rejection answered in %v after a slow one took %v", took, slow)
	}
	// A backend that is slow to fail (451) says nothing about passwords
	// and does not raise the padding.
	ts.auth.delay["bob"] = 2 * slow
	ts.auth.err = authn.Unavailable("timeout", nil)
	c := ts.dial()
	c.cmd("USER bob", 250)
	c.cmd("PASS bob-pw", 451)
	if got := ts.srv.failures.slowest(); got >= 2*slow {
		t.Fatalf("an unavailable backend raised the padding to %v", got)
	}
}

// Case 33: the password never appears in the log.
func TestPasswordNotLogged(t *testing.T) {
	ts := newTestServer(t, nil)
	const marker = "Zq9-marker-password-7Xw"
	c := ts.dial()
	c.cmd("USER alice", 250)
	c.cmd("PASS "+marker, 530)
	c.cmd("QUIT", 221)
	c = ts.dial()
	ts.auth.users["carol"] = marker
	c.cmd("USER carol", 250)
	c.cmd("PASS "+marker, 250)
	c.post("To: bob@example.test\r\n\r\nsecret body text\r\n", 250)
	c.cmd("QUIT", 221)
	waitFor(t, func() bool { return strings.Count(ts.logBuf.String(), "event=disconnect") == 2 })
	if log := ts.logBuf.String(); strings.Contains(log, marker) || strings.Contains(log, "secret body") {
		t.Fatalf("log leaks a password or body:\n%s", log)
	}
}

// Serve works on any net.Conn, here a net.Pipe with no IP address.
func TestServeOnPipe(t *testing.T) {
	ts := newTestServer(t, nil)
	server, clientEnd := net.Pipe()
	go ts.srv.Serve(context.Background(), server)
	c := &client{t: t, conn: clientEnd, r: newReader(clientEnd)}
	c.expect(220)
	c.login()
	c.post(simpleMessage, 250)
	c.cmd("QUIT", 221)
	if got := ts.del.messages(); len(got) != 1 || strings.Contains(got[0].msg, "from [") {
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
