package protocol

import (
	"bufio"
	"fmt"
	"net"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
)

// reply is one response line. Handlers return replies; session.send is the
// only code that writes them, so every code and text the client can see is
// in this file or next to the handler that chose it.
type reply struct {
	code int
	text string
	// close ends the session after this reply is sent.
	close bool
}

// The replies of RFC 1204 §2.2, with the RFC's own texts.
var (
	replyGreeting = reply{code: 220, text: "Message Posting Service Ready."}
	replyBye      = reply{code: 221, text: "Closing Connection.", close: true}
	replyOK       = reply{code: 250, text: "Command OK."}
	replyStartMsg = reply{code: 354, text: "Enter mail, end with <CRLF>.<CRLF>"}
	replyLocal    = reply{code: 451, text: "Local error encountered."}
	replyUnknown  = reply{code: 500, text: "Command unrecognized."}
	replySyntax   = reply{code: 501, text: "Argument syntax error."}
	replySequence = reply{code: 503, text: "Illegal command sequence."}
	replyAuthFail = reply{code: 530, text: "Authentication Failure."}
	replyError    = reply{code: 550, text: "Error."}
)

// authnReply and deliveryReply are where a backend's error becomes a
// reply, and the only place. The error's type decides (package authn and
// package delivery define them): refused for good (530, 550) or failed for
// now (451). An error a backend did not classify is the "for now" kind, so
// that a fault never looks like a wrong password or a refused message.
func authnReply(err error) reply {
	if authn.IsBadCredentials(err) {
		return replyAuthFail
	}
	return replyLocal.with("Authentication service unavailable, try again later.")
}

func deliveryReply(err error) reply {
	if delivery.IsPermanent(err) {
		return replyError.with("Message refused by the mail system.")
	}
	return replyLocal.with("Message not queued, try again later.")
}

// with returns r with its text replaced: the code is the RFC's, the text
// says more precisely what happened.
func (r reply) with(text string) reply {
	r.text = text
	return r
}

// closing returns r marked to end the session.
func (r reply) closing() reply {
	r.close = true
	return r
}

// isError reports whether r counts against the session's error limit: the
// three replies that say the client spoke wrongly.
func (r reply) isError() bool {
	return r.code == 500 || r.code == 501 || r.code == 503
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.code, r.text) }

// writeAndClose sends one reply on a connection no session owns and
// closes it, waiting at most a few seconds for a client that does not read.
func writeAndClose(conn net.Conn, r reply) {
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "%d %s\r\n", r.code, r.text)
	w.Flush()
	conn.Close()
}
