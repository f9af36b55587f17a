package protocol

// Failure pacing: how long a failed login takes (decision 4).

import (
	"crypto/rand"
	"sync"
	"time"
)

// maxFailurePadding bounds how far the slowest recent failure can raise the
// time every failed login takes (see failureClock).
const maxFailurePadding = 5 * time.Second

// failureClock remembers how long the last few rejected logins took before
// any padding, so that every failed login can be padded to the slowest of
// them. A backend that is slow on some rejections and quick on others
// would otherwise tell the reasons apart: pam_unix sleeps about two seconds
// after a wrong password but not after the right password for an expired
// or locked account, so without this the quick 530 would say "right
// password". Only rejections are recorded: a backend that is down or slow
// to answer (451) says nothing about a password and must not slow every
// login down. It is safe for concurrent use; the zero value is ready.
type failureClock struct {
	mu   sync.Mutex
	last [16]time.Duration
	next int
}

// record notes a rejection that took d.
func (c *failureClock) record(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last[c.next] = d
	c.next = (c.next + 1) % len(c.last)
}

// slowest is the longest recent rejection, at most maxFailurePadding.
func (c *failureClock) slowest() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m time.Duration
	for _, d := range c.last {
		m = max(m, d)
	}
	return min(m, maxFailurePadding)
}

// padFailure makes every failed login take at least AuthFailureDelay, or
// the slowest recent rejection if that is longer (failureClock), plus up
// to 20% random extra, measured from the PASS command, so that the time a
// failure takes says nothing about why it failed (unknown user, wrong
// password, locked account, backend error). rejected says the backend
// refused the credentials; only such failures are timed. A zero
// AuthFailureDelay turns all of it off (tests).
func (s *session) padFailure(start time.Time, rejected bool) {
	floor := s.cfg.AuthFailureDelay
	if floor <= 0 {
		return
	}
	if rejected {
		s.srv.failures.record(time.Since(start))
	}
	floor = max(floor, s.srv.failures.slowest())
	var b [1]byte
	rand.Read(b[:])
	floor += floor * time.Duration(b[0]) / (5 * 255)
	if d := time.Until(start.Add(floor)); d > 0 {
		time.Sleep(d)
	}
}
