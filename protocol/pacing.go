package protocol

// Failure pacing: how long a failed login takes (decision 4).

import (
	"crypto/rand"
	"sync"
	"time"
)

// maxFailurePadding bounds how far the slowest recent failure can raise the
// time every failed login takes (see failureClock). It is well above the
// fail delay of any PAM stack in common use (pam_unix: 2 s; login.defs
// FAIL_DELAY: 3 s), since a backend that delays its refusals for longer
// than this reopens the timing difference, and low enough that one
// pathologically slow refusal cannot hold every failed session for long.
const maxFailurePadding = 30 * time.Second

// failureWindow is how long the failure clock remembers a rejection, in
// failureSlices slices of time.
const (
	failureWindow = time.Hour
	failureSlices = 12
	failureSlice  = failureWindow / failureSlices
)

// failureClock remembers how long rejected logins took before any padding,
// over the last failureWindow, so that every failed login can be padded to
// the slowest of them. A backend that is slow on some rejections and quick
// on others would otherwise tell the reasons apart: pam_unix sleeps about
// two seconds after a wrong password but not after the right password for
// an expired or locked account, so without this the quick 530 would say
// "right password".
//
// It is a maximum over time, not over the last so many rejections: quick
// rejections, however many (the auth cache answers a repeated wrong
// password in microseconds), cannot push a slow one out. The window is
// kept as failureSlices slices, each holding the slowest rejection that
// fell into it, so the memory is fixed; a rejection is forgotten between
// 55 and 60 minutes after it happened.
//
// Only rejections are recorded: a backend that is down or slow to answer
// (451) says nothing about a password and must not slow every login down.
// It is safe for concurrent use; the zero value is ready.
type failureClock struct {
	mu     sync.Mutex
	slices [failureSlices]failureSliceMax
	now    func() time.Time // nil: time.Now; tests set it
}

// failureSliceMax is the slowest rejection of the slice that starts at
// start.
type failureSliceMax struct {
	start   time.Time
	slowest time.Duration
}

func (c *failureClock) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// record notes a rejection that took d.
func (c *failureClock) record(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := c.clock().Truncate(failureSlice)
	sl := &c.slices[start.UnixNano()/int64(failureSlice)%failureSlices]
	if !sl.start.Equal(start) {
		*sl = failureSliceMax{start: start} // a slice a window ago: reuse it
	}
	sl.slowest = max(sl.slowest, d)
}

// slowest is the longest rejection of the window, at most
// maxFailurePadding.
func (c *failureClock) slowest() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	oldest := c.clock().Truncate(failureSlice).Add(-failureWindow)
	var m time.Duration
	for _, sl := range c.slices {
		if sl.start.After(oldest) {
			m = max(m, sl.slowest)
		}
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
