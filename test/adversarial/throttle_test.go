package adversarial

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testharness"
)

// throttleConfig makes loopback untrusted (so the throttle sees the test's
// clients) with short penalties and small limits.
const throttleConfig = `
trusted_networks = []
[throttle]
penalties = ["50ms", "150ms"]
window = "1m"
max_failures_per_client = 3
max_failures_per_network = 5
`

// guess makes one login attempt from a loopback source address and
// returns the reply to PASS (or to the greeting, when the connection is
// refused) and how long PASS took.
func guess(t *testing.T, d *daemon, from, user, password string) (string, time.Duration) {
	t.Helper()
	c := testharness.Dial(t, d.Addr(), from)
	_, l, err := c.ReadReply()
	if err != nil {
		t.Fatalf("greeting from %s: %v", from, err)
	}
	if !strings.HasPrefix(l, "220") {
		if !c.Closed() {
			t.Fatalf("refused connection from %s left open", from)
		}
		return l, 0
	}
	c.Send("USER " + user + "\r\n")
	c.Expect(250)
	start := time.Now()
	c.Send("PASS " + password + "\r\n")
	_, l, err = c.ReadReply()
	if err != nil {
		t.Fatalf("PASS from %s: %v", from, err)
	}
	took := time.Since(start)
	c.Send("QUIT\r\n")
	return l, took
}

// Catalogue cases 30 and 31: failures from one address earn a
// growing delay before 530, a repeated password does not count, and past
// the limit the address, then its /24, is refused with 451 at connect.
// Another /24 is not affected; a right password still works for others.
func TestThrottle(t *testing.T) {
	d := startDaemon(t, throttleConfig)

	l, took := guess(t, d, "127.0.0.2", "alice", "wrong-1")
	if !strings.HasPrefix(l, "530") || took < 50*time.Millisecond {
		t.Fatalf("first failure: %q after %v", l, took)
	}
	l, took = guess(t, d, "127.0.0.2", "alice", "wrong-2")
	if !strings.HasPrefix(l, "530") || took < 150*time.Millisecond {
		t.Fatalf("second failure: %q after %v", l, took)
	}
	for i := 0; i < 4; i++ { // a client repeating itself: not counted
		if l, _ := guess(t, d, "127.0.0.2", "alice", "wrong-2"); !strings.HasPrefix(l, "530") {
			t.Fatalf("repeat %d: %q", i, l)
		}
	}
	guess(t, d, "127.0.0.2", "bob", "wrong-3") // third failure: blocked
	if l, _ := guess(t, d, "127.0.0.2", "alice", "alice-adv-pw"); l != "451 Too many failed logins, try again later" {
		t.Fatalf("blocked address got %q", l)
	}
	// The right password from a neighbour works (no per-user lockout).
	if l, _ := guess(t, d, "127.0.0.3", "alice", "alice-adv-pw"); !strings.HasPrefix(l, "250") {
		t.Fatalf("neighbour's login: %q", l)
	}
	// Two more failures from the /24 (5 in all) block the network.
	guess(t, d, "127.0.0.3", "alice", "wrong-4")
	guess(t, d, "127.0.0.4", "alice", "wrong-5")
	if l, _ := guess(t, d, "127.0.0.9", "alice", "alice-adv-pw"); !strings.HasPrefix(l, "451") {
		t.Fatalf("address in a blocked /24 got %q", l)
	}
	if l, _ := guess(t, d, "127.0.1.2", "alice", "alice-adv-pw"); !strings.HasPrefix(l, "250") {
		t.Fatalf("another /24 got %q", l)
	}
	log := d.Log()
	for _, want := range []string{"event=throttle-block source=address client=127.0.0.2", "event=throttle-block source=network client=127.0.0.0",
		`msg="session refused" client=127.0.0.2 reason=throttled`, `msg="session refused" client=127.0.0.9 reason=throttled`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := strings.Count(log, "event=auth-failed"); n != 9 {
		t.Errorf("%d auth-failed lines, want one per failed login (9)", n)
	}
}

// Trusted networks (loopback by default) are exempt: many failures, no
// penalty, no block.
func TestThrottleTrustedExempt(t *testing.T) {
	d := startDaemon(t, `
[throttle]
penalties = ["1s"]
max_failures_per_client = 2
`)
	for i := 0; i < 5; i++ {
		if l, _ := guess(t, d, "127.0.0.2", "alice", fmt.Sprint("wrong-", i)); !strings.HasPrefix(l, "530") {
			t.Fatalf("trusted client, failure %d: %q", i, l)
		}
	}
	d.WaitLogCount(0, "event=auth-failed", 5)
	log := d.Log()
	if n := strings.Count(log, "penalty=0s"); n != 5 || strings.Contains(log, "throttle-block") {
		t.Fatalf("trusted client penalised (%d of 5 without penalty) or blocked:\n%s", n, log)
	}
}
