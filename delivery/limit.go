package delivery

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/slots"
)

// Limited is a Deliverer that lets at most a fixed number of deliveries of
// another run at once (see Limit).
type Limited struct {
	next  Deliverer
	slots *slots.Limiter
}

// Limit caps the deliveries that run at once through next (each one is a
// sendmail process, or files being written): at most max, and a further
// one waits up to queueTimeout for a free slot, then fails with
// Temporary("busy"): the client gets 451 and may send it again.
func Limit(next Deliverer, max int, queueTimeout time.Duration, log *slog.Logger) *Limited {
	return &Limited{next: next, slots: slots.NewLimiter(max, queueTimeout, log)}
}

func (l *Limited) String() string { return fmt.Sprintf("%v, %v", l.next, l.slots) }

// Deliver waits for a slot, then hands the message to next.
func (l *Limited) Deliver(ctx context.Context, env Envelope, msg io.Reader) error {
	if err := l.slots.Acquire(ctx, "deliveries", "too many deliveries at once, message refused",
		logkey.Event, logkey.EventDeliveryBusy, logkey.Session, env.Session); err != nil {
		return Temporary("busy", err)
	}
	defer l.slots.Release()
	return l.next.Deliver(ctx, env, msg)
}

// CheckAccount passes the account policy of next through, if it has one:
// the check takes no delivery slot.
func (l *Limited) CheckAccount(login, account string) error {
	if ac, ok := l.next.(AccountChecker); ok {
		return ac.CheckAccount(login, account)
	}
	return nil
}

// InUse is the number of deliveries running now.
func (l *Limited) InUse() int { return l.slots.InUse() }
