// Package limiter caps the deliveries that run at once (each one is a
// sendmail process, or files being written). A message beyond the cap
// waits for a free slot up to a queue timeout and then fails with
// delivery.Temporary("busy"): the client gets 451 and may send it again.
package limiter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/slots"
)

// Limiter is a delivery.Deliverer that lets at most max deliveries of
// next run at once.
type Limiter struct {
	next  delivery.Deliverer
	slots *slots.Slots
	log   *slog.Logger
}

var _ delivery.Deliverer = (*Limiter)(nil)

// New returns a Limiter running at most max deliveries of next at once; a
// further one waits up to queueTimeout.
func New(next delivery.Deliverer, max int, queueTimeout time.Duration, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Limiter{next: next, slots: slots.New(max, queueTimeout), log: log}
}

func (l *Limiter) String() string {
	return fmt.Sprintf("%v, at most %d at once (queue %s)", l.next, l.slots.Max(), l.slots.Timeout())
}

// Deliver waits for a slot, then hands the message to next.
func (l *Limiter) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	if err := l.slots.Acquire(ctx); err != nil {
		if errors.Is(err, slots.ErrBusy) {
			l.log.Warn("too many deliveries at once, message refused", logkey.Event, logkey.EventDeliveryBusy,
				"session", env.Session, "max", l.slots.Max(), "waited", l.slots.Timeout())
			err = fmt.Errorf("%d deliveries already running", l.slots.Max())
		}
		return delivery.Temporary("busy", err)
	}
	defer l.slots.Release()
	return l.next.Deliver(ctx, env, msg)
}

// InUse is the number of deliveries running now.
func (l *Limiter) InUse() int { return l.slots.InUse() }
