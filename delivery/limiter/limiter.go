// Package limiter caps the deliveries that run at once (each one is a
// sendmail process, or files being written). A message beyond the cap
// waits for a free slot up to a queue timeout and then fails with
// delivery.Temporary("busy"): the client gets 451 and may send it again.
package limiter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"mppd/delivery"
)

// Limiter is a delivery.Deliverer that lets at most max deliveries of
// next run at once.
type Limiter struct {
	next    delivery.Deliverer
	slots   chan struct{}
	timeout time.Duration
	log     *slog.Logger
}

var _ delivery.Deliverer = (*Limiter)(nil)

// New returns a Limiter running at most max deliveries of next at once; a
// further one waits up to queueTimeout.
func New(next delivery.Deliverer, max int, queueTimeout time.Duration, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{next: next, slots: make(chan struct{}, max), timeout: queueTimeout, log: log}
}

func (l *Limiter) String() string {
	return fmt.Sprintf("%v, at most %d at once (queue %s)", l.next, cap(l.slots), l.timeout)
}

// Deliver waits for a slot, then hands the message to next.
func (l *Limiter) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	select {
	case l.slots <- struct{}{}:
	default:
		t := time.NewTimer(l.timeout)
		defer t.Stop()
		select {
		case l.slots <- struct{}{}:
		case <-t.C:
			l.log.Warn("too many deliveries at once, message refused", "event", "delivery-busy",
				"session", env.Session, "max", cap(l.slots), "waited", l.timeout)
			return delivery.Temporary("busy", fmt.Errorf("%d deliveries already running", cap(l.slots)))
		case <-ctx.Done():
			return delivery.Temporary("busy", ctx.Err())
		}
	}
	defer func() { <-l.slots }()
	return l.next.Deliver(ctx, env, msg)
}

// InUse is the number of deliveries running now.
func (l *Limiter) InUse() int { return len(l.slots) }
