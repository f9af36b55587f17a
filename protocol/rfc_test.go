package protocol

// One test per rule of RFC 1204 §2.3 (and §2.1, §2.2, §3.3), in the RFC's
// order. The comment above each quotes the sentence it checks.

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
)

// §2.2: "220 Message Posting Service Ready." — and every reply is
// "NNN text<CRLF>" (client.Line checks the CRLF).
func TestGreeting(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dialRaw()
	l := c.Expect(220)
	if !strings.Contains(l, "Message Posting Service Ready.") || !strings.Contains(l, "mpp.example.test") {
		t.Fatalf("greeting %q", l)
	}
}

// The table of legal commands is §2.3's conditions and nothing more.
func TestLegalTableIsRFC1204(t *testing.T) {
	want := map[state][]string{
		stateStart:  {"USER"},         // "when the session ... has just started"
		stateUser:   {"PASS"},         // "right after a USER command that gets the reply code 250"
		stateAuthed: {"DATA"},         // "right after a PASS command that gets the reply code 250"
		stateSent:   {"DATA", "USER"}, // "right after a message text ... has been successfully submitted"
		stateDone:   nil,              // nothing but NOOP and QUIT
	}
	for st, verbs := range want {
		var got []string
		for _, v := range []string{"DATA", "PASS", "USER"} {
			if legal[st][v] {
				got = append(got, v)
			}
		}
		if !reflect.DeepEqual(got, verbs) {
			t.Errorf("state %v: legal %v, want %v", st, got, verbs)
		}
	}
}

// §2.3 USER: "can only be used ... when the session with the message
// posting server has just started".
func TestUserAtStart(t *testing.T) {
	c := newTestServer(t, nil).dial()
	c.Cmd("USER alice", 250)
}

// §2.3 USER: "... right after a message text ... has been successfully
// submitted".
func TestUserAfterMessage(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw(simpleMessage, 250)
	c.Cmd("USER bob", 250)
	c.Cmd("PASS bob-pw", 250)
	c.PostRaw("From: bob@example.test\r\nTo: alice@example.test\r\n\r\nHi.\r\n", 250)
	got := ts.del.Messages()
	if len(got) != 2 || got[0].Envelope.Sender != "alice@example.test" || got[1].Envelope.Sender != "bob@example.test" {
		t.Fatalf("deliveries %+v", got)
	}
}

// §2.3 USER: "... right after a USER command that gets the reply code 501".
func TestUserAfterUser501(t *testing.T) {
	c := newTestServer(t, nil).dial()
	c.Cmd("USER -alice", 501)
	c.Cmd("USER alice", 250)
}

// §2.3 USER: "503 The USER command has been used under an inappropriate
// condition" — after USER 250, after PASS 250, after PASS 530.
func TestUserOutOfSequence(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("USER alice", 250)
	c.Cmd("USER bob", 503)
	c.Cmd("PASS alice-pw", 250) // still alice: the refused USER changed nothing
	c.Cmd("USER bob", 503)
	c.PostRaw(simpleMessage, 250)
	if got := ts.del.Messages(); len(got) != 1 || got[0].Envelope.Login != "alice" {
		t.Fatalf("deliveries %+v", got)
	}

	c = ts.dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS wrong", 530)
	c.Cmd("USER alice", 503)
}

// §2.3 USER: "It is recommended that the message posting server should
// return 250 even if the username is not recognized ..., as long as the
// username is syntactically correct."
func TestUserUnknownStill250(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, u := range []string{"nosuchuser", "root", "_svc", "a.b-c"} {
		c := ts.dial()
		c.Cmd("USER "+u, 250)
		c.Cmd("PASS whatever", 530)
	}
	if n := ts.auth.Count(); n != 4 {
		t.Fatalf("backend asked %d times", n)
	}
}

// §2.3 USER: "501 Syntax error detected in the username argument."
func TestUserSyntax(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxErrors = 100 })
	c := ts.dial()
	for _, line := range []string{
		"USER",             // no argument
		"USER ",            // empty
		"USER  alice",      // leading space
		"USER -root",       // option-like
		"USER al\x00ice",   // NUL
		"USER al\tice",     // control byte
		"USER a\rPASS b",   // bare CR never splits a line
		"USER Alice",       // default grammar is lower case
		"USER 0day",        // must not start with a digit
		"USER caf\xc3\xa9", // non-ASCII
		"USER " + strings.Repeat("a", 33),
		"USER *)(uid=*",
		"USER\talice",
	} {
		c.Cmd(line, 501)
	}
	c.Cmd("USER alice", 250)
	if n := ts.auth.Count(); n != 0 {
		t.Fatalf("a user name reached the backend during syntax checks (%d calls)", n)
	}
}

// §2.3 PASS: "can only be used ... right after a USER command that gets the
// reply code 250; right after a PASS command that gets the reply code 501."
func TestPassConditions(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS", 501)
	c.Cmd("PASS alice-pw", 250)
}

// §2.3 PASS: "503 The PASS command has been used under an inappropriate
// condition" — before USER, after PASS 250, after PASS 530; the backend is
// not asked.
func TestPassOutOfSequence(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("PASS alice-pw", 503)
	if ts.auth.Count() != 0 {
		t.Fatal("PASS before USER reached the backend")
	}
	c.Cmd("USER alice", 250)
	c.Cmd("PASS alice-pw", 250)
	c.Cmd("PASS alice-pw", 503)

	c = ts.dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS wrong", 530)
	c.Cmd("PASS alice-pw", 503) // one guess per connection
	if n := ts.auth.Count(); n != 2 {
		t.Fatalf("backend asked %d times, want 2", n)
	}
}

// §2.3 PASS: "250 The password has been accepted and verified"; "530 The
// password provided is not the one associated with the username".
// Unknown users and wrong passwords get the same reply.
func TestPassResults(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("USER alice", 250)
	ok := c.Cmd("PASS alice-pw", 250)

	c = ts.dial()
	c.Cmd("USER alice", 250)
	wrong := c.Cmd("PASS nope", 530)

	c = ts.dial()
	c.Cmd("USER nosuch", 250)
	unknown := c.Cmd("PASS nope", 530)
	if wrong != unknown {
		t.Fatalf("wrong password %q and unknown user %q differ", wrong, unknown)
	}
	if ok == wrong {
		t.Fatal("success and failure look alike")
	}
	if ts.auth.Requests()[0].Client != "127.0.0.1" || ts.auth.Requests()[0].User != "alice" {
		t.Fatalf("backend saw %v", ts.auth.Requests()[0])
	}
}

// §2.3 PASS: "451 Internal error has occurred" — a backend that cannot
// decide is never a wrong password.
func TestPassBackendUnavailable(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.auth.SetErr(authn.Unavailable("timeout", nil))
	c := ts.dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS alice-pw", 451)
	c.Cmd("DATA", 503)
	c.Cmd("NOOP", 451) // "Internal error has occurred ... during the current session"
	c.Cmd("QUIT", 221)

	ts.auth.SetErr(context.DeadlineExceeded) // unclassified: unavailable, not 530
	c = ts.dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS alice-pw", 451)
}

// §2.3 PASS: "501 Syntax error detected in the password argument."
func TestPassSyntax(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxErrors = 100 })
	c := ts.dial()
	c.Cmd("USER alice", 250)
	for _, line := range []string{"PASS", "PASS ", "PASS a\x00b", "PASS a\rb", "PASS\talice-pw", "PASS " + strings.Repeat("x", 513)} {
		c.Cmd(line, 501)
	}
	if ts.auth.Count() != 0 {
		t.Fatal("a malformed password reached the backend")
	}
	// Spaces, tabs and UTF-8 are password bytes like any other.
	c.Cmd("PASS  spaced\tpass wörd", 530)
	if got := ts.auth.Requests()[0].Password; got != " spaced\tpass wörd" {
		t.Fatalf("backend got password %q", got)
	}
}

// §2.3 DATA: "can only be used ... right after a PASS command that gets the
// reply code 250; right after a mail message text has been successfully
// accepted".
func TestDataConditions(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw(simpleMessage, 250)
	c.PostRaw(simpleMessage, 250)
	ts.wantDelivered(2)
}

// §2.3 DATA: "503 The DATA command has been used under an inappropriate
// condition" — at start, after USER, after PASS 530, after a new USER
// following a message, after a message that failed.
func TestDataOutOfSequence(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.MaxErrors = 100 })
	c := ts.dial()
	c.Cmd("DATA", 503)
	c.Cmd("USER alice", 250)
	c.Cmd("DATA", 503)
	c.Cmd("PASS wrong", 530)
	c.Cmd("DATA", 503)

	c = ts.login()
	c.PostRaw(simpleMessage, 250)
	c.Cmd("USER bob", 250)
	c.Cmd("DATA", 503) // nothing goes out as alice or bob before bob's PASS

	ts.del.SetErr(delivery.Temporary("test", nil))
	c = ts.login()
	c.PostRaw(simpleMessage, 451)
	c.Cmd("DATA", 503)
	c.Cmd("USER alice", 503)
	ts.wantDelivered(1)
}

// §2.3 DATA: "No argument is expected."
func TestDataArgument(t *testing.T) {
	c := newTestServer(t, nil).login()
	c.Cmd("DATA now", 501)
	c.PostRaw(simpleMessage, 250)
}

// §2.3 DATA: "354 ... ready to accept the mail message text"; the text ends
// with <CRLF>.<CRLF>; "250 The mail message text has been successfully
// queued"; "451 ... the mail message text has not been queued."
func TestDataResults(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.Cmd("DATA", 354)
	c.Send(simpleMessage)
	c.Send(".\r\n")
	c.Expect(250)
	if got := ts.del.Messages(); len(got) != 1 || !strings.HasSuffix(got[0].Text, "\n\nHello Bob.\n") {
		t.Fatalf("delivered %+v", got)
	}

	ts.del.SetErr(delivery.Temporary("exit 75", nil))
	c = ts.login()
	c.PostRaw(simpleMessage, 451)

	ts.del.SetErr(delivery.Permanent("exit 67", nil))
	c = ts.login()
	c.PostRaw(simpleMessage, 550) // decision 12: permanent errors are 550
}

// §2.3 DATA: "If the message text includes the <CRLF>.<CRLF> sequence, then
// the sequence is replaced by the <CRLF>..<CRLF> sequence ... The extra "."
// token will not be included in the final copy" — RFC 821 §4.5.2: one dot
// is removed from every line that starts with a dot.
func TestDotTransparency(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw(simpleMessage+"..\r\n...\r\n..foo\r\n.bar\r\nend\r\n", 250)
	body := ts.del.Messages()[0].Text
	if !strings.HasSuffix(body, "Hello Bob.\n.\n..\n.foo\nbar\nend\n") {
		t.Fatalf("body %q", body)
	}
}

// §2.3 NOOP: "cannot be used ... right after a DATA command that gets the
// reply code 354" — inside the text, NOOP (and QUIT, USER ...) are text.
func TestCommandsInsideTextAreText(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.login()
	c.PostRaw(simpleMessage+"NOOP\r\nQUIT\r\nUSER bob\r\n", 250)
	if body := ts.del.Messages()[0].Text; !strings.HasSuffix(body, "NOOP\nQUIT\nUSER bob\n") {
		t.Fatalf("body %q", body)
	}
	c.Cmd("NOOP", 250)
}

// §2.3 NOOP: "250 The message posting server has not encountered any
// internal error" in every state; "451 Internal error has occurred ...
// during the current session".
func TestNoopEveryState(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("NOOP", 250)
	c.Cmd("USER alice", 250)
	c.Cmd("NOOP", 250)
	c.Cmd("PASS alice-pw", 250) // NOOP did not break "right after USER"
	c.Cmd("NOOP", 250)
	c.PostRaw(simpleMessage, 250)
	c.Cmd("NOOP", 250)
	c.Cmd("NOOP now", 501)

	ts.del.SetErr(delivery.Temporary("test", nil))
	c.PostRaw(simpleMessage, 451)
	c.Cmd("NOOP", 451)
}

// §2.3 QUIT: "can be used under any condition ... should always return the
// reply code 221".
func TestQuitEveryState(t *testing.T) {
	ts := newTestServer(t, nil)
	steps := [][]string{
		{},
		{"USER alice"},
		{"USER alice", "PASS alice-pw"},
		{"USER alice", "PASS wrong"},
	}
	codes := [][]int{{}, {250}, {250, 250}, {250, 530}}
	for i, s := range steps {
		c := ts.dial()
		for j, line := range s {
			c.Cmd(line, codes[i][j])
		}
		c.Cmd("QUIT", 221)
		c.ExpectClosed()
	}
	c := ts.dial()
	c.Cmd("quit now", 501) // the choice: an argument is a syntax error
	c.Cmd("quit", 221)
}

// §2.1: commands are case-insensitive, as in SMTP and FTP.
func TestCaseInsensitive(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	c.Cmd("user alice", 250)
	c.Cmd("Pass alice-pw", 250)
	c.Cmd("dAtA", 354)
	c.Send(simpleMessage + ".\r\n")
	c.Expect(250)
	c.Cmd("noop", 250)
	c.Cmd("qUiT", 221)
}

// Unknown commands: "500 Command unrecognized."
func TestUnknownCommand(t *testing.T) {
	c := newTestServer(t, nil).dial()
	c.Cmd("HELO example", 500)
	c.Cmd("", 500)
	c.Cmd("USER alice", 250)
}

// §3.3: "The message posting server should terminate a session if the
// client has been idle for too long" (decision 13: 451, then close).
func TestIdleTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Limits.IdleTimeout = 200 * time.Millisecond })
	c := ts.dial()
	c.Cmd("USER alice", 250)
	start := time.Now()
	c.Expect(451)
	c.ExpectClosed()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle client kept for %v", d)
	}
	ts.wantLog("event=timeout")
}
