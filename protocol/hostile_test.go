package protocol

// The engine's share of the hostile-input catalogue in
// docs/hostile-inputs.md; each test names its case number.
//
// This file: commands; hostile_text_test.go has the message text, and
// hostile_conn_test.go the connection (deadlines, clients gone, shutdown).

import (
	"io"
	"strings"
	"testing"
	"time"
)

// Case 8: each malformed command counts as an error; the third ends the
// session with 451.
func TestErrorLimit(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("FOO", 500)
	c.Cmd("USER", 501)
	c.Cmd("DATA", 503)
	c.Expect(451)
	c.ExpectClosed()
	ts.wantLog("verb=other", "event=error-limit")
}

// Case 8: an unknown verb is logged only when it is a listed word, so
// junk cannot forge a log line.
func TestUnknownVerbLoggedShort(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("ABCDEFGHIJ\x01 client=6.6.6.6", 500)
	c.Cmd("EHLO client.example.test", 500)
	log := ts.logBuf.String()
	if strings.Contains(log, "ABC") || strings.Contains(log, "client=6.6.6.6") {
		t.Fatalf("log shows too much of the verb:\n%s", log)
	}
	if !strings.Contains(log, "verb=other") || !strings.Contains(log, "verb=EHLO") {
		t.Fatalf("log does not name the verbs as it should:\n%s", log)
	}
}

// Case 8: a client out of step may put its password where a verb belongs.
// Whatever the shape of the line, and whether PASS is legal at that point
// or not, no byte of the password reaches the log.
func TestPasswordNeverLogged(t *testing.T) {
	// Two passwords: one of bytes the log never otherwise holds, one of
	// letters alone (which a rule "log letters only" would let through).
	passwords := []string{"~^`|~^`|", "qjxzkwqjxzkw"}
	shapes := []string{
		"PASS:%s",       // a colon for the space
		"PASS%s",        // no separator at all
		"PASS\t%s",      // a tab
		"PASS\x00%s",    // a NUL
		"PASS\x7f%s",    // a DEL
		" PASS %s",      // a leading space: the verb is empty
		"PASS  %s",      // two spaces
		"%s",            // the password alone on a line
		"%s PASS",       // the password first
		"pass:%s",       // lower case
		"PAS %s",        // a misspelt verb
		"PASSWORD %s",   // a longer verb
		"PASS %s\x00",   // a NUL after the password
		"PASS %s\rmore", // a CR inside
		"XPASS%s",       // junk before the verb
		"PASS=%s",       // another separator
		"AUTH PLAIN %s", // an SMTP habit
		"GET /?pw=%s HTTP/1.1",
	}
	for _, pw := range passwords {
		for _, shape := range shapes {
			line := strings.Replace(shape, "%s", pw, 1)
			for _, afterUser := range []bool{false, true} {
				ts := newTestServer(t, nil)
				c := ts.dial()
				if afterUser {
					c.Cmd("USER alice", 250)
				}
				c.Send(line + "\r\n")
				reply := c.Line()
				if !strings.HasPrefix(reply, "5") {
					t.Errorf("%q: reply %q, want a refusal", line, reply)
				}
				// Each line is logged before its reply is sent.
				log := ts.logBuf.String()
				if leaked(log, pw) {
					t.Errorf("%q (after USER %v): the log holds bytes of the password:\n%s", line, afterUser, log)
				}
			}
		}
	}
}

// leaked reports whether log holds a byte of pw: for a password of
// punctuation any one of its bytes, for one of letters any two of its
// bytes in a row (single letters are everywhere in a log), in any case.
func leaked(log, pw string) bool {
	upper := strings.ToUpper(log)
	if strings.Trim(pw, "abcdefghijklmnopqrstuvwxyz") == "" {
		for i := 0; i+2 <= len(pw); i++ {
			if strings.Contains(upper, strings.ToUpper(pw[i:i+2])) {
				return true
			}
		}
		return false
	}
	return strings.ContainsAny(log, pw)
}

// Case 9: HTTP verbs on the MPP port get 500 and the connection closes;
// a TLS handshake is closed without a word.
func TestCrossProtocol(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, req := range []string{"GET / HTTP/1.1", "POST /x HTTP/1.1", "CONNECT host:443 HTTP/1.1"} {
		c := ts.dial()
		c.Cmd(req, 500)
		c.ExpectClosed()
	}
	c := ts.dial()
	c.Send("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n")
	c.ExpectClosed()
	ts.wantLog("event=wrong-protocol")
}

// Case 11: everything in one write with a wrong password: replies in
// order, the body lines are errors, nothing is delivered.
func TestPipelinedWrongPassword(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Send("USER alice\r\nPASS wrong\r\nDATA\r\n" + simpleMessage + ".\r\nQUIT\r\n")
	c.Expect(250)
	c.Expect(530)
	c.Expect(503) // DATA
	c.Expect(500) // "From: ..." is no command
	c.Expect(500) // "To: ..." reaches the error limit
	c.Expect(451)
	c.ExpectClosed()
	ts.wantDelivered(0) // nothing pipelined after a failed login
}

// Pipelined commands with a right password are all answered, in order.
func TestPipelinedSession(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Send("USER alice\r\nPASS alice-pw\r\nDATA\r\n" + simpleMessage + ".\r\nDATA\r\n" + simpleMessage + ".\r\nQUIT\r\n")
	for _, code := range []int{250, 250, 354, 250, 354, 250, 221} {
		c.Expect(code)
	}
	ts.wantDelivered(2)
}

// Case 12: NOOPs past the junk limit count as errors.
func TestJunkLimit(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxJunk = 5 })
	c := ts.dial()
	c.Send(strings.Repeat("NOOP\r\n", 100))
	for i := 0; i < 5; i++ {
		c.Expect(250)
	}
	for i := 0; i < 3; i++ {
		c.Expect(503)
	}
	c.Expect(451)
	c.ExpectClosed()
	ts.wantLog("event=junk-limit")
}

// Case 14 (decision 5): a command may end in a bare LF.
func TestBareLFCommand(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Send("USER alice\n")
	c.Expect(250)
	c.Send("PASS alice-pw\n")
	c.Expect(250)
}

// Case 29 and the line limit: an over-long line gets 500 without a
// backend call and without losing step with the client.
func TestLongLine(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS "+strings.Repeat("x", 100_000), 500)
	c.Cmd("PASS alice-pw", 250)
	if n := ts.auth.Count(); n != 1 {
		t.Fatalf("backend asked %d times", n)
	}
	// Exactly at the limit (1000 octets with CRLF) is still a line.
	c2 := ts.dial()
	c2.Cmd("NOOP "+strings.Repeat("x", 1000-len("NOOP \r\n")), 501)
	c2.Cmd("NOOP "+strings.Repeat("x", 1000-len("NOOP \r\n")+1), 500)
}

// Case 43: an endless line is answered 500 at the limit's end... the line
// never ends, so the session ends at the idle timeout with memory bounded.
func TestEndlessLine(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.IdleTimeout = 300 * time.Millisecond })
	c := ts.dial()
	junk := strings.Repeat("A", 64<<10)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := io.WriteString(c.Conn, junk); err != nil {
			break // the server hung up
		}
	}
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, _ := io.ReadAll(c.Reader())
	if !strings.HasPrefix(string(rest), "451 ") {
		t.Fatalf("after an endless line got %q", rest)
	}
}

// Case 33: the password never appears in the log.
func TestPasswordNotLogged(t *testing.T) {
	ts := newTestServer(t, nil)
	const marker = "Zq9-marker-password-7Xw"
	c := ts.dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS "+marker, 530)
	c.Cmd("QUIT", 221)
	c = ts.dial()
	ts.auth.SetUser("carol", marker)
	c.Cmd("USER carol", 250)
	c.Cmd("PASS "+marker, 250)
	c.PostRaw("To: bob@example.test\r\n\r\nsecret body text\r\n", 250)
	c.Cmd("QUIT", 221)
	waitFor(t, func() bool { return strings.Count(ts.logBuf.String(), "event=disconnect") == 2 })
	if log := ts.logBuf.String(); strings.Contains(log, marker) || strings.Contains(log, "secret body") {
		t.Fatalf("log leaks a password or body:\n%s", log)
	}
}

// A PROXY protocol header reaching the engine (its client is not a load
// balancer the daemon takes headers from) closes the session without a
// reply, and is logged.
func TestProxyHeaderAtEngine(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Send("PROXY TCP4 192.0.2.7 192.0.2.1 40000 218\r\n")
	c.ExpectClosed()
	if !strings.Contains(ts.logBuf.String(), "event=proxy-refused") {
		t.Fatal("no proxy-refused log line")
	}
}
