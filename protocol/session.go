package protocol

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/logkey"
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
// The dispatcher (handle) consults it, once, before any handler runs: a
// command out of sequence gets 503 whatever its argument.
var legal = map[state]map[string]bool{
	stateStart:  {"USER": true},
	stateUser:   {"PASS": true},
	stateAuthed: {"DATA": true},
	stateSent:   {"USER": true, "DATA": true},
	stateDone:   {},
}

// session is one client connection.
type session struct {
	srv  *Server
	cfg  *Config
	conn net.Conn
	src  *sessionSource // what r (and the text reader) read from
	r    *bufio.Reader  // command lines; small, see commandBufferSize
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
	s.log = logger.With(logkey.Client, s.client, logkey.Session, s.id)
	s.src = &sessionSource{s: s}
	s.r = bufio.NewReaderSize(s.src, commandBufferSize)
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
	// A load balancer's health check (the daemon marks its connection)
	// comes every few seconds: its start and end are logged at debug.
	level := slog.LevelInfo
	if hc, ok := s.conn.(interface{ HealthCheck() bool }); ok && hc.HealthCheck() {
		level = slog.LevelDebug
	}
	s.log.Log(ctx, level, "session started", logkey.Event, logkey.EventConnect)
	defer func() {
		s.conn.Close()
		s.log.Log(ctx, level, "session ended", logkey.Event, logkey.EventDisconnect, "state", s.state.String(),
			logkey.Duration, time.Since(start).Round(time.Millisecond))
		s.event(Event{Kind: EventSessionEnd, Duration: time.Since(start)})
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
			s.send(s.lastWordAtShutdown())
			return
		}
		r, ok := s.next(ctx)
		if !ok || !s.send(r) || r.close {
			return
		}
	}
}

// next reads one command and handles it. ok is false when the session
// must end without a reply (the client is gone).
func (s *session) next(ctx context.Context) (r reply, ok bool) {
	line, err := s.readCommand()
	switch {
	case errors.Is(err, errLineTooLong):
		s.log.Warn("command line too long", logkey.Event, logkey.EventProtocolError, logkey.Reason, "line-too-long")
		return s.countError(replyUnknown.with("Line too long.")), true
	case err != nil:
		return s.readFailed(err, "command")
	}
	return s.handle(ctx, line), true
}

// sequenced are the commands whose use depends on the state (the legal
// table); NOOP and QUIT are legal in every state.
var sequenced = map[string]bool{"USER": true, "PASS": true, "DATA": true}

// handle dispatches one command line: a command the legal table does not
// allow in the current state gets 503 here, so the handlers only ever run
// in a state where their command is legal.
func (s *session) handle(ctx context.Context, line []byte) reply {
	if s.state == stateStart && s.user == "" && looksLikeTLS(line) {
		s.log.Warn("TLS handshake on the plain port", logkey.Event, logkey.EventWrongProtocol)
		return reply{close: true, code: 0}
	}
	if s.state == stateStart && s.user == "" && bytes.HasPrefix(line, []byte("PROXY ")) {
		// A PROXY protocol header the daemon did not take: the client
		// is not a balancer in proxy_protocol_from.
		s.log.Warn("PROXY protocol header from an address not in proxy_protocol_from, closed", logkey.Event, logkey.EventProxyRefused)
		return reply{close: true, code: 0}
	}
	cmd := parseCommand(line)
	var r reply
	switch {
	case sequenced[cmd.verb] && !legal[s.state][cmd.verb]:
		r = replySequence
	case cmd.verb == "USER":
		r = s.cmdUser(cmd)
	case cmd.verb == "PASS":
		r = s.cmdPass(ctx, cmd)
	case cmd.verb == "DATA":
		r = s.cmdData(ctx, cmd)
	case cmd.verb == "NOOP":
		r = s.cmdNoop(cmd)
	case cmd.verb == "QUIT":
		r = s.cmdQuit(cmd)
	default:
		if httpVerbs[cmd.verb] {
			s.log.Warn("HTTP request on the MPP port", logkey.Event, logkey.EventWrongProtocol, "verb", logVerb(cmd))
			return replyUnknown.closing()
		}
		s.log.Info("unknown command", logkey.Event, logkey.EventProtocolError, "verb", logVerb(cmd))
		r = replyUnknown
	}
	if r.code == 503 && cmd.verb != "NOOP" { // a NOOP past the junk limit logs junk-limit instead
		s.log.Info("command out of sequence", logkey.Event, logkey.EventBadSequence, "cmd", cmd.verb, "state", s.state.String())
	}
	return s.countError(r)
}

// countError counts replies that say the client spoke wrongly; the one that
// reaches the limit also ends the session (decision 13: 451, then close).
func (s *session) countError(r reply) reply {
	if !r.isError() {
		return r
	}
	s.errors++
	if s.errors < s.cfg.Limits.MaxErrors {
		return r
	}
	s.log.Warn("too many errors", logkey.Event, logkey.EventErrorLimit, "errors", s.errors)
	if !s.send(r) {
		return reply{close: true}
	}
	return replyLocal.with("Too many errors, closing connection.").closing()
}

// localError is 451 for a server-side failure; it also makes a later NOOP
// say 451 ("internal error has occurred ... during the current session").
func (s *session) localError(text string) reply {
	s.localErr = true
	return replyLocal.with(text)
}
