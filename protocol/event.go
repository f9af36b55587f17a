package protocol

import (
	"time"

	"github.com/mppd/mppd/delivery"
)

// EventKind says what an Event reports.
type EventKind int

const (
	// EventLogin: a PASS was decided. Result is "ok", "rejected" (530)
	// or "unavailable" (451, the backend could not answer).
	EventLogin EventKind = iota + 1
	// EventDelivery: the delivery backend returned. Result is "ok",
	// "temporary" or "permanent"; Duration is how long Deliver took.
	EventDelivery
	// EventMessage: a message's text was read to its end and answered.
	// Result is "queued" (250), "rejected" (550) or "failed" (451).
	EventMessage
	// EventThrottled: the engine slowed down or refused a client for
	// its failed logins. Result is a short reason ("penalty",
	// "blocked"); Duration is the delay imposed, if any.
	EventThrottled
	// EventSendLimit: a message was refused for a sending limit.
	// Result is the limit's name (sendlimit.MessagesPerHour, ...).
	EventSendLimit
	// EventSessionEnd: the session is over and its connection closed;
	// Duration is how long it lasted. What its login allowed ends with
	// it (the daemon tells the monitor, which forgets the login).
	EventSessionEnd
)

// Event is what the engine reports to Server.Events: one login, one
// delivery, one message. It carries no password and no message text.
type Event struct {
	Kind     EventKind
	Result   string
	Session  string // the session id the logs use
	Client   string // the client's IP address, "" when unknown
	User     string // the USER argument in force
	Duration time.Duration
}

// event fills in the session's fields and hands ev to Server.Events.
// Events is called on the session's goroutine: it must be quick and must
// not block (the daemon counts metrics with it).
func (s *session) event(ev Event) {
	if s.srv.Events == nil {
		return
	}
	ev.Session, ev.Client, ev.User = s.id, s.client, s.user
	s.srv.Events(ev)
}

// loginResult names the outcome of a failed PASS by its reply code.
func loginResult(code int) string {
	if code == 530 {
		return "rejected"
	}
	return "unavailable"
}

// messageResult names the outcome of a message by its reply code.
func messageResult(code int) string {
	switch code {
	case 250:
		return "queued"
	case 550:
		return "rejected"
	default:
		return "failed"
	}
}

// deliveryResult names the outcome of Deliver.
func deliveryResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case delivery.IsPermanent(err):
		return "permanent"
	default:
		return "temporary"
	}
}
