package protocol

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
)

// Decision 4: a failed login takes at least the floor, whatever the reason;
// a successful one is not delayed.
func TestAuthFailureFloor(t *testing.T) {
	const floor = 150 * time.Millisecond
	ts := newTestServer(t, func(c *Config) { c.AuthFailureDelay = floor })
	c := ts.dial()
	c.Cmd("USER alice", 250)
	start := time.Now()
	c.Cmd("PASS wrong", 530)
	if took := time.Since(start); took < floor {
		t.Fatalf("failure answered in %v, floor %v", took, floor)
	}

	// With a floor far beyond the client's 10 s read deadline, a delayed
	// success would fail the read: no assertion on how fast a loaded
	// machine answers.
	ts = newTestServer(t, func(c *Config) { c.AuthFailureDelay = time.Hour })
	c = ts.dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS alice-pw", 250)
}

// Decision 4 with a backend that is slow on some rejections only (pam_unix
// sleeps after a wrong password, not after the right password of an
// expired account): once a slow rejection has been seen, a quick one is
// padded to the same time, so the quick 530 does not say "right password".
func TestAuthFailureFloorTracksSlowestRejection(t *testing.T) {
	const slow = 400 * time.Millisecond
	ts := newTestServer(t, func(c *Config) { c.AuthFailureDelay = 10 * time.Millisecond })
	ts.auth.SetDelay("alice", slow)
	fail := func(user string) time.Duration {
		c := ts.dial()
		c.Cmd("USER "+user, 250)
		start := time.Now()
		c.Cmd("PASS wrong", 530)
		return time.Since(start)
	}
	fail("alice") // the slow kind of rejection
	if took := fail("nosuchuser"); took < slow {
		t.Fatalf("a quick rejection answered in %v after a slow one took %v", took, slow)
	}
	// A backend that is slow to fail (451) says nothing about passwords
	// and does not raise the padding.
	ts.auth.SetDelay("bob", 2*slow)
	ts.auth.SetErr(authn.Unavailable("timeout", nil))
	c := ts.dial()
	c.Cmd("USER bob", 250)
	c.Cmd("PASS bob-pw", 451)
	if got := ts.srv.failures.slowest(); got >= 2*slow {
		t.Fatalf("an unavailable backend raised the padding to %v", got)
	}
}

// Decision 4: the floor holds whatever the reason of the failure,
// a name the backend refuses and a backend that is down included.
func TestAuthFailureFloorEveryReason(t *testing.T) {
	const floor = 100 * time.Millisecond
	for _, err := range []error{
		authn.Rejected("unknown-user", nil),
		authn.Rejected("bad-password", nil),
		authn.Rejected("locked", nil),
		authn.Rejected("bad-user-name", errors.New("the directory refuses this name")),
		authn.Unavailable("timeout", context.DeadlineExceeded),
		authn.Unavailable("busy", nil),
	} {
		ts := newTestServer(t, func(c *Config) { c.AuthFailureDelay = floor })
		ts.auth.SetErr(err)
		c := ts.dial()
		c.Cmd("USER alice", 250)
		start := time.Now()
		c.Send("PASS alice-pw\r\n")
		l := c.Line()
		if took := time.Since(start); took < floor {
			t.Errorf("%v: %q after %v, floor %v", err, l, took, floor)
		}
		want := "530"
		if !authn.IsBadCredentials(err) {
			want = "451"
		}
		if !strings.HasPrefix(l, want) {
			t.Errorf("%v: reply %q, want %s", err, l, want)
		}
	}
	// An identity the engine refuses is a failure too.
	ts := newTestServer(t, func(c *Config) { c.AuthFailureDelay = floor })
	ts.auth.AddressesOf = func(string) []string { return []string{"-bad"} }
	c := ts.dial()
	c.Cmd("USER alice", 250)
	start := time.Now()
	c.Send("PASS alice-pw\r\n")
	if l := c.Line(); !strings.HasPrefix(l, "451") || time.Since(start) < floor {
		t.Errorf("bad identity: %q after %v", l, time.Since(start))
	}
}

// failureClock keeps the slowest rejection of the last hour, capped: no
// number of quicker rejections pushes it out, and it is forgotten once
// the window has passed.
func TestFailureClock(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	c := failureClock{now: func() time.Time { return now }}
	if got := c.slowest(); got != 0 {
		t.Fatalf("zero clock: %v", got)
	}
	c.record(300 * time.Millisecond)
	c.record(100 * time.Millisecond)
	if got := c.slowest(); got != 300*time.Millisecond {
		t.Errorf("slowest = %v, want 300ms", got)
	}
	// Cache hits: ten thousand quick rejections right after.
	for range 10_000 {
		c.record(10 * time.Microsecond)
	}
	if got := c.slowest(); got != 300*time.Millisecond {
		t.Errorf("after quick rejections slowest = %v, want 300ms", got)
	}
	// Still remembered late in the window, with quick ones in between.
	for range 50 {
		now = now.Add(time.Minute)
		c.record(time.Millisecond)
	}
	if got := c.slowest(); got != 300*time.Millisecond {
		t.Errorf("50 minutes on slowest = %v, want 300ms", got)
	}
	// Forgotten once the window has passed.
	now = now.Add(failureWindow)
	c.record(20 * time.Millisecond)
	if got := c.slowest(); got != 20*time.Millisecond {
		t.Errorf("a window later slowest = %v, want 20ms", got)
	}
	c.record(time.Hour)
	if got := c.slowest(); got != maxFailurePadding {
		t.Errorf("slowest = %v, want the cap %v", got, maxFailurePadding)
	}
}
