package authn

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/slots"
)

// Limited is an Authenticator that lets at most a fixed number of calls of
// another run at once (see Limit).
type Limited struct {
	next  Authenticator
	slots *slots.Limiter
}

// Limit caps the authentications that run at once against next: at most
// max, and a further one waits up to queueTimeout for a free slot, then
// fails with Unavailable("busy") (the client gets 451 and may retry). A
// flood of logins thus cannot pile up threads (PAM pins one per
// transaction, and Go's limit is 10,000) or connections to the directory.
func Limit(next Authenticator, max int, queueTimeout time.Duration, log *slog.Logger) *Limited {
	return &Limited{next: next, slots: slots.NewLimiter(max, queueTimeout, log)}
}

func (l *Limited) String() string { return fmt.Sprintf("%v, %v", l.next, l.slots) }

// Authenticate waits for a slot, then asks next.
func (l *Limited) Authenticate(ctx context.Context, req Request) (Identity, error) {
	if err := l.slots.Acquire(ctx, "authentications", "too many authentications at once, login refused",
		logkey.Event, logkey.EventAuthnBusy, logkey.Session, req.Session, logkey.Client, req.Client, logkey.User, req.User); err != nil {
		return Identity{}, Unavailable("busy", err)
	}
	defer l.slots.Release()
	return l.next.Authenticate(ctx, req)
}

// InUse is the number of authentications running now.
func (l *Limited) InUse() int { return l.slots.InUse() }
