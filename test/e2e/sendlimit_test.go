package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/testharness"
)

// TestSendLimitEndToEnd posts past the message limit and past the
// recipient limit through the built mppd with the development backends:
// the messages over a limit get 451 (550 for one that alone names more
// recipients than the limit) and are not in the maildir, the first refusal
// of a login is logged once at warn, the metrics count the refusals by
// limit, another user is unaffected, and the refusals are summed up when
// mppd stops.
func TestSendLimitEndToEnd(t *testing.T) {
	bob := testUser{name: "bob", password: "bob-e2e-password"}
	carol := testUser{name: "carol", password: "carol-e2e-password"}
	extra, root := devBackends(t, alice, bob, carol)
	m := testharness.Start(t, fmt.Sprintf(`
[metrics]
listen = %q

[limits]
messages_per_hour = 3
recipients_per_hour = 100

[limits.users.carol]
messages_per_hour = 100
recipients_per_hour = 4
`, testharness.AnyPort), extra)

	// alice: three messages pass, the fourth is refused, and so is one
	// on a new connection.
	c := login(t, m, alice)
	for i := 1; i <= 3; i++ {
		c.Post(fmt.Sprintf("To: a@example.test\nSubject: %d\n\nmessage %d\n", i, i), 250)
	}
	postRefused(t, c, "To: a@example.test\nSubject: 4\n\nmessage 4\n", 451, "Sending limit reached (3 messages an hour)")
	c.Close()
	c = login(t, m, alice)
	c.Post("To: a@example.test\nSubject: 5\n\nmessage 5\n", 451)
	c.Close()

	// bob, with the same default limits, is not held back by alice.
	c = login(t, m, bob)
	c.Post("To: b@example.test\nSubject: bob\n\nfrom bob\n", 250)
	c.Close()

	// carol's own limit: 4 recipients an hour.
	c = login(t, m, carol)
	c.Post("To: c1@example.test, c2@example.test\nBcc: c3@example.test\n\none\n", 250)
	postRefused(t, c, "To: c4@example.test, c5@example.test\n\ntwo\n", 451, "Sending limit reached (4 recipients an hour)")
	c.Close()
	c = login(t, m, carol)
	c.Post("To: c6@example.test\n\nthree\n", 250)
	postRefused(t, c, "To: c1@example.test, c2@example.test, c3@example.test, c4@example.test, c5@example.test\n\nfour\n", 550,
		"more recipients than the sending limit allows")
	c.Close()

	// Nothing past a limit reached a mailbox.
	for rcpt, want := range map[string]int{
		"a@example.test": 3, "b@example.test": 1,
		"c1@example.test": 1, "c2@example.test": 1, "c3@example.test": 1,
		"c4@example.test": 0, "c5@example.test": 0, "c6@example.test": 1,
	} {
		msgs := delivered(t, root, rcpt)
		if len(msgs) != want {
			t.Errorf("%s has %d messages, want %d", rcpt, len(msgs), want)
		}
		for _, msg := range msgs {
			if strings.Contains(msg, "message 4") || strings.Contains(msg, "message 5") || strings.Contains(msg, "two\n") {
				t.Errorf("%s got a refused message:\n%s", rcpt, msg)
			}
		}
	}

	log := m.Log()
	for login, want := range map[string]int{"alice": 1, "carol": 1, "bob": 0} {
		n := 0
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "event=send-limit ") && strings.Contains(line, "login="+login+" ") {
				n++
			}
		}
		if n != want {
			t.Errorf("%d warnings for %s's refusals, want %d", n, login, want)
		}
	}
	body := getMetrics(t, m.ListenAddr("metrics"))
	for _, w := range []string{
		`mppd_send_limit_refusals_total{limit="messages_per_hour"} 2`,
		`mppd_send_limit_refusals_total{limit="recipients_per_hour"} 2`,
		`mppd_send_limit_refusals_total{limit="recipients_per_day"} 0`,
	} {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %q", w)
		}
	}

	// The refusal windows still open are summed up when mppd stops.
	if code := m.Stop(); code != 0 {
		t.Errorf("mppd exited with %d", code)
	}
	log = m.Log()
	for _, want := range []string{
		"event=send-limit-summary login=alice limit=messages_per_hour",
		"refused_messages=2 refused_recipients=2",
		"event=send-limit-summary login=carol limit=recipients_per_hour",
		"refused_messages=1 refused_recipients=2",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", log)
	}
}

// postRefused posts text on c, wants code, and a reply that says why.
func postRefused(t *testing.T, c *testharness.Client, text string, code int, why string) {
	t.Helper()
	if got := c.Post(text, code); !strings.Contains(got, why) {
		t.Errorf("reply %q, want it to say %q", got, why)
	}
}
