package protocol

// The hostile-input catalogue (see hostile_test.go): the message text.

import (
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/message"
)

// Cases 17 and 44: SMTP-smuggling-style dot lines never end the text; the
// "commands" after them are text, and the message is refused at the real
// end.
func TestSmuggling(t *testing.T) {
	for _, fake := range []string{"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n"} {
		ts := newTestServer(t, nil)
		c := ts.dial()
		c.Login("alice", "alice-pw")
		c.Cmd("DATA", 354)
		c.Send("From: alice@example.test\r\nTo: bob@example.test\r\n\r\nbody" + fake + "USER mallory\r\nPASS x\r\nDATA\r\n")
		c.Send("From: alice@example.test\r\nTo: victim@example.test\r\n\r\nspoofed\r\n.\r\n")
		c.Expect(550)
		c.Cmd("NOOP", 250)
		if n := len(ts.del.Messages()); n != 0 {
			t.Fatalf("%q: %d messages delivered", fake, n)
		}
		if ts.auth.Count() != 1 {
			t.Fatalf("%q: smuggled PASS reached the backend", fake)
		}
	}
}

// Decision 6: text lines may end in a bare LF; they are normalised.
func TestBareLFInText(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw("From: alice@example.test\nTo: bob@example.test\n\nline one\nline two\r\n", 250)
	if got := ts.del.Messages()[0].Text; !strings.HasSuffix(got, "\n\nline one\nline two\n") || strings.Contains(got, "\r") {
		t.Fatalf("delivered %q", got)
	}
}

// Case 18 and bare CR: refused after the real end.
func TestNULAndBareCRInText(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, bad := range []string{"a\x00b\r\n", "a\rb\r\n"} {
		c := ts.dial()
		c.Login("alice", "alice-pw")
		c.PostRaw(simpleMessage+bad, 550)
	}
	ts.wantDelivered(0)
}

// Case 20: an empty message has no recipients.
func TestEmptyMessage(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw("", 550)
	ts.wantLog("reason=no-recipients")
}

// Case 44: an oversized message is read to its real end, then 550; what
// looked like commands inside it is never run.
func TestOversizedMessage(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxMessage = 10_000 })
	c := ts.login()
	c.Cmd("DATA", 354)
	c.Send(simpleMessage + strings.Repeat("0123456789abcdef\r\n", 1000) + ".\nHELP\r\n")
	c.Send(".\r\n")
	c.Expect(550)
	c.Cmd("NOOP", 250)
	ts.wantDelivered(0) // not the oversized message
}

// Case 45: a header block over the limit is refused.
func TestHeaderBomb(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw(simpleMessage[:len(simpleMessage)-len("\r\nHello Bob.\r\n")]+strings.Repeat("X: y\r\n", 30_000)+"\r\nbody\r\n", 550)
	ts.wantLog("reason=header-too-big")
}

// Case 46: one recipient over the limit refuses the whole message.
func TestTooManyRecipients(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxRecipients = 3 })
	c := ts.login()
	c.PostRaw("To: a@x.test, b@x.test, c@x.test, d@x.test\r\n\r\nhi\r\n", 550)
	c = ts.login()
	c.PostRaw("To: a@x.test, b@x.test, c@x.test\r\n\r\nhi\r\n", 250)
	if got := ts.del.Messages(); len(got) != 1 || len(got[0].Envelope.Recipients) != 3 {
		t.Fatalf("deliveries %+v", got)
	}
}

// Case 47: a mail loop is refused.
func TestMailLoop(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw(strings.Repeat("Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n", 51)+simpleMessage, 550)
}

// Cases 34 and 38, and the envelope: recipients come from To/Cc/Bcc, Bcc
// is not delivered, the envelope sender is the authenticated address.
func TestRecipientsAndBcc(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw("From: alice@example.test\r\nTo: Bob <bob@example.test>\r\nCc: carol@example.test\r\nBcc: dave@example.test\r\n\r\nhi\r\n", 250)
	got := ts.del.Messages()[0]
	if strings.Join(got.Envelope.Recipients, ",") != "bob@example.test,carol@example.test,dave@example.test" {
		t.Fatalf("recipients %v", got.Envelope.Recipients)
	}
	if strings.Contains(strings.ToLower(got.Text), "bcc:") || got.Envelope.Sender != "alice@example.test" {
		t.Fatalf("delivered %q from %q", got.Text, got.Envelope.Sender)
	}
	for _, h := range []string{"Received: ", "Date: ", "Message-ID: "} {
		if !strings.Contains(got.Text, h) {
			t.Fatalf("no %q added:\n%s", h, got.Text)
		}
	}

	c = ts.login()
	c.PostRaw("From: alice@example.test\r\nTo: -oQ/tmp/q@example.test\r\n\r\nhi\r\n", 550)
}

// Case 41: a forged From gets a truthful Sender (default policy) or is
// refused (reject policy); the envelope sender is the user's either way.
func TestSenderForgery(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw("From: ceo@example.test\r\nTo: bob@example.test\r\n\r\nwire money\r\n", 250)
	got := ts.del.Messages()[0]
	if !strings.Contains(got.Text, "Sender: alice@example.test\n") || got.Envelope.Sender != "alice@example.test" {
		t.Fatalf("delivered %q from %q", got.Text, got.Envelope.Sender)
	}

	ts = newTestServer(t, func(c *Config) { c.SenderPolicy = message.Reject })
	c = ts.login()
	c.PostRaw("From: ceo@example.test\r\nTo: bob@example.test\r\n\r\nwire money\r\n", 550)
	c = ts.login()
	c.PostRaw("To: bob@example.test\r\n\r\nno From at all\r\n", 250)
	if got := ts.del.Messages()[0].Text; !strings.Contains(got, "From: alice@example.test\n") {
		t.Fatalf("no From added: %q", got)
	}
}

// A message larger than the memory threshold is staged in a file and
// delivered intact.
func TestLargeMessageSpills(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MemoryThreshold = 4096 })
	c := ts.login()
	line := strings.Repeat("x", 70)
	c.PostRaw(simpleMessage+strings.Repeat(line+"\r\n", 20_000), 250)
	got := ts.del.Messages()[0].Text
	if n := strings.Count(got, line+"\n"); n != 20_000 {
		t.Fatalf("%d body lines delivered, want 20000", n)
	}
}

// Free space is checked before 354 (Postfix queue_minfree).
func TestLowStagingSpace(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxMessage = 1 << 60 })
	c := ts.login()
	c.Cmd("DATA", 451)
	c.Cmd("NOOP", 451)
}
