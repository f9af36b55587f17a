// Package authn decides whether a user name and password are valid, and who
// the user is if they are.
//
// The engine (package protocol) talks to every backend through the one
// interface below. Requests and results are plain data so that a backend
// could later sit across a process boundary.
package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mppd/mppd/internal/logkey"
)

// Request is one login attempt.
type Request struct {
	// User is the USER argument, already checked against the configured
	// user-name grammar by the engine.
	User string
	// Password is the PASS argument: 1 to 512 octets, no NUL, CR or LF.
	Password string
	// Client is the client's IP address in text form ("192.0.2.7",
	// "2001:db8::1"), for PAM_RHOST, logs and throttling.
	Client string
	// Session is the engine's session id, which the backend's own log
	// lines about this login carry (logkey.Session) so that they can be
	// found next to the engine's.
	Session string
}

// String never shows the password, so a Request printed by mistake leaks
// nothing.
func (r Request) String() string {
	return fmt.Sprintf("user=%q client=%s password=<redacted>", r.User, r.Client)
}

// LogValue keeps the password out of structured logs as well.
func (r Request) LogValue() slog.Value {
	return slog.GroupValue(slog.String(logkey.User, r.User), slog.String(logkey.Client, r.Client), slog.String(logkey.Session, r.Session))
}

// Identity is who a backend vouches for after a successful login.
type Identity struct {
	// Login is the account name as the backend settled it (PAM_USER after
	// the transaction, the directory's login attribute, the password-file
	// entry). It is what logs and the Received: header name.
	Login string
	// Addresses are the mail addresses the user may send as. The first is
	// the primary one: the envelope sender and the From: mppd adds when a
	// message has none. A backend never returns an empty list.
	Addresses []string
	// Account is the local Unix account a submission runs as (the sendmail
	// backend switches to it). Empty when the backend has no notion of a
	// local account; the delivery backend decides whether that is allowed.
	Account string
}

// Authenticator checks one login attempt.
//
// It returns the Identity and nil on success. Otherwise the error is, or
// wraps, a *BadCredentialsError (the backend looked and said no) or an
// *UnavailableError (it could not decide). Any other error is treated as
// unavailable: a backend fault must never look like a wrong password.
// Implementations honour ctx for cancellation and deadlines.
type Authenticator interface {
	Authenticate(ctx context.Context, req Request) (Identity, error)
}

// BadCredentialsError means the backend examined the credentials and refused
// them: unknown user, wrong password, locked or expired account, not in the
// required group. The client gets 530, the same for every reason; Reason is
// for the log only.
type BadCredentialsError struct {
	Reason string // short, stable, for logs and fail2ban: "unknown-user", "bad-password", "locked", ...
	Err    error  // underlying cause, may be nil
}

func (e *BadCredentialsError) Error() string {
	if e.Err == nil {
		return "bad credentials: " + e.Reason
	}
	return "bad credentials: " + e.Reason + ": " + e.Err.Error()
}

func (e *BadCredentialsError) Unwrap() error { return e.Err }

// UnavailableError means the backend could not decide: directory down,
// timeout, PAM stack broken. The client gets 451 and may retry later.
type UnavailableError struct {
	Reason string // short, stable: "timeout", "connect", "pam-error", ...
	Err    error
}

func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return "authentication backend unavailable: " + e.Reason
	}
	return "authentication backend unavailable: " + e.Reason + ": " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Rejected returns a *BadCredentialsError with the given reason.
func Rejected(reason string, err error) error {
	return &BadCredentialsError{Reason: reason, Err: err}
}

// Unavailable returns an *UnavailableError with the given reason.
func Unavailable(reason string, err error) error {
	return &UnavailableError{Reason: reason, Err: err}
}

// IsBadCredentials reports whether err says the credentials were refused.
// Everything else, including unclassified errors, is "unavailable".
func IsBadCredentials(err error) bool {
	var bad *BadCredentialsError
	return errors.As(err, &bad)
}

// Reason returns the log reason carried by err, or "error" when err carries
// none.
func Reason(err error) string {
	var bad *BadCredentialsError
	if errors.As(err, &bad) {
		return bad.Reason
	}
	var un *UnavailableError
	if errors.As(err, &un) {
		return un.Reason
	}
	return "error"
}
