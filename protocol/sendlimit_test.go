package protocol

import (
	"strings"
	"sync"
	"testing"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/sendlimit"
)

// A login past its message limit gets 451 with a text that says so, the
// message is not delivered, the first refusal is logged at warn and later
// ones at debug, each is an event for the metrics, and another login is
// unaffected.
func TestSendLimitMessages(t *testing.T) {
	ts := newTestServer(t, nil)
	lim := sendlimit.New(sendlimit.Config{Default: sendlimit.Limits{MessagesPerHour: 2}}, nil)
	var mu sync.Mutex
	var refusals []string
	dial := withServer(t, ts, func(s *Server) {
		s.SendLimit = lim
		s.Events = func(ev Event) {
			if ev.Kind == EventSendLimit {
				mu.Lock()
				refusals = append(refusals, ev.Result)
				mu.Unlock()
			}
		}
	})
	c := dial()
	c.Login("alice", "alice-pw")
	c.PostRaw(simpleMessage, 250)
	c.PostRaw(simpleMessage, 250)
	got := c.PostRaw(simpleMessage, 451)
	if !strings.Contains(got, "Sending limit reached (2 messages an hour)") {
		t.Errorf("reply %q", got)
	}
	c.Cmd("DATA", 503) // the session is done, as after any 451
	c = dial()
	c.Login("alice", "alice-pw")
	c.PostRaw(simpleMessage, 451)

	c = dial()
	c.Cmd("USER bob", 250)
	c.Cmd("PASS bob-pw", 250)
	c.PostRaw(simpleMessage, 250)

	if n := len(ts.del.Messages()); n != 3 {
		t.Errorf("%d messages delivered, want 3 (2 from alice, 1 from bob)", n)
	}
	mu.Lock()
	if strings.Join(refusals, " ") != "messages_per_hour messages_per_hour" {
		t.Errorf("send-limit events %v", refusals)
	}
	mu.Unlock()
	logs := ts.logBuf.String()
	if strings.Count(logs, "level=WARN msg=\"sending limit reached") != 1 ||
		strings.Count(logs, "level=DEBUG msg=\"sending limit reached") != 1 ||
		!strings.Contains(logs, "event=send-limit login=alice limit=messages_per_hour max=2 count=2 recipients=1") {
		t.Errorf("logs:\n%s", logs)
	}
}

// The recipient limit counts recipients after Bcc: and duplicates are
// sorted out; a message that alone is over it gets 550; a failed delivery
// does not count.
func TestSendLimitRecipients(t *testing.T) {
	ts := newTestServer(t, nil)
	lim := sendlimit.New(sendlimit.Config{Default: sendlimit.Limits{RecipientsPerHour: 3}}, nil)
	dial := withServer(t, ts, func(s *Server) { s.SendLimit = lim })
	three := "From: alice@example.test\r\nTo: a@example.test, b@example.test\r\nBcc: c@example.test, a@example.test\r\n\r\nHi.\r\n"
	four := "From: alice@example.test\r\nTo: a@example.test, b@example.test, c@example.test, d@example.test\r\n\r\nHi.\r\n"

	c := dial()
	c.Login("alice", "alice-pw")
	got := c.PostRaw(four, 550)
	if !strings.Contains(got, "more recipients than the sending limit allows (3 recipients an hour)") {
		t.Errorf("reply %q", got)
	}

	ts.del.SetErr(delivery.Temporary("test", nil))
	c = dial()
	c.Login("alice", "alice-pw")
	c.PostRaw(three, 451)
	if _, r, _ := lim.Counts("alice"); r != 0 {
		t.Fatalf("a failed delivery counts %d recipients", r)
	}
	ts.del.SetErr(nil)

	c = dial()
	c.Login("alice", "alice-pw")
	c.PostRaw(three, 250)
	got = c.PostRaw(simpleMessage, 451)
	if !strings.Contains(got, "(3 recipients an hour)") {
		t.Errorf("reply %q", got)
	}
	if n := len(ts.del.Messages()); n != 1 {
		t.Errorf("%d messages delivered, want 1", n)
	}
	if !strings.Contains(ts.logBuf.String(), "event=rejected reason=send-limit") {
		t.Errorf("no rejected line for the message over the limit:\n%s", ts.logBuf)
	}
}
