package protocol

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/sendlimit"
)

// limitNames says the limits in replies.
var limitNames = map[string]string{
	sendlimit.MessagesPerHour:   "messages an hour",
	sendlimit.RecipientsPerHour: "recipients an hour",
	sendlimit.RecipientsPerDay:  "recipients a day",
}

// sendLimited answers a message that a sending limit refused. It was not
// delivered and does not count. Over a limit for now, it is 451 (decision
// 15: the client keeps its copy and posts it later); a message
// that alone names more recipients than a limit allows can never pass,
// so it is 550.
//
// The first refusal of a login in a window is logged at warn, later ones
// at debug only: the limiter writes a summary of them when the window is
// over (internal/sendlimit).
func (s *session) sendLimited(log *slog.Logger, ref *sendlimit.Refusal, recipients int) reply {
	s.event(Event{Kind: EventSendLimit, Result: ref.Limit})
	attrs := []any{logkey.Login, s.identity.Login, "limit", ref.Limit, "max", ref.Max, "count", ref.Count,
		"recipients", recipients}
	if ref.Permanent {
		log.Warn("message refused", append([]any{logkey.Event, logkey.EventRejected, logkey.Reason, "send-limit"}, attrs...)...)
		return replyError.with(fmt.Sprintf("Message has more recipients than the sending limit allows (%d %s).",
			ref.Max, limitNames[ref.Limit]))
	}
	level := slog.LevelDebug
	if ref.First {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "sending limit reached, message not delivered", append([]any{logkey.Event, logkey.EventSendLimit}, attrs...)...)
	return replyLocal.with(fmt.Sprintf("Sending limit reached (%d %s), try again later.", ref.Max, limitNames[ref.Limit]))
}
