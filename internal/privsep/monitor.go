package privsep

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/sendlimit"
)

// ViolationError is what Serve returns when the engine broke the protocol:
// a malformed, oversized, unknown or out-of-place frame, an id reused while
// in flight, or more requests in flight than allowed. The caller stops the
// engine and exits non-zero.
type ViolationError struct {
	Reason string
}

func (e *ViolationError) Error() string {
	return "privsep: protocol violation by the engine: " + e.Reason
}

// Monitor answers the engine's requests. Set the fields, then call Serve
// once.
type Monitor struct {
	Auth     authn.Authenticator
	Delivery delivery.Deliverer
	// Accounts, when not nil, is asked about every successful login
	// (the account policy of the delivery backend).
	Accounts delivery.AccountChecker
	// SessionTimeout is how long a token stays valid after the login
	// that earned it (the engine ends sessions sooner).
	SessionTimeout time.Duration
	// MaxInFlight is the most auth and deliver requests that may wait
	// for their reply at once; one more is a violation.
	MaxInFlight int
	// MaxRecipients bounds a deliver request's recipients.
	MaxRecipients int
	// MaxMessage is the largest staged message file accepted, in octets.
	MaxMessage int64
	// SendLimit, when not nil, holds each login to the sending limits
	// here too, built from the same configuration as the engine's, so
	// that an engine under an attacker's control cannot post past them.
	// Serve runs its sweeper while it serves.
	SendLimit *sendlimit.Limiter
	Log       *slog.Logger
	// Notify, when not nil, passes a notify request's state to the
	// service manager.
	Notify func(state string) error
	// OnViolation, when not nil, is called as soon as a violation is
	// found, before Serve waits for the requests under way (the caller
	// stops the engine then).
	OnViolation func()

	now func() time.Time // tests move time

	mu        sync.Mutex
	grants    map[string]*grant // by token
	bySession map[string]string // session id -> token
}

// grant is what a token stands for: one successful login in one session.
type grant struct {
	login     string
	addresses []string
	account   string
	session   string
	expires   time.Time
}

// Serve reads the engine's requests from c until the engine closes its end,
// ctx is done, or the engine breaks the protocol. Requests are answered
// concurrently. Before returning, Serve waits for every request it started
// (deliveries included) to finish. It returns nil when the engine closed
// its end, a *ViolationError for a protocol violation, ctx.Err(), or the
// read error.
func (m *Monitor) Serve(ctx context.Context, c *net.UnixConn) error {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.mu.Lock()
	m.grants = map[string]*grant{}
	m.bySession = map[string]string{}
	m.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	// The sending limits' sweeper stops once the deliveries under way
	// have finished (this defer runs after wg.Wait below), and then
	// sums up the refusal windows still open.
	if m.SendLimit != nil {
		sweepStop, sweepDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(sweepDone)
			m.SendLimit.Run(sweepStop)
		}()
		defer func() {
			close(sweepStop)
			<-sweepDone
		}()
	}

	var (
		wg       sync.WaitGroup
		flightMu sync.Mutex
		inFlight = map[uint64]bool{}
	)
	defer wg.Wait()
	// start runs handle for a request that gets a reply, keeping it in
	// flight until just before the reply is written, so the engine may
	// reuse the id once it has the reply.
	start := func(id uint64, handle func() reply) error {
		flightMu.Lock()
		defer flightMu.Unlock()
		if inFlight[id] {
			return fmt.Errorf("id %d reused while in flight", id)
		}
		if len(inFlight) >= m.MaxInFlight {
			return fmt.Errorf("more than %d requests in flight", m.MaxInFlight)
		}
		inFlight[id] = true
		wg.Go(func() {
			r := handle()
			r.Type, r.ID = typeReply, id
			flightMu.Lock()
			delete(inFlight, id)
			flightMu.Unlock()
			m.reply(c, r)
		})
		return nil
	}

	buf := make([]byte, MaxFrame+1)
	lim := requestLimits{MaxRecipients: m.MaxRecipients}
	for {
		p, err := receive(c, buf)
		switch {
		case errors.Is(err, errHangup):
			m.Log.Info("the engine closed its end of the monitor connection")
			return nil
		case errors.Is(err, errEmptyFrame):
			return m.violation("empty frame")
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("privsep: read from the engine: %w", err)
		case p.oversized:
			p.closeFDs()
			return m.violation(fmt.Sprintf("frame larger than %d octets", MaxFrame))
		}
		req, err := decodeRequest(p.data, lim)
		if err != nil {
			p.closeFDs()
			return m.violation(err.Error())
		}
		switch r := req.(type) {
		case *authRequest:
			if len(p.fds) > 0 || p.fdsCut {
				p.closeFDs()
				return m.violation("auth frame with a file descriptor")
			}
			err = start(r.ID, func() reply { return m.authenticate(ctx, r) })
		case *deliverRequest:
			fds, cut := p.fds, p.fdsCut
			err = start(r.ID, func() reply { return m.deliver(ctx, r, fds, cut) })
			if err != nil {
				p.closeFDs()
			}
		case *endRequest:
			if len(p.fds) > 0 || p.fdsCut {
				p.closeFDs()
				return m.violation("end frame with a file descriptor")
			}
			m.end(r)
		case *notifyRequest:
			if len(p.fds) > 0 || p.fdsCut {
				p.closeFDs()
				return m.violation("notify frame with a file descriptor")
			}
			m.notify(r)
		}
		if err != nil {
			return m.violation(err.Error())
		}
	}
}

// violation logs a protocol violation and returns it as an error. Serve
// reads nothing more from the engine after one.
func (m *Monitor) violation(reason string) error {
	m.Log.Error("the engine broke the monitor protocol; stopping", logkey.Event, logkey.EventPrivsepViolation, logkey.Reason, reason)
	if m.OnViolation != nil {
		m.OnViolation()
	}
	return &ViolationError{Reason: reason}
}

// refused logs a refused request as a security event.
func (m *Monitor) refused(kind, reason, session string, attrs ...any) {
	args := append([]any{logkey.Event, logkey.EventPrivsepRefused, "request", kind, logkey.Reason, reason, logkey.Session, session}, attrs...)
	m.Log.Warn("refused a request from the engine", args...)
}

func (m *Monitor) reply(c *net.UnixConn, r reply) {
	b, err := encode(r)
	if err == nil {
		err = send(c, b, nil)
	}
	if err != nil {
		m.Log.Debug("cannot send a reply to the engine", "id", r.ID, logkey.Err, err)
	}
}

// authenticate runs the backend and the account policy, and issues a token
// for a successful login. Any earlier login of the same session is
// forgotten first, whatever the outcome.
func (m *Monitor) authenticate(ctx context.Context, r *authRequest) reply {
	m.forgetSession(r.Session)
	id, err := m.Auth.Authenticate(ctx, authn.Request{
		User:     string(r.User),
		Password: string(r.Password),
		Client:   r.Client,
		Session:  r.Session,
	})
	if err == nil && len(id.Addresses) == 0 {
		err = authn.Unavailable("bad-identity", errors.New("the backend returned no address"))
	}
	if err == nil && m.Accounts != nil {
		if aerr := m.Accounts.CheckAccount(id.Login, id.Account); aerr != nil {
			if delivery.IsPermanent(aerr) {
				err = authn.Rejected(delivery.Reason(aerr), aerr)
			} else {
				err = authn.Unavailable(delivery.Reason(aerr), aerr)
			}
			m.Log.Info("account refused at login", logkey.Event, logkey.EventAccountRefused, logkey.Session, r.Session,
				logkey.Login, id.Login, logkey.Account, id.Account, logkey.Reason, delivery.Reason(aerr), logkey.Err, aerr)
		}
	}
	if err != nil {
		res := resultUnavailable
		if authn.IsBadCredentials(err) {
			res = resultBad
		}
		return reply{Result: res, Reason: truncate(authn.Reason(err), maxReason)}
	}

	var random [32]byte
	rand.Read(random[:]) // never fails (crypto/rand)
	token := newToken(random)
	now := m.now()
	m.mu.Lock()
	for t, g := range m.grants { // drop what has expired
		if !now.Before(g.expires) {
			delete(m.grants, t)
			delete(m.bySession, g.session)
		}
	}
	m.grants[token] = &grant{
		login:     id.Login,
		addresses: id.Addresses,
		account:   id.Account,
		session:   r.Session,
		expires:   now.Add(m.SessionTimeout),
	}
	m.bySession[r.Session] = token
	m.mu.Unlock()
	return reply{Result: resultOK, Login: id.Login, Addresses: id.Addresses, Token: token}
}

// forgetSession drops the token of session, if it has one.
func (m *Monitor) forgetSession(session string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.bySession[session]; ok {
		delete(m.grants, t)
		delete(m.bySession, session)
	}
}

// deliver checks a deliver request and its descriptors and, if all is
// well, runs the delivery backend with the identity the token stands for.
// It closes fds.
func (m *Monitor) deliver(ctx context.Context, r *deliverRequest, fds []int, fdsCut bool) reply {
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	refuse := func(reason string, attrs ...any) reply {
		m.refused(typeDeliver, reason, r.Session, attrs...)
		return reply{Result: resultRefused, Reason: reason}
	}
	if len(fds) != 1 || fdsCut {
		return refuse("fd-count", "fds", len(fds))
	}
	g, reason := m.checkToken(r.Token, r.Session)
	if reason != "" {
		return refuse(reason)
	}
	if !senderOf(r.Sender, g.addresses) {
		return refuse("sender-not-identity", logkey.Login, g.login, "sender", r.Sender)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil {
		return refuse("fd-stat", logkey.Err, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return refuse("fd-not-regular", "mode", fmt.Sprintf("%o", st.Mode))
	case st.Nlink != 0:
		return refuse("fd-linked", "links", st.Nlink)
	case st.Size > m.MaxMessage:
		return refuse("fd-too-big", "size", st.Size, "max", m.MaxMessage)
	}

	f := os.NewFile(uintptr(fds[0]), "staged-message")
	fds = nil // f owns the descriptor now
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return reply{Result: resultTemporary, Reason: "seek"}
	}

	// The sending limits, counted from here as in the engine: a delivery
	// that fails gives its count back, so only delivered messages count.
	//
	// A sound engine has checked the same limits for the same login and
	// recipients before asking, so a refusal here nearly always means an
	// engine that skipped its check. Nearly: the monitor counts a message
	// a moment after the engine, and when a minute (for the day, half
	// hour) boundary falls in between, it counts it in the next slot and
	// forgets it one slot later than the engine does; and when the table
	// is full the two may each make room by forgetting a different login
	// (the engine's also sees the messages it refuses). So a login right
	// at its limit can be let through by a sound engine and refused here.
	// Concurrent and failed deliveries cannot do it: every message the
	// monitor counts was counted by the engine first, and a failed one is
	// given back here before the engine hears of it. Hence a refusal is
	// only that (logged, and a 451 to the client through the engine),
	// never a violation that stops anything.
	reserved, refusal := m.SendLimit.Reserve(g.login, len(r.Recipients))
	if refusal != nil {
		return refuse("send-limit", logkey.Login, g.login, "limit", refusal.Limit, "max", refusal.Max,
			"count", refusal.Count, "recipients", len(r.Recipients))
	}
	err := m.Delivery.Deliver(context.WithoutCancel(ctx), envelope(g, r), f)
	if err != nil {
		reserved.Cancel()
	}
	switch {
	case err == nil:
		return reply{Result: resultQueued}
	case delivery.IsPermanent(err):
		return reply{Result: resultPermanent, Reason: truncate(delivery.Reason(err), maxReason)}
	default:
		return reply{Result: resultTemporary, Reason: truncate(delivery.Reason(err), maxReason)}
	}
}

// envelope is the delivery envelope for a checked request: who sends comes
// from the token's grant, never from the frame.
func envelope(g grant, r *deliverRequest) delivery.Envelope {
	return delivery.Envelope{
		Sender:     r.Sender,
		Recipients: r.Recipients,
		Login:      g.login,
		Account:    g.account,
		Session:    g.session,
	}
}

// checkToken returns a copy of the grant of token if session may use it
// now, or the reason it may not.
func (m *Monitor) checkToken(token, session string) (grant, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.grants[token]
	switch {
	case !ok:
		return grant{}, "unknown-token"
	case g.session != session:
		return grant{}, "other-session-token"
	case !m.now().Before(g.expires):
		delete(m.grants, token)
		delete(m.bySession, g.session)
		return grant{}, "expired-token"
	}
	return *g, ""
}

// senderOf reports whether sender is one of addrs: the local part exactly,
// the domain without regard to case.
func senderOf(sender string, addrs []string) bool {
	for _, a := range addrs {
		if sameAddress(sender, a) {
			return true
		}
	}
	return false
}

func sameAddress(a, b string) bool {
	ai, bi := strings.LastIndexByte(a, '@'), strings.LastIndexByte(b, '@')
	if ai < 0 || bi < 0 {
		return a == b
	}
	return a[:ai] == b[:bi] && strings.EqualFold(a[ai:], b[bi:])
}

// end forgets the token of a session that ended. A token that is already
// gone (it expired) is no matter; another session's token is refused.
func (m *Monitor) end(r *endRequest) {
	m.mu.Lock()
	g, ok := m.grants[r.Token]
	if ok && g.session == r.Session {
		delete(m.grants, r.Token)
		delete(m.bySession, r.Session)
	}
	m.mu.Unlock()
	if ok && g.session != r.Session {
		m.refused(typeEnd, "other-session-token", r.Session)
	}
}

func (m *Monitor) notify(r *notifyRequest) {
	if m.Notify == nil {
		return
	}
	if err := m.Notify(r.State); err != nil {
		m.Log.Warn("cannot notify the service manager", logkey.Err, err)
	}
}

// CheckHello reports whether h fits in one frame, so that the caller can
// refuse a configuration and certificate too large before it starts the
// engine.
func CheckHello(h Hello) error {
	h.Type = typeHello
	_, err := encode(h)
	return err
}

// SendHello sends the first frame to the engine.
func SendHello(c *net.UnixConn, h Hello) error {
	h.Type = typeHello
	b, err := encode(h)
	if err != nil {
		return err
	}
	return send(c, b, nil)
}

// SendTLS sends a new certificate and key to the engine.
func SendTLS(c *net.UnixConn, p TLSPair) error {
	b, err := encode(tlsFrame{Type: typeTLS, Cert: p.Cert, Key: p.Key})
	if err != nil {
		return err
	}
	return send(c, b, nil)
}
