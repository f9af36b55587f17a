package protocol

import (
	"context"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/logkey"
)

// Throttle paces and shuts out clients that keep failing to log in
// (internal/throttle implements it). The engine asks it around every
// password check; the accept loop asks it before a session starts.
type Throttle interface {
	// Begin is called before a password is checked; false means the
	// client may not try one now: the session answers 451 and closes
	// without asking the backend.
	Begin(client string) bool
	// Failed records a failed login Begin allowed and returns the extra
	// delay to wait before the 530 reply.
	Failed(client, user, password string) time.Duration
	// Done ends a login Begin allowed that did not fail.
	Done(client string)
}

// throttleBegin asks the throttle whether this client may try a password.
func (s *session) throttleBegin() bool {
	if s.srv.Throttle == nil || s.srv.Throttle.Begin(s.client) {
		return true
	}
	s.log.Warn("too many failed logins from this client, password not checked", logkey.Event, logkey.EventThrottled, logkey.User, s.user)
	s.event(Event{Kind: EventThrottled, Result: "blocked"})
	return false
}

// throttleEnd reports the outcome of a login to the throttle and returns
// the extra delay a failure earns. A backend that could not answer says
// nothing about the password, so it is not a failure.
func (s *session) throttleEnd(req authn.Request, err error) time.Duration {
	if s.srv.Throttle == nil {
		return 0
	}
	if err != nil && authn.IsBadCredentials(err) {
		d := s.srv.Throttle.Failed(req.Client, req.User, req.Password)
		if d > 0 {
			s.event(Event{Kind: EventThrottled, Result: "penalty", Duration: d})
		}
		return d
	}
	s.srv.Throttle.Done(req.Client)
	return 0
}

// replyThrottled is the answer to a PASS from a client the throttle shuts
// out (decision 13: 451, then close).
var replyThrottled = replyLocal.with("Too many failed logins, try again later.").closing()

// penaltyWait sleeps for d, or until the server shuts down: the reply to
// the PASS is then sent at once (a 530 says nothing the penalty hides).
func penaltyWait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
