// Package delivery hands accepted messages to the mail system.
//
// The engine (package protocol) talks to every backend through the one
// interface below. The envelope is plain data so that a backend could later
// sit across a process boundary.
package delivery

import (
	"context"
	"errors"
	"io"
)

// Envelope says who sends a message and who receives it.
type Envelope struct {
	// Sender is the envelope sender: always the authenticated user's
	// primary address, never anything the client wrote.
	Sender string
	// Recipients are the addresses taken from the message's headers,
	// checked by the engine to be plain mailboxes (no leading '-', no
	// spaces or control characters), de-duplicated, at least one.
	Recipients []string
	// Login is the name the user authenticated with (USER), for the
	// backend's log lines.
	Login string
	// Account is the local account the authentication backend mapped the
	// login to, "" when it gives none. The sendmail backend submits as it.
	Account string
	// Session is the session id, for the backend's log lines.
	Session string
}

// Deliverer posts one complete message.
//
// msg is the whole message as it is to be delivered: dot-unstuffed, with LF
// line endings, trace headers added and Bcc removed. It is fully staged
// before Deliver is called, so reading it never waits for the client, and a
// client that goes away cannot shorten it. From mppd it always is an
// *os.File, the engine's unlinked staging file, positioned at its start:
// a backend that needs a file (sendmail's stdin) uses it as it is rather
// than copying the message again.
//
// A nil error means the mail system has taken responsibility for the
// message. Otherwise the error is, or wraps, a *TemporaryError or a
// *PermanentError; any other error is treated as temporary, so a fault
// never loses a message that the client would not retry.
type Deliverer interface {
	Deliver(ctx context.Context, env Envelope, msg io.Reader) error
}

// AccountChecker is what a backend that submits as a local account also
// offers: the account policy, applied at login so that a user who could
// never submit is refused at PASS like a wrong password. CheckAccount
// returns nil, a *PermanentError naming why the account may not submit
// (the login fails as bad credentials with that reason), or another error
// when it cannot tell (the login is unavailable). Wrappers (Limit) pass it
// through.
type AccountChecker interface {
	CheckAccount(login, account string) error
}

// TemporaryError means the message was not queued but might be later: the
// client gets 451 and keeps its copy.
type TemporaryError struct {
	Reason string // short, safe to log: "timeout", "exit 75", "exec", ...
	Err    error  // full cause, for the log only
}

func (e *TemporaryError) Error() string {
	if e.Err == nil {
		return "temporary delivery failure: " + e.Reason
	}
	return "temporary delivery failure: " + e.Reason + ": " + e.Err.Error()
}

func (e *TemporaryError) Unwrap() error { return e.Err }

// PermanentError means the message will never be accepted as it is: the
// client gets 550.
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "permanent delivery failure: " + e.Reason
	}
	return "permanent delivery failure: " + e.Reason + ": " + e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Temporary returns a *TemporaryError.
func Temporary(reason string, err error) error { return &TemporaryError{Reason: reason, Err: err} }

// Permanent returns a *PermanentError.
func Permanent(reason string, err error) error { return &PermanentError{Reason: reason, Err: err} }

// IsPermanent reports whether err says the message can never be delivered
// as it is. Unclassified errors are temporary.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Reason returns the log reason carried by err, or "error".
func Reason(err error) string {
	var p *PermanentError
	if errors.As(err, &p) {
		return p.Reason
	}
	var t *TemporaryError
	if errors.As(err, &t) {
		return t.Reason
	}
	return "error"
}
