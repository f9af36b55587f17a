package protocol

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/spool"
)

// state is where a session stands in the command sequence of RFC 1204 §2.3.
// "Right after" in the RFC is read as a state: NOOP, and a command refused
// with 500, 501 or 503, change nothing.
type state int

const (
	// stateStart: the session has just started. USER may be used.
	stateStart state = iota
	// stateUser: USER got 250. PASS may be used.
	stateUser
	// stateAuthed: PASS got 250. DATA may be used.
	stateAuthed
	// stateSent: a message got 250. USER (a new login) or DATA (another
	// message as the same user) may be used.
	stateSent
	// stateDone: PASS got 530 or 451, or a message got 451 or 550. No
	// condition of §2.3 holds any more, so only NOOP and QUIT (which are
	// legal in every state outside the message text) work: one password
	// guess per connection, and a client whose message failed starts over
	// on a new connection.
	stateDone
)

var stateNames = [...]string{"start", "user", "authed", "sent", "done"}

func (s state) String() string { return stateNames[s] }

// legal lists, for each state, the commands RFC 1204 §2.3 allows besides
// NOOP and QUIT. A test checks this table against the RFC's sentences.
var legal = map[state]map[string]bool{
	stateStart:  {"USER": true},
	stateUser:   {"PASS": true},
	stateAuthed: {"DATA": true},
	stateSent:   {"USER": true, "DATA": true},
	stateDone:   {},
}

// maxUserLen is the longest user name accepted whatever the configured
// pattern says.
const maxUserLen = 256

// maxPassLen is the longest password accepted (OpenSSH allows 1024; 512 is
// plenty and keeps hashing cheap, CVE-2016-6210).
const maxPassLen = 512

// session is one client connection.
type session struct {
	srv  *Server
	cfg  *Config
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	log  *slog.Logger
	id   string

	client   string    // client IP address, "" when the connection has none
	deadline time.Time // the session ends at this time whatever happens

	// mu guards the fields the shutdown watcher shares with the reader.
	mu          sync.Mutex
	readLimit   time.Time // deadline of the read in progress
	stopping    bool      // the server is shutting down
	waitCommand bool      // the session is idle between commands

	state     state
	user      string         // USER argument accepted last
	identity  authn.Identity // valid in stateAuthed and stateSent
	errors    int            // replies that count against MaxErrors
	noops     int            // NOOPs since the last accepted message
	junkFlag  bool           // the junk limit was logged
	localErr  bool           // a 451 was sent in this session
	dataStart time.Time      // when the message text began
	dataBytes int64          // octets of message text read so far
	lastData  time.Time      // when the client's last bytes arrived
}

func newSession(srv *Server, conn net.Conn) *session {
	cfg := &srv.Config
	s := &session{srv: srv, cfg: cfg, conn: conn, id: newSessionID()}
	s.client = clientIP(conn.RemoteAddr())
	logger := srv.Log
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s.log = logger.With("ip", s.client, "session", s.id)
	s.r = bufio.NewReaderSize(deadlineReader{s}, 64<<10)
	s.w = bufio.NewWriterSize(conn, 4<<10)
	return s
}

func newSessionID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func clientIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return ""
	}
	return host
}

// run is the session: greeting, then commands until one of them, a limit,
// the client, or a shutdown ends it.
func (s *session) run(ctx context.Context) {
	start := time.Now()
	s.deadline = start.Add(s.cfg.Limits.SessionTimeout)
	s.log.Info("session started", "event", "connect")
	defer func() {
		s.conn.Close()
		s.log.Info("session ended", "event", "disconnect", "state", s.state.String(),
			"duration", time.Since(start).Round(time.Millisecond))
	}()

	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()

	greeting := replyGreeting
	if s.cfg.Hostname != "" {
		greeting.text = s.cfg.Hostname + " " + greeting.text
	}
	if !s.send(greeting) {
		return
	}
	for {
		if ctx.Err() != nil {
			s.log.Info("closing for shutdown", "event", "shutdown", "state", s.state.String())
			s.send(replyLocal.with("Service shutting down, try again later.").closing())
			return
		}
		r, ok := s.next(ctx)
		if !ok || !s.send(r) || r.close {
			return
		}
	}
}

// interrupt is called once when the server starts shutting down. A session
// waiting for a command is woken at once; one in the middle of a message is
// left to finish it.
func (s *session) interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	if s.waitCommand {
		s.conn.SetReadDeadline(time.Now())
	}
}

// next reads one command and handles it. ok is false when the session
// must end without a reply (the client is gone).
func (s *session) next(ctx context.Context) (r reply, ok bool) {
	line, err := s.readCommand()
	switch {
	case errors.Is(err, errLineTooLong):
		s.log.Warn("command line too long", "event", "protocol-error", "reason", "line-too-long")
		return s.countError(replyUnknown.with("Line too long.")), true
	case err != nil:
		return s.readFailed(err, "command")
	}
	return s.handle(ctx, line), true
}

// readFailed decides what to do when reading from the client failed.
func (s *session) readFailed(err error, what string) (reply, bool) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		switch {
		case stopping:
			s.log.Info("closing for shutdown", "event", "shutdown", "state", s.state.String())
			return replyLocal.with("Service shutting down, try again later.").closing(), true
		case !time.Now().Before(s.deadline):
			s.log.Info("session time limit reached", "event", "timeout", "reason", "session", "state", s.state.String(), "reading", what)
			return replyLocal.with("Session time limit reached, closing connection.").closing(), true
		case what == "text" && time.Since(s.lastData) < s.cfg.Limits.IdleTimeout:
			// Not idle, yet cut off: the minimum data rate's deadline.
			s.log.Info("message text too slow", "event", "timeout", "reason", "data-rate", "state", s.state.String(),
				"bytes", s.dataBytes, "min_rate", s.cfg.Limits.MinDataRate)
			return replyLocal.with("Message text too slow, closing connection.").closing(), true
		default:
			s.log.Info("client too slow", "event", "timeout", "reason", "idle", "state", s.state.String(), "reading", what)
			return replyLocal.with("Timeout, closing connection.").closing(), true
		}
	}
	if what == "text" {
		s.log.Info("client went away during message text", "event", "client-gone", "state", "data", "bytes", s.dataBytes)
	} else if !errors.Is(err, io.EOF) {
		s.log.Info("read failed", "event", "client-gone", "err", err)
	}
	return reply{}, false
}

// handle dispatches one command line.
func (s *session) handle(ctx context.Context, line []byte) reply {
	if s.state == stateStart && s.user == "" && looksLikeTLS(line) {
		s.log.Warn("TLS handshake on the plain port", "event", "wrong-protocol")
		return reply{close: true, code: 0}
	}
	cmd := parseCommand(line)
	var r reply
	switch cmd.verb {
	case "USER":
		r = s.cmdUser(cmd)
	case "PASS":
		r = s.cmdPass(ctx, cmd)
	case "DATA":
		r = s.cmdData(ctx, cmd)
	case "NOOP":
		r = s.cmdNoop(cmd)
	case "QUIT":
		r = s.cmdQuit(cmd)
	default:
		if httpVerbs[cmd.verb] {
			s.log.Warn("HTTP request on the MPP port", "event", "wrong-protocol", "verb", logVerb(line))
			return replyUnknown.closing()
		}
		s.log.Info("unknown command", "event", "protocol-error", "verb", logVerb(line))
		r = replyUnknown
	}
	if r.code == 503 && cmd.verb != "NOOP" { // a NOOP past the junk limit logs junk-limit instead
		s.log.Info("command out of sequence", "event", "bad-sequence", "cmd", cmd.verb, "state", s.state.String())
	}
	return s.countError(r)
}

// countError counts replies that say the client spoke wrongly; the one that
// reaches the limit also ends the session (decision 3: 451, then close).
func (s *session) countError(r reply) reply {
	if !r.isError() {
		return r
	}
	s.errors++
	if s.errors < s.cfg.Limits.MaxErrors {
		return r
	}
	s.log.Warn("too many errors", "event", "error-limit", "errors", s.errors)
	if !s.send(r) {
		return reply{close: true}
	}
	return replyLocal.with("Too many errors, closing connection.").closing()
}

// sequenceOK reports whether verb is legal in the current state (RFC 1204
// §2.3, the legal table); a command that is not gets 503.
func (s *session) sequenceOK(verb string) bool {
	return legal[s.state][verb]
}

// cmdUser: USER <SP> <username>. Any syntactically valid name gets 250,
// known or not (RFC 1204 §2.3 recommends it, so that the user database
// cannot be probed).
func (s *session) cmdUser(cmd command) reply {
	if !s.sequenceOK("USER") {
		return replySequence
	}
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
	pattern := s.cfg.UserPattern
	if pattern == nil {
		pattern = defaultUserPattern
	}
	return pattern.MatchString(u)
}

var defaultUserPattern = regexp.MustCompile(DefaultUserPattern)

// cmdPass: PASS <SP> <password>. The password goes to the authenticator
// and nowhere else: it is never logged.
func (s *session) cmdPass(ctx context.Context, cmd command) reply {
	if !s.sequenceOK("PASS") {
		return replySequence
	}
	if !cmd.hasArg || cmd.badSeparator || cmd.arg == "" || len(cmd.arg) > maxPassLen || hasNULorCR(cmd.arg) {
		return replySyntax.with("Argument syntax error: password expected.")
	}
	start := time.Now()
	req := authn.Request{User: s.user, Password: cmd.arg, Client: s.client}
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
			s.log.Warn("authentication failed", "event", "auth-failed", "user", s.user,
				"reason", authn.Reason(err), "err", err, "penalty", penalty)
			penaltyWait(ctx, penalty)
		} else {
			s.log.Error("authentication backend unavailable", "event", "authn-unavailable", "user", s.user,
				"reason", authn.Reason(err), "err", err)
		}
		return r
	}
	s.identity = id
	s.state = stateAuthed
	s.event(Event{Kind: EventLogin, Result: "ok"})
	s.log.Info("authenticated", "event", "login", "user", s.user, "login", id.Login,
		"address", id.Addresses[0], "duration", time.Since(start).Round(time.Millisecond))
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

// padFailure makes every failed login take at least AuthFailureDelay, or
// the slowest recent rejection if that is longer (failureClock), plus up
// to 20% random extra, measured from the PASS command, so that the time a
// failure takes says nothing about why it failed (unknown user, wrong
// password, locked account, backend error). rejected says the backend
// refused the credentials; only such failures are timed. A zero
// AuthFailureDelay turns all of it off (tests).
func (s *session) padFailure(start time.Time, rejected bool) {
	floor := s.cfg.AuthFailureDelay
	if floor <= 0 {
		return
	}
	if rejected {
		s.srv.failures.record(time.Since(start))
	}
	floor = max(floor, s.srv.failures.slowest())
	var b [1]byte
	rand.Read(b[:])
	floor += floor * time.Duration(b[0]) / (5 * 255)
	if d := time.Until(start.Add(floor)); d > 0 {
		time.Sleep(d)
	}
}

// localError is 451 for a server-side failure; it also makes a later NOOP
// say 451 ("internal error has occurred ... during the current session").
func (s *session) localError(text string) reply {
	s.localErr = true
	return replyLocal.with(text)
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
			s.log.Warn("too many NOOP commands", "event", "junk-limit", "noops", s.noops)
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

// checkIdentity refuses an identity no backend should return: the engine
// relies on the primary address being a plain mailbox.
func checkIdentity(id authn.Identity) error {
	if len(id.Addresses) == 0 {
		return errors.New("backend returned no address")
	}
	return validAddress(id.Addresses[0])
}

// send writes one reply. It returns false when the client cannot be
// written to, which ends the session.
func (s *session) send(r reply) bool {
	if r.code == 0 {
		return false // close without a word
	}
	if r.code == 451 {
		s.localErr = true
	}
	s.setWriteDeadline(r.close)
	s.w.WriteString(itoa3(r.code))
	s.w.WriteByte(' ')
	s.w.WriteString(r.text)
	s.w.WriteString("\r\n")
	// Replies to pipelined commands are flushed together, when the next
	// read would block (deadlineReader.Read) or the session ends.
	if r.close || s.r.Buffered() == 0 {
		if err := s.w.Flush(); err != nil {
			s.log.Info("write failed", "event", "client-gone", "err", err)
			return false
		}
	}
	return true
}

// closeGrace is how long the reply that ends a session may take to write.
const closeGrace = 5 * time.Second

// setWriteDeadline bounds the write of replies: one idle timeout, cut at
// the session deadline. But a reply that is due is always given a short
// grace, even past the session deadline: the last word of a session, and
// the outcome of a delivery that ran over the deadline (a message queued
// but never acknowledged would be sent again by the client).
func (s *session) setWriteDeadline(last bool) {
	now := time.Now()
	grace := now.Add(min(s.cfg.Limits.IdleTimeout, closeGrace))
	t := s.limit(now.Add(s.cfg.Limits.IdleTimeout))
	if last || t.Before(grace) {
		t = grace
	}
	s.conn.SetWriteDeadline(t)
}

func itoa3(code int) string {
	return string([]byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)})
}

// limit caps t at the session deadline.
func (s *session) limit(t time.Time) time.Time {
	if t.After(s.deadline) {
		return s.deadline
	}
	return t
}

// errLineTooLong means a command line passed MaxLine; it has been read to
// its end, so the session is still in step with the client.
var errLineTooLong = errors.New("command line too long")

// readCommand reads one command line and returns it without its line
// ending, which may be CRLF or a bare LF (decision 4). A line longer than
// MaxLine is drained and reported as errLineTooLong.
func (s *session) readCommand() ([]byte, error) {
	s.mu.Lock()
	s.waitCommand = true
	s.readLimit = s.limit(time.Now().Add(s.cfg.Limits.IdleTimeout))
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.waitCommand = false
		s.mu.Unlock()
	}()

	var line []byte
	tooLong := false
	for {
		chunk, err := s.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return nil, err
		}
		if !tooLong {
			if len(line)+len(chunk) > s.cfg.Limits.MaxLine {
				tooLong = true
				line = nil
			} else {
				line = append(line, chunk...)
			}
		}
		if err == nil {
			break
		}
	}
	if tooLong {
		return nil, errLineTooLong
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// deadlineReader is what the session's bufio.Reader reads from. Before
// every read of the connection it flushes the replies waiting to be sent
// (so pipelined commands are answered in order and in one write) and sets
// the read deadline in force: the request deadline while a command is read,
// the minimum-data-rate deadline during message text, never past the
// session deadline.
type deadlineReader struct{ s *session }

func (d deadlineReader) Read(p []byte) (int, error) {
	s := d.s
	if s.w.Buffered() > 0 {
		s.setWriteDeadline(false)
		if err := s.w.Flush(); err != nil {
			return 0, err
		}
	}
	s.mu.Lock()
	if s.stopping && s.waitCommand {
		s.mu.Unlock()
		return 0, errStopping
	}
	limit := s.readLimit
	if !s.dataStart.IsZero() {
		limit = s.dataDeadline()
	}
	s.conn.SetReadDeadline(limit)
	s.mu.Unlock()
	n, err := s.conn.Read(p)
	s.dataBytes += int64(n)
	if n > 0 {
		s.lastData = time.Now()
	}
	return n, err
}

// errStopping ends a read when the server shuts down; it is a timeout so
// readFailed treats it like the deadline the shutdown watcher sets.
var errStopping = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string   { return "server shutting down" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// dataDeadline is the read deadline during message text: one idle timeout
// from now, but also no later than the start of the text plus one idle
// timeout of grace plus the time the bytes received so far would take at
// MinDataRate (Postfix's smtpd_min_data_rate). A client trickling text
// slower than that is cut off.
func (s *session) dataDeadline() time.Time {
	idle := s.cfg.Limits.IdleTimeout
	t := time.Now().Add(idle)
	if rate := s.cfg.Limits.MinDataRate; rate > 0 {
		byRate := s.dataStart.Add(idle + time.Duration(s.dataBytes)*time.Second/time.Duration(rate))
		if byRate.Before(t) {
			t = byRate
		}
	}
	return s.limit(t)
}

// cmdData: DATA, then the message text, then the reply to the text.
func (s *session) cmdData(ctx context.Context, cmd command) reply {
	if !s.sequenceOK("DATA") {
		return replySequence
	}
	if cmd.hasArg || cmd.badSeparator {
		return replySyntax.with("Argument syntax error: DATA takes no argument.")
	}
	lim := s.cfg.Limits
	if err := spool.CheckFree(s.cfg.StagingDir, lim.MaxMessage+lim.MaxMessage/2); err != nil {
		s.log.Error("cannot stage a message", "event", "staging-unavailable", "err", err)
		s.state = stateDone
		return s.localError("Insufficient system storage, try again later.")
	}
	if !s.send(replyStartMsg) {
		return reply{close: true}
	}
	buf := spool.New(s.cfg.StagingDir, s.cfg.MemoryThreshold)
	defer buf.Close()

	s.dataStart, s.dataBytes = time.Now(), 0
	res, err := readText(s.r, textLimits{maxMessage: lim.MaxMessage, maxHeader: lim.MaxHeader}, buf)
	s.dataStart = time.Time{}
	if err != nil {
		r, ok := s.readFailed(err, "text")
		if !ok {
			return reply{close: true}
		}
		return r
	}
	r := s.finishMessage(ctx, res, buf)
	s.event(Event{Kind: EventMessage, Result: messageResult(r.code)})
	if r.code == 250 {
		s.state = stateSent
		s.noops = 0
	} else {
		s.state = stateDone
	}
	return r
}
