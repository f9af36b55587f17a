package privsep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/logkey"
)

// ClientOptions configure the engine's side.
type ClientOptions struct {
	// MaxInFlight is the most auth and deliver requests waiting for a
	// reply at once; it must not exceed the monitor's. A request that
	// would exceed it waits for a slot. A slot is held until the reply
	// arrives, even when the caller stopped waiting, so the engine never
	// has more in flight than the monitor allows.
	MaxInFlight int
	Log         *slog.Logger
	// OnTLS, when not nil, receives every certificate and key the
	// monitor sends after the hello. It runs on the reading goroutine
	// and must not block.
	OnTLS func(TLSPair)
}

// Client is the engine's side of the socketpair. It implements
// authn.Authenticator and delivery.Deliverer by asking the monitor.
type Client struct {
	c    *net.UnixConn
	opts ClientOptions
	log  *slog.Logger
	sem  chan struct{} // one element per request in flight

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan reply
	tokens  map[string]string // session id -> token

	done chan struct{} // closed when the monitor is gone
	err  error         // why, set before done is closed
}

var (
	_ authn.Authenticator = (*Client)(nil)
	_ delivery.Deliverer  = (*Client)(nil)
)

// errMonitorGone is what requests fail with once the connection is lost.
var errMonitorGone = errors.New("privsep: the monitor is gone")

// ReadHello reads the monitor's first frame, which must be the hello.
func ReadHello(c *net.UnixConn) (Hello, error) {
	buf := make([]byte, MaxFrame+1)
	p, err := receive(c, buf)
	if err != nil {
		return Hello{}, fmt.Errorf("privsep: read the hello: %w", err)
	}
	p.closeFDs()
	if p.oversized {
		return Hello{}, errors.New("privsep: oversized hello")
	}
	if typ, err := frameType(p.data); err != nil || typ != typeHello {
		return Hello{}, fmt.Errorf("privsep: the first frame is not a hello (%q, %v)", typ, err)
	}
	var h Hello
	if err := decodeStrict(p.data, &h, true); err != nil {
		return Hello{}, fmt.Errorf("privsep: hello: %w", err)
	}
	return h, nil
}

// NewClient starts reading the monitor's replies on c, after ReadHello.
func NewClient(c *net.UnixConn, opts ClientOptions) (*Client, error) {
	if opts.MaxInFlight < 1 {
		return nil, errors.New("privsep: MaxInFlight must be at least 1")
	}
	cl := &Client{
		c:       c,
		opts:    opts,
		log:     opts.Log,
		sem:     make(chan struct{}, opts.MaxInFlight),
		pending: map[uint64]chan reply{},
		tokens:  map[string]string{},
		done:    make(chan struct{}),
	}
	if cl.log == nil {
		cl.log = slog.New(slog.DiscardHandler)
	}
	go cl.read(make([]byte, MaxFrame+1))
	return cl, nil
}

// Done is closed when the connection to the monitor is lost; the engine
// then stops accepting and exits non-zero.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err says why Done was closed.
func (cl *Client) Err() error {
	<-cl.done
	return cl.err
}

// Close closes the connection; pending requests fail.
func (cl *Client) Close() error { return cl.c.Close() }

// read dispatches the monitor's frames until the connection fails.
func (cl *Client) read(buf []byte) {
	var err error
	for err == nil {
		var p packet
		p, err = receive(cl.c, buf)
		if err != nil {
			break
		}
		p.closeFDs()
		err = cl.dispatch(p)
	}
	if errors.Is(err, errHangup) {
		err = errMonitorGone
	}
	cl.mu.Lock()
	cl.err = err
	cl.mu.Unlock()
	close(cl.done)
}

// dispatch handles one frame from the monitor. The monitor is trusted, so
// a frame it should not have sent means a bug: the connection is given up.
func (cl *Client) dispatch(p packet) error {
	if p.oversized {
		return errors.New("privsep: oversized frame from the monitor")
	}
	typ, err := frameType(p.data)
	if err != nil {
		return fmt.Errorf("privsep: bad frame from the monitor: %w", err)
	}
	switch typ {
	case typeReply:
		var r reply
		if err := decodeStrict(p.data, &r, true); err != nil {
			return fmt.Errorf("privsep: bad reply from the monitor: %w", err)
		}
		cl.mu.Lock()
		ch, ok := cl.pending[r.ID]
		delete(cl.pending, r.ID)
		cl.mu.Unlock()
		if !ok {
			return fmt.Errorf("privsep: reply to unknown request %d", r.ID)
		}
		<-cl.sem
		ch <- r
	case typeTLS:
		var t tlsFrame
		if err := decodeStrict(p.data, &t, true); err != nil {
			return fmt.Errorf("privsep: bad tls frame from the monitor: %w", err)
		}
		if cl.opts.OnTLS != nil {
			cl.opts.OnTLS(TLSPair{Cert: t.Cert, Key: t.Key})
		}
	default:
		return fmt.Errorf("privsep: unexpected %q frame from the monitor", truncate(typ, 32))
	}
	return nil
}

// newID returns an id no request in flight has.
func (cl *Client) newID() uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.nextID++
	return cl.nextID
}

// call sends a request that gets a reply and waits for the reply. build
// makes the frame for the id it is given; f, if not nil, goes with it.
func (cl *Client) call(ctx context.Context, build func(id uint64) any, f *os.File) (reply, error) {
	select {
	case cl.sem <- struct{}{}:
	case <-ctx.Done():
		return reply{}, ctx.Err()
	case <-cl.done:
		return reply{}, errMonitorGone
	}
	id := cl.newID()
	b, err := encode(build(id))
	if err != nil {
		<-cl.sem
		return reply{}, err
	}
	ch := make(chan reply, 1)
	cl.mu.Lock()
	cl.pending[id] = ch
	cl.mu.Unlock()
	if err := send(cl.c, b, f); err != nil {
		cl.mu.Lock()
		delete(cl.pending, id)
		cl.mu.Unlock()
		<-cl.sem
		return reply{}, fmt.Errorf("privsep: send: %w", err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return reply{}, ctx.Err()
	case <-cl.done:
		return reply{}, errMonitorGone
	}
}

// Authenticate asks the monitor to check a login. On success the session's
// token is kept for its deliveries; any earlier one is dropped first.
func (cl *Client) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	cl.setToken(req.Session, "")
	r, err := cl.call(ctx, func(id uint64) any {
		return authRequest{Type: typeAuth, ID: id, User: []byte(req.User), Password: []byte(req.Password),
			Client: req.Client, Session: req.Session}
	}, nil)
	if err != nil {
		return authn.Identity{}, authn.Unavailable("monitor", err)
	}
	switch r.Result {
	case resultOK:
		if validToken(r.Token) != nil || len(r.Addresses) == 0 {
			return authn.Identity{}, authn.Unavailable("monitor", errors.New("malformed login reply"))
		}
		cl.setToken(req.Session, r.Token)
		return authn.Identity{Login: r.Login, Addresses: r.Addresses}, nil
	case resultBad:
		return authn.Identity{}, authn.Rejected(r.Reason, nil)
	case resultUnavailable:
		return authn.Identity{}, authn.Unavailable(r.Reason, nil)
	}
	return authn.Identity{}, authn.Unavailable("monitor", fmt.Errorf("unexpected result %q", r.Result))
}

func (cl *Client) setToken(session, token string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if token == "" {
		delete(cl.tokens, session)
	} else {
		cl.tokens[session] = token
	}
}

// Deliver asks the monitor to deliver msg with the token of env.Session.
// msg must be the engine's staged message: an unlinked regular *os.File,
// whose descriptor is passed as it is; the message is not copied again.
func (cl *Client) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	cl.mu.Lock()
	token := cl.tokens[env.Session]
	cl.mu.Unlock()
	if token == "" {
		return delivery.Temporary("no-login", errors.New("privsep: the session has no login"))
	}
	f, err := asStagedFile(msg)
	if err != nil {
		return delivery.Temporary("staging", err)
	}
	r, err := cl.call(ctx, func(id uint64) any {
		return deliverRequest{Type: typeDeliver, ID: id, Token: token, Session: env.Session,
			Sender: env.Sender, Recipients: env.Recipients}
	}, f)
	if err != nil {
		return delivery.Temporary("monitor", err)
	}
	switch r.Result {
	case resultQueued:
		return nil
	case resultPermanent:
		return delivery.Permanent(r.Reason, nil)
	case resultTemporary:
		return delivery.Temporary(r.Reason, nil)
	case resultRefused:
		cl.log.Error("the monitor refused a delivery", logkey.Event, logkey.EventPrivsepRefused, logkey.Session, env.Session, logkey.Reason, r.Reason)
		return delivery.Temporary("refused", fmt.Errorf("privsep: the monitor refused the delivery: %s", r.Reason))
	}
	return delivery.Temporary("monitor", fmt.Errorf("unexpected result %q", r.Result))
}

// asStagedFile returns msg as the unlinked regular file the monitor takes.
func asStagedFile(msg io.Reader) (*os.File, error) {
	f, ok := msg.(*os.File)
	if !ok {
		return nil, fmt.Errorf("privsep: the message is a %T, not a staged file", msg)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("privsep: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 0 {
		return nil, errors.New("privsep: the message is not an unlinked regular file")
	}
	return f, nil
}

// End tells the monitor that a session ended, so its token is forgotten.
func (cl *Client) End(session string) {
	cl.mu.Lock()
	token := cl.tokens[session]
	delete(cl.tokens, session)
	cl.mu.Unlock()
	if token == "" {
		return
	}
	b, err := encode(endRequest{Type: typeEnd, ID: cl.newID(), Session: session, Token: token})
	if err == nil {
		err = send(cl.c, b, nil)
	}
	if err != nil {
		cl.log.Debug("cannot tell the monitor a session ended", logkey.Session, session, logkey.Err, err)
	}
}

// Notify asks the monitor to pass state (sd_notify assignments, one per
// line) to the service manager.
func (cl *Client) Notify(state string) error {
	if err := validNotify(state); err != nil {
		return fmt.Errorf("privsep: %w", err)
	}
	b, err := encode(notifyRequest{Type: typeNotify, ID: cl.newID(), State: state})
	if err != nil {
		return err
	}
	return send(cl.c, b, nil)
}
