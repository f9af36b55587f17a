// Package slots bounds how many calls of something run at once. A call
// beyond the bound waits in line for a free slot, up to a timeout. The
// authentication and delivery caps (authn.Limit, delivery.Limit) and the
// PAM backend's worker pool are built on it.
package slots

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBusy means no slot came free within the timeout.
var ErrBusy = errors.New("no free slot")

// Slots is a counting semaphore with a bounded wait. It is safe for
// concurrent use.
type Slots struct {
	ch      chan struct{}
	timeout time.Duration
}

// New returns max slots; Acquire waits up to timeout for one.
func New(max int, timeout time.Duration) *Slots {
	return &Slots{ch: make(chan struct{}, max), timeout: timeout}
}

// Acquire takes a slot. It returns ErrBusy when none came free within the
// timeout, or ctx's error when ctx ended first. A nil error must be paired
// with one Release.
func (s *Slots) Acquire(ctx context.Context) error {
	select {
	case s.ch <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release gives back a slot Acquire took.
func (s *Slots) Release() { <-s.ch }

// Max is the number of slots.
func (s *Slots) Max() int { return cap(s.ch) }

// InUse is the number of slots taken now.
func (s *Slots) InUse() int { return len(s.ch) }

// Timeout is how long Acquire waits.
func (s *Slots) Timeout() time.Duration { return s.timeout }

// String describes the bound, for the start-up log.
func (s *Slots) String() string {
	return fmt.Sprintf("at most %d at once (queue %s)", s.Max(), s.timeout)
}
