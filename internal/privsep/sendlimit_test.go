package privsep

import (
	"context"
	"testing"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/sendlimit"
)

// TestSendLimit plays an engine that skips its own sending-limit check
// (the Client checks nothing): the monitor counts only delivered messages,
// giving back the count of a failed delivery, and refuses a message past
// the login's limit, in any session of that login, without calling the
// backend. The refusal is logged as a security event, comes back to the
// engine as a temporary failure, and the monitor carries on. Once the
// engine is gone, the monitor's sweeper sums up the refusals and stops.
func TestSendLimit(t *testing.T) {
	var lim *sendlimit.Limiter
	r := newRig(t, func(m *Monitor) {
		lim = sendlimit.New(sendlimit.Config{
			Default: sendlimit.Limits{MessagesPerHour: 2},
			Users:   map[string]sendlimit.Limits{"Bob": {RecipientsPerHour: 2}},
		}, m.Log)
		m.SendLimit = lim
	})
	cl, _ := r.client(t)
	ctx := context.Background()
	loginAs := func(user, password, session string) {
		t.Helper()
		if _, err := cl.Authenticate(ctx, authn.Request{User: user, Password: password, Client: "192.0.2.7", Session: session}); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func(session, sender string, recipients ...string) error {
		t.Helper()
		return cl.Deliver(ctx, delivery.Envelope{Sender: sender, Recipients: recipients, Session: session}, stagedFile(t, msgText))
	}
	alice := func() int {
		m, _, _ := lim.Counts("alice")
		return m
	}
	loginAs("alice", "secret", "s1")

	// Delivered: counts. Failed, temporarily or for good: given back.
	if err := deliver("s1", "alice@example.org", "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	if alice() != 1 {
		t.Fatalf("after one delivery the monitor counts %d messages", alice())
	}
	r.rec.setResult(delivery.Temporary("timeout", nil))
	if err := deliver("s1", "alice@example.org", "bob@example.org"); delivery.Reason(err) != "timeout" {
		t.Fatalf("temporary failure came back as %v", err)
	}
	r.rec.setResult(delivery.Permanent("exit 67", nil))
	if err := deliver("s1", "alice@example.org", "bob@example.org"); !delivery.IsPermanent(err) {
		t.Fatalf("permanent failure came back as %v", err)
	}
	if alice() != 1 {
		t.Fatalf("failed deliveries were not given back: the monitor counts %d messages", alice())
	}
	r.rec.setResult(nil)
	if err := deliver("s1", "alice@example.org", "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	backend := r.rec.count() // 4: two delivered, two failed

	// The third delivered message of the hour is refused, in another
	// session of alice's too.
	loginAs("alice", "secret", "s2")
	for _, session := range []string{"s1", "s2"} {
		err := deliver(session, "alice@example.org", "bob@example.org")
		if err == nil || delivery.IsPermanent(err) || delivery.Reason(err) != "refused" {
			t.Fatalf("%s: past the limit: %v, want a temporary refusal", session, err)
		}
	}
	if !logHas(r.logs.String(), "level=WARN", "event=privsep-refused", "request=deliver", "reason=send-limit",
		"session=s2", "login=alice", "limit=messages_per_hour", "max=2", "count=2", "recipients=1") {
		t.Fatalf("the refusal is not logged:\n%s", r.logs)
	}
	if r.rec.count() != backend || alice() != 2 {
		t.Fatalf("the backend saw %d deliveries, want %d; the monitor counts %d messages, want 2", r.rec.count(), backend, alice())
	}
	r.stillServing()

	// bob has limits of his own (the login's case does not matter), and
	// alice's count is not his.
	loginAs("bob", "hunter2", "s3")
	err := deliver("s3", "bob@example.org", "a@example.org", "b@example.org", "c@example.org")
	if delivery.Reason(err) != "refused" {
		t.Fatalf("3 recipients with a limit of 2: %v", err)
	}
	if !logHas(r.logs.String(), "reason=send-limit", "login=bob", "limit=recipients_per_hour", "max=2", "recipients=3") {
		t.Fatalf("bob's refusal is not logged:\n%s", r.logs)
	}
	if err := deliver("s3", "bob@example.org", "a@example.org", "b@example.org"); err != nil {
		t.Fatalf("2 recipients with a limit of 2: %v", err)
	}
	if r.rec.count() != backend+1 {
		t.Fatalf("the backend saw %d deliveries, want %d", r.rec.count(), backend+1)
	}

	// Serve's end stops the sweeper, which sums up the open windows.
	r.engine.Close()
	if err := r.waitServe(); err != nil {
		t.Fatal(err)
	}
	if !logHas(r.logs.String(), "event=send-limit-summary", "login=alice", "limit=messages_per_hour", "refused_messages=2") {
		t.Fatalf("no summary of alice's refusals when the monitor stopped:\n%s", r.logs)
	}
}
