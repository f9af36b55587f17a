package slots

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Limiter is what the authentication and delivery caps (authn.Limit,
// delivery.Limit) share: the slots, and a log for the calls refused.
type Limiter struct {
	slots *Slots
	log   *slog.Logger
}

// NewLimiter returns a Limiter of max slots whose Acquire waits up to
// queueTimeout. log may be nil.
func NewLimiter(max int, queueTimeout time.Duration, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{slots: New(max, queueTimeout), log: log}
}

// Acquire takes a slot as Slots.Acquire does. When none came free in time,
// it logs msg as a warning with args and the bound ("max", "waited"), and
// returns an error saying that max calls (named by calls, a plural) are
// already running. A nil error must be paired with one Release.
func (l *Limiter) Acquire(ctx context.Context, calls, msg string, args ...any) error {
	err := l.slots.Acquire(ctx)
	if errors.Is(err, ErrBusy) {
		l.log.Warn(msg, append(args, "max", l.slots.Max(), "waited", l.slots.Timeout())...)
		err = fmt.Errorf("%d %s already running", l.slots.Max(), calls)
	}
	return err
}

// Release gives back a slot Acquire took.
func (l *Limiter) Release() { l.slots.Release() }

// InUse is the number of slots taken now.
func (l *Limiter) InUse() int { return l.slots.InUse() }

// String describes the bound, for the start-up log.
func (l *Limiter) String() string { return l.slots.String() }
