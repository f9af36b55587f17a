package privsep

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

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

// failing is a deliverer that fails the messages to fail@example.org and
// delivers the others, taking a moment so that deliveries overlap.
type failing struct {
	mu        sync.Mutex
	delivered int
}

func (d *failing) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	time.Sleep(time.Millisecond)
	if env.Recipients[0] == "fail@example.org" {
		return delivery.Temporary("timeout", nil)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delivered++
	return nil
}

// TestSendLimitSoundEngine: an engine that checks the limits as the
// protocol engine does (reserve, deliver through the monitor, give the
// count back on failure), in eight sessions of one login at once, some of
// whose deliveries fail, is never refused by the monitor: concurrent and
// failed deliveries leave the monitor's count at or below the engine's.
// Exactly the limit is delivered, and the two counts end equal.
func TestSendLimitSoundEngine(t *testing.T) {
	const limit = 5
	cfg := sendlimit.Config{Default: sendlimit.Limits{MessagesPerHour: limit, RecipientsPerHour: 100}}
	backend := &failing{}
	var mon *sendlimit.Limiter
	r := newRig(t, func(m *Monitor) {
		mon = sendlimit.New(cfg, m.Log)
		m.SendLimit = mon
		m.Delivery = backend
	})
	engine := sendlimit.New(cfg, nil)
	cl, _ := r.client(t)
	ctx := context.Background()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var refusedByMonitor, refusedByEngine int
	for i := range 8 {
		session := fmt.Sprintf("s%d", i)
		if _, err := cl.Authenticate(ctx, authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: session}); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for n := range 6 {
				rcpt := "bob@example.org"
				if n == 0 && i%2 == 0 {
					rcpt = "fail@example.org"
				}
				res, ref := engine.Reserve("alice", 1)
				if ref != nil {
					mu.Lock()
					refusedByEngine++
					mu.Unlock()
					continue
				}
				err := cl.Deliver(ctx, delivery.Envelope{Sender: "alice@example.org", Recipients: []string{rcpt}, Session: session},
					stagedFile(t, msgText))
				if err != nil {
					res.Cancel()
				}
				if delivery.Reason(err) == "refused" {
					mu.Lock()
					refusedByMonitor++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if refusedByMonitor != 0 || strings.Contains(r.logs.String(), "reason=send-limit") {
		t.Fatalf("the monitor refused %d deliveries of a sound engine:\n%s", refusedByMonitor, r.logs)
	}
	em, _, _ := engine.Counts("alice")
	mm, _, _ := mon.Counts("alice")
	backend.mu.Lock()
	delivered := backend.delivered
	backend.mu.Unlock()
	if delivered != limit || em != limit || mm != limit {
		t.Fatalf("delivered %d, engine counts %d, monitor counts %d; want %d each", delivered, em, mm, limit)
	}
	if refusedByEngine == 0 {
		t.Fatal("the engine refused nothing: the test did not reach the limit")
	}
}
