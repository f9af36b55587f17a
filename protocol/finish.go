package protocol

import (
	"context"
	"errors"
	"time"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/address"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/message"
	"github.com/mppd/mppd/internal/staging"
)

func validAddress(a string) error { return address.Valid(a) }

// stagedText is the sink the message text is read into: it stages the
// message as it will be delivered. As soon as the client's header block is
// complete it is prepared (trace fields added, Bcc removed) and the result
// written first; the body follows as it arrives. So the staging buffer,
// and the one file it ends up in, hold exactly what the delivery backend
// reads: the message is never copied again.
type stagedText struct {
	s        *session
	buf      *staging.Buffer
	prepared bool
	prep     message.Result
	err      error // from message.Prepare: the message will be refused
}

// Header prepares the header; the body that follows is kept only if that
// worked.
func (t *stagedText) Header(header []byte) {
	t.prepared = true
	t.prep, t.err = t.s.prepare(header)
	if t.err == nil {
		t.buf.Write(t.prep.Header) // an error is kept by buf
	}
}

func (t *stagedText) Write(p []byte) (int, error) {
	if t.err != nil {
		return len(p), nil // refused anyway: read on, keep nothing
	}
	return t.buf.Write(p)
}

// prepare runs message.Prepare on the client's header for this session.
func (s *session) prepare(header []byte) (message.Result, error) {
	id := s.identity
	return message.Prepare(header, message.Trace{
		Login:     id.Login,
		Addresses: id.Addresses,
		Client:    s.client,
		Session:   s.id,
		Time:      time.Now(),
	}, message.Options{
		Hostname:              s.cfg.Hostname,
		MaxRecipients:         s.cfg.Limits.MaxRecipients,
		MaxReceived:           s.cfg.Limits.MaxReceived,
		Sender:                s.cfg.SenderPolicy,
		ReceivedClientAddress: s.cfg.ReceivedClientAddress,
	})
}

// finishMessage decides what becomes of a message whose text has been read
// to its end: refuse it (550, or 451 for a local fault), or hand the staged
// message to the delivery backend. 250 only once the backend has said the
// message is queued.
func (s *session) finishMessage(ctx context.Context, res textResult, text *stagedText) reply {
	log := s.log.With(logkey.User, s.user, "size", res.size)
	refuse := func(reason, text string) reply {
		log.Warn("message refused", logkey.Event, logkey.EventRejected, logkey.Reason, reason)
		return replyError.with(text)
	}
	switch {
	case res.tooBig:
		return refuse("too-big", "Message too large.")
	case res.bareLFDot:
		log.Warn("dot line next to a bare LF in message text", logkey.Event, logkey.EventBareLFInData)
		return refuse("bare-lf-dot", "Message contains a \".\" line next to a bare LF.")
	case res.bareCR:
		return refuse("bare-cr", "Message contains a bare CR.")
	case res.nul:
		return refuse("nul", "Message contains a NUL byte.")
	case res.headerBig:
		return refuse("header-too-big", "Message header too large.")
	case res.writeErr != nil:
		log.Error("cannot stage the message", logkey.Event, logkey.EventStagingFailed, logkey.Err, res.writeErr)
		return s.localError("Local error in staging the message, try again later.")
	}

	if !text.prepared {
		// A text with no blank line is all header.
		text.Header(res.header)
	}
	if err := text.err; err != nil {
		var rej *message.Rejection
		if errors.As(err, &rej) {
			return refuse(rej.Reason, rej.Text)
		}
		log.Error("cannot prepare the message", logkey.Event, logkey.EventPrepareFailed, logkey.Err, err)
		return s.localError("Local error in processing the message.")
	}
	msg, err := text.buf.File()
	if err != nil {
		log.Error("cannot stage the message", logkey.Event, logkey.EventStagingFailed, logkey.Err, err)
		return s.localError("Local error in staging the message, try again later.")
	}
	id, prep := s.identity, text.prep
	env := delivery.Envelope{
		Sender:     id.Addresses[0],
		Recipients: prep.Recipients,
		Login:      id.Login,
		Account:    id.Account,
		Session:    s.id,
	}

	// The sending limits count the message from here; a delivery that
	// fails gives the count back, so only delivered messages count.
	reserved, refusal := s.srv.SendLimit.Reserve(id.Login, len(env.Recipients))
	if refusal != nil {
		return s.sendLimited(log, refusal, len(env.Recipients))
	}

	// A delivery that has started is never cut short by a shutdown: the
	// client gets the real outcome, so a message is either acknowledged
	// and queued, or neither.
	start := time.Now()
	err = s.srv.Delivery.Deliver(context.WithoutCancel(ctx), env, msg)
	took := time.Since(start).Round(time.Millisecond)
	s.event(Event{Kind: EventDelivery, Result: deliveryResult(err), Duration: time.Since(start)})
	if err != nil {
		reserved.Cancel()
		r := deliveryReply(err)
		if r.code == 550 {
			log.Warn("delivery refused", logkey.Event, logkey.EventDeliveryFailed, "permanent", true,
				logkey.Reason, delivery.Reason(err), logkey.Err, err, logkey.Duration, took)
		} else {
			log.Error("delivery failed", logkey.Event, logkey.EventDeliveryFailed, "permanent", false,
				logkey.Reason, delivery.Reason(err), logkey.Err, err, logkey.Duration, took)
		}
		return r
	}
	log.Info("message queued", logkey.Event, logkey.EventDelivered, "from", env.Sender,
		"recipients", len(env.Recipients), "added", prep.Added, "removed", prep.Removed, logkey.Duration, took)
	return replyOK.with("Message queued.")
}
