// Package deliverytest is a recording deliverer for unit tests of code
// that hands messages to a delivery.Deliverer (the engine, mpp's tests).
// The backends themselves are tested against the real sendmail and real
// maildirs.
package deliverytest

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/mppd/mppd/delivery"
)

// Message is one message the Recorder took.
type Message struct {
	Envelope delivery.Envelope
	Text     string
}

// Recorder reads every message whole and keeps it, unless Err is set,
// which it returns instead (after reading). Delay is how long each
// delivery takes.
type Recorder struct {
	mu       sync.Mutex
	Err      error
	Delay    time.Duration
	messages []Message
}

// Deliver reads msg, waits Delay, and records it or returns Err.
func (r *Recorder) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	d := r.Delay
	r.mu.Unlock()
	time.Sleep(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Err != nil {
		return r.Err
	}
	r.messages = append(r.messages, Message{env, string(b)})
	return nil
}

// SetErr sets the error later deliveries return (nil: none).
func (r *Recorder) SetErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Err = err
}

// SetDelay sets how long later deliveries take.
func (r *Recorder) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Delay = d
}

// Messages are the messages recorded so far, in order.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.messages...)
}

// Discard reads and drops every message (for benchmarks).
type Discard struct{}

// Deliver reads msg to the end.
func (Discard) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	_, err := io.Copy(io.Discard, msg)
	return err
}
