// Package limiter caps the authentications that run at once against a
// backend. A login beyond the cap waits for a free slot up to a queue
// timeout and then fails with authn.Unavailable("busy") (the client gets
// 451 and may retry), so that a flood of logins cannot pile up threads
// (PAM pins one per transaction, and Go's limit is 10,000) or connections
// to the directory.
package limiter

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"mppd/authn"
)

// Limiter is an authn.Authenticator that lets at most max calls of next
// run at once.
type Limiter struct {
	next    authn.Authenticator
	slots   chan struct{}
	timeout time.Duration
	log     *slog.Logger
}

var _ authn.Authenticator = (*Limiter)(nil)

// New returns a Limiter running at most max authentications of next at
// once; a further one waits up to queueTimeout.
func New(next authn.Authenticator, max int, queueTimeout time.Duration, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{next: next, slots: make(chan struct{}, max), timeout: queueTimeout, log: log}
}

func (l *Limiter) String() string {
	return fmt.Sprintf("%v, at most %d at once (queue %s)", l.next, cap(l.slots), l.timeout)
}

// Authenticate waits for a slot, then asks next.
func (l *Limiter) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		t := time.NewTimer(l.timeout)
		defer t.Stop()
		select {
		case l.slots <- struct{}{}:
		case <-t.C:
			l.log.Warn("too many authentications at once, login refused", "event", "authn-busy",
				"ip", req.Client, "user", req.User, "max", cap(l.slots), "waited", l.timeout)
			return authn.Identity{}, authn.Unavailable("busy", fmt.Errorf("%d authentications already running", cap(l.slots)))
		case <-ctx.Done():
			return authn.Identity{}, authn.Unavailable("busy", ctx.Err())
		}
	}
	defer func() { <-l.slots }()
	return l.next.Authenticate(ctx, req)
}

// InUse is the number of authentications running now.
func (l *Limiter) InUse() int { return len(l.slots) }
