package protocol

// The command handlers. The dispatcher (session.handle) has already
// checked the command against the legal table, so each handler only
// judges its argument and does the work.

import (
	"context"
	"errors"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/staging"
)

// maxUserLen is the longest user name accepted whatever the configured
// pattern says.
const maxUserLen = 256

// maxPassLen is the longest password accepted (OpenSSH allows 1024; 512 is
// plenty and keeps hashing cheap, CVE-2016-6210).
const maxPassLen = 512

// cmdUser: USER <SP> <username>. Any syntactically valid name gets 250,
// known or not (RFC 1204 §2.3 recommends it, so that the user database
// cannot be probed).
func (s *session) cmdUser(cmd command) reply {
	if !cmd.hasArg || !s.validUser(cmd.arg) {
		return replySyntax.with("Argument syntax error: user name expected.")
	}
	s.user = cmd.arg
	s.identity = authn.Identity{}
	s.state = stateUser
	return replyOK
}

// validUser applies the user-name rules that hold whatever the configured
// pattern: no control characters, spaces or NUL (they would be cut short or
// misread by C code below PAM and NSS), no leading '-' (an option to some
// tool), a bounded length; then the pattern.
func (s *session) validUser(u string) bool {
	if u == "" || len(u) > maxUserLen || u[0] == '-' || hasControl(u) {
		return false
	}
	for i := 0; i < len(u); i++ {
		if u[i] == ' ' {
			return false
		}
	}
	return s.cfg.UserPattern == nil || s.cfg.UserPattern.MatchString(u)
}

// cmdPass: PASS <SP> <password>. The password goes to the authenticator
// and nowhere else: it is never logged.
func (s *session) cmdPass(ctx context.Context, cmd command) reply {
	if !cmd.hasArg || cmd.badSeparator || cmd.arg == "" || len(cmd.arg) > maxPassLen || hasNULorCR(cmd.arg) {
		return replySyntax.with("Argument syntax error: password expected.")
	}
	start := time.Now()
	req := authn.Request{User: s.user, Password: cmd.arg, Client: s.client, Session: s.id}
	if !s.throttleBegin() {
		s.state = stateDone
		return replyThrottled
	}
	// The login is not cut short by a shutdown: its reply is due.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Limits.IdleTimeout)
	id, err := s.srv.Auth.Authenticate(actx, req)
	cancel()
	if err == nil {
		if err = checkIdentity(id); err != nil {
			err = authn.Unavailable("bad-identity", err)
		}
	}
	penalty := s.throttleEnd(req, err)
	if err != nil {
		s.padFailure(start, authn.IsBadCredentials(err))
		s.state = stateDone
		r := authnReply(err)
		s.event(Event{Kind: EventLogin, Result: loginResult(r.code)})
		if r.code == 530 {
			s.log.Warn("authentication failed", logkey.Event, logkey.EventAuthFailed, logkey.User, s.user,
				logkey.Reason, authn.Reason(err), logkey.Err, err, "penalty", penalty)
			penaltyWait(ctx, penalty)
		} else {
			s.log.Error("authentication backend unavailable", logkey.Event, logkey.EventAuthnUnavailable, logkey.User, s.user,
				logkey.Reason, authn.Reason(err), logkey.Err, err)
		}
		return r
	}
	s.identity = id
	s.state = stateAuthed
	s.event(Event{Kind: EventLogin, Result: "ok"})
	s.log.Info("authenticated", logkey.Event, logkey.EventLogin, logkey.User, s.user, logkey.Login, id.Login,
		"address", id.Addresses[0], logkey.Duration, time.Since(start).Round(time.Millisecond))
	return replyOK
}

func hasNULorCR(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] == '\r' || s[i] == '\n' {
			return true
		}
	}
	return false
}

// checkIdentity refuses an identity no backend should return: the engine
// relies on the primary address being a plain mailbox.
func checkIdentity(id authn.Identity) error {
	if len(id.Addresses) == 0 {
		return errors.New("backend returned no address")
	}
	return validAddress(id.Addresses[0])
}

// cmdNoop: NOOP, legal everywhere outside the message text. It answers
// 451 once an internal error has happened in the session, as §2.3 says.
// Past MaxJunk NOOPs without a message each one is answered 503 and
// counts as an error (Postfix's smtpd_junk_command_limit), so a NOOP flood
// ends at the error limit.
func (s *session) cmdNoop(cmd command) reply {
	if cmd.hasArg || cmd.badSeparator {
		return replySyntax.with("Argument syntax error: NOOP takes no argument.")
	}
	s.noops++
	r := replyOK
	if s.localErr {
		r = replyLocal
	}
	if s.noops > s.cfg.Limits.MaxJunk {
		if !s.junkFlag {
			s.junkFlag = true
			s.log.Warn("too many NOOP commands", logkey.Event, logkey.EventJunkLimit, "noops", s.noops)
		}
		return replySequence.with("Too many NOOP commands.")
	}
	return r
}

// cmdQuit: QUIT, legal in every state; always 221.
func (s *session) cmdQuit(cmd command) reply {
	if cmd.hasArg || cmd.badSeparator {
		return replySyntax.with("Argument syntax error: QUIT takes no argument.")
	}
	return replyBye
}

// cmdData: DATA, then the message text, then the reply to the text.
func (s *session) cmdData(ctx context.Context, cmd command) reply {
	if cmd.hasArg || cmd.badSeparator {
		return replySyntax.with("Argument syntax error: DATA takes no argument.")
	}
	lim := s.cfg.Limits
	// The staging file system holds the message's only copy, the file
	// sendmail reads: max_size plus the fields mppd adds, with room to
	// spare (Postfix asks for 1.5 times its message size limit).
	if err := staging.CheckFree(s.cfg.StagingDir, lim.MaxMessage+lim.MaxMessage/2); err != nil {
		s.log.Error("cannot stage a message", logkey.Event, logkey.EventStagingUnavailable, logkey.Err, err)
		s.state = stateDone
		return s.localError("Insufficient system storage, try again later.")
	}
	if !s.send(replyStartMsg) {
		return reply{close: true}
	}
	buf := staging.New(s.cfg.StagingDir, s.cfg.MemoryThreshold)
	defer buf.Close()
	text := &stagedText{s: s, buf: buf}

	s.dataStart, s.dataBytes = time.Now(), 0
	tr := s.textReader()
	res, err := readText(tr, textLimits{maxMessage: lim.MaxMessage, maxHeader: lim.MaxHeader}, text)
	s.doneText(tr)
	s.dataStart = time.Time{}
	if err != nil {
		r, ok := s.readFailed(err, "text")
		if !ok {
			return reply{close: true}
		}
		return r
	}
	r := s.finishMessage(ctx, res, text)
	s.event(Event{Kind: EventMessage, Result: messageResult(r.code)})
	if r.code == 250 {
		s.state = stateSent
		s.noops = 0
	} else {
		s.state = stateDone
	}
	return r
}
