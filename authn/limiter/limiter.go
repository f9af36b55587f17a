// Package limiter caps the authentications that run at once against a
// backend. A login beyond the cap waits for a free slot up to a queue
// timeout and then fails with authn.Unavailable("busy") (the client gets
// 451 and may retry), so that a flood of logins cannot pile up threads
// (PAM pins one per transaction, and Go's limit is 10,000) or connections
// to the directory.
package limiter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/slots"
)

// Limiter is an authn.Authenticator that lets at most max calls of next
// run at once.
type Limiter struct {
	next  authn.Authenticator
	slots *slots.Slots
	log   *slog.Logger
}

var _ authn.Authenticator = (*Limiter)(nil)

// New returns a Limiter running at most max authentications of next at
// once; a further one waits up to queueTimeout.
func New(next authn.Authenticator, max int, queueTimeout time.Duration, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{next: next, slots: slots.New(max, queueTimeout), log: log}
}

func (l *Limiter) String() string {
	return fmt.Sprintf("%v, at most %d at once (queue %s)", l.next, l.slots.Max(), l.slots.Timeout())
}

// Authenticate waits for a slot, then asks next.
func (l *Limiter) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	if err := l.slots.Acquire(ctx); err != nil {
		if errors.Is(err, slots.ErrBusy) {
			l.log.Warn("too many authentications at once, login refused", logkey.Event, logkey.EventAuthnBusy,
				logkey.Session, req.Session, logkey.Client, req.Client, logkey.User, req.User, "max", l.slots.Max(), "waited", l.slots.Timeout())
			err = fmt.Errorf("%d authentications already running", l.slots.Max())
		}
		return authn.Identity{}, authn.Unavailable("busy", err)
	}
	defer l.slots.Release()
	return l.next.Authenticate(ctx, req)
}

// InUse is the number of authentications running now.
func (l *Limiter) InUse() int { return l.slots.InUse() }
