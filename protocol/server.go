// Package protocol is the server side of the Message Posting Protocol,
// RFC 1204: framing, the command state machine, message text, and the
// replies. It knows nothing of PAM, LDAP or sendmail; it talks to them
// through authn.Authenticator and delivery.Deliverer.
package protocol

import (
	"context"
	"log/slog"
	"net"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/sendlimit"
)

// Server serves MPP sessions. Its fields must not change once Serve has
// been called.
type Server struct {
	Config   Config
	Auth     authn.Authenticator
	Delivery delivery.Deliverer
	Log      *slog.Logger
	// Throttle, if set, paces and shuts out clients that keep failing
	// to log in (see the Throttle interface).
	Throttle Throttle
	// SendLimit, if set, caps what each login may send
	// (internal/sendlimit); nil sets no limit.
	SendLimit *sendlimit.Limiter
	// Events, if set, is told of every login, delivery and message
	// (for metrics). It is called on the session's goroutine and must
	// not block.
	Events func(Event)

	// failures times rejected logins for padFailure; shared by all
	// sessions.
	failures failureClock
}

// Serve runs one session on conn until QUIT, an error, a limit, or ctx is
// done, and closes conn. It works on any net.Conn: a TCP connection, a
// TLS connection over one, or one end of a net.Pipe in tests.
//
// When ctx is cancelled (the daemon is shutting down), a session waiting
// for a command is told 451 and closed at once; a session receiving message
// text reads it to its end, delivers it, replies, and then closes with 451.
// A delivery already running is never cancelled by ctx.
func (s *Server) Serve(ctx context.Context, conn net.Conn) {
	newSession(s, conn).run(ctx)
}

// Refuse tells a client that the server will not serve it now (too many
// sessions, throttled, shutting down) with 451 and closes conn. It is for
// the accept loop, before a session starts.
func Refuse(conn net.Conn, why string) {
	writeAndClose(conn, reply{code: 451, text: why})
}
