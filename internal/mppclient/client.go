// Package mppclient is the client side of the Message Posting Protocol
// (RFC 1204): connect, read the 220 greeting, log in with USER and PASS,
// post messages with DATA, and QUIT.
//
// It is the wire layer shared by the mpp command (mpp send, mpp sendmail
// and mpp bench) and the daemon's end-to-end tests. It knows nothing
// about flags, environment variables or terminals.
//
// Every failure is one of four error types, so callers can tell who is at
// fault without parsing text:
//
//   - *ReplyError: the server answered with a reply other than the one that
//     means success (for example 530 after PASS);
//   - *ProtocolError: the server sent something that is not a reply;
//   - *ConnError: the connection could not be made, broke, or timed out;
//   - *InputError: the message could not be read from its source (the
//     connection is then dropped without the terminator, so the server
//     discards the partial text);
//
// and *ArgumentError for a user name or password that cannot be sent at all.
package mppclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mppd/mppd/internal/message"
)

// DefaultPort is the port assigned to MPP (RFC 1204 §3.2).
const DefaultPort = "218"

// DefaultTLSPort is the port mppd's example configuration gives MPP inside
// TLS (listen_tls). It is this project's choice: IANA has assigned no port
// to MPP over TLS.
const DefaultTLSPort = "1218"

// DefaultTimeout bounds each read and write when Options.Timeout is zero.
// It matches the server's idle timeout (RFC 1204 §3.3, mppd's default).
const DefaultTimeout = 5 * time.Minute

const (
	maxReplyLine  = 4096 // longer reply lines are a protocol error
	maxReplyLines = 100  // continuation lines ("250-...") per reply
	writeBuffer   = 32 * 1024
)

// Options tune a Client. The zero value is ready to use.
type Options struct {
	// Timeout bounds every single read and write on the connection (not
	// the whole session). Zero means DefaultTimeout.
	Timeout time.Duration
	// Trace, if not nil, receives the dialogue one line at a time: "C: "
	// for what the client sends, "S: " for what the server answers. The
	// PASS argument is masked, and the message text is summarised by its
	// size rather than shown.
	Trace io.Writer
	// TLS, if not nil, makes Dial speak TLS from the first byte (mpps):
	// the handshake is done before the greeting is read. Its ServerName
	// should be set (Dial sets it to the host of addr when it is empty).
	TLS *tls.Config
}

// Reply is one server reply: a three-digit code and its text.
type Reply struct {
	Code int
	// Text is the text after the code. The lines of a multi-line reply
	// ("250-a", "250 b") are joined with a space.
	Text string
}

func (r Reply) String() string {
	if r.Text == "" {
		return strconv.Itoa(r.Code)
	}
	return strconv.Itoa(r.Code) + " " + r.Text
}

// ReplyError reports a reply other than the one that means success.
type ReplyError struct {
	// Step is what the reply answered: "greeting", "USER", "PASS",
	// "DATA", "message" (the text after DATA), "NOOP" or "QUIT".
	Step  string
	Reply Reply
}

func (e *ReplyError) Error() string {
	var what string
	switch e.Step {
	case "greeting":
		what = "server refused the connection"
	case "USER":
		what = "server refused the user name"
	case "PASS":
		what = "server refused the password"
	case "DATA":
		what = "server refused to take a message"
	case "message":
		what = "server refused the message"
	default:
		what = "server refused " + e.Step
	}
	return what + ": " + e.Reply.String()
}

// Temporary reports whether the server called the failure temporary (a 4yz
// reply): trying again later may succeed.
func (e *ReplyError) Temporary() bool { return e.Reply.Code/100 == 4 }

// ProtocolError reports bytes from the server that are not an MPP reply.
type ProtocolError struct {
	Step string
	Line string // what was received, possibly cut short
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("malformed reply from the server to %s: %q", e.Step, e.Line)
}

// ConnError reports a connection that could not be made, broke or timed
// out.
type ConnError struct {
	Addr string // the server, when known
	Step string
	Err  error
}

func (e *ConnError) Error() string {
	where := "the server"
	if e.Addr != "" {
		where = e.Addr
	}
	if e.Step == "dial" {
		// "dial tcp 127.0.0.1:218: connect: connection refused" repeats
		// the address; keep the part that says what went wrong.
		cause := e.Err
		var op *net.OpError
		if errors.As(cause, &op) && op.Err != nil {
			cause = op.Err
		}
		return fmt.Sprintf("cannot connect to %s: %v", where, cause)
	}
	if errors.Is(e.Err, io.EOF) {
		return fmt.Sprintf("connection to %s closed by the server during %s", where, e.Step)
	}
	return fmt.Sprintf("connection to %s failed during %s: %v", where, e.Step, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// InputError reports that the message could not be read from its source.
// Nothing was posted.
type InputError struct{ Err error }

func (e *InputError) Error() string { return "reading the message: " + e.Err.Error() }

func (e *InputError) Unwrap() error { return e.Err }

// ArgumentError reports a user name or password that cannot be sent: empty,
// or containing CR, LF or NUL, which would end the command line early (and
// could smuggle a second command into the session).
type ArgumentError struct {
	What string // "user name" or "password"
	Why  string
}

func (e *ArgumentError) Error() string { return e.What + " " + e.Why }

// Client is one MPP session. It is not safe for concurrent use.
type Client struct {
	conn     net.Conn
	dc       *deadlineConn
	addr     string
	r        *bufio.Reader
	w        *bufio.Writer
	trace    io.Writer
	greeting Reply
	closed   bool
}

// Dial connects to addr ("host:port"; see WithDefaultPort) over TCP and
// reads the greeting. ctx bounds the connection attempt, the TLS handshake
// (when opt.TLS is set) and the greeting.
func Dial(ctx context.Context, addr string, opt Options) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &ConnError{Addr: addr, Step: "dial", Err: err}
	}
	if opt.TLS != nil {
		cfg := opt.TLS
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			cfg = cfg.Clone()
			host, _, _ := net.SplitHostPort(addr)
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		hctx := ctx
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, timeoutOf(opt))
			defer cancel()
		}
		if err := tc.HandshakeContext(hctx); err != nil {
			conn.Close()
			return nil, &ConnError{Addr: addr, Step: "TLS handshake", Err: err}
		}
		conn = tc
	}
	return newClient(ctx, conn, addr, opt)
}

func timeoutOf(opt Options) time.Duration {
	if opt.Timeout <= 0 {
		return DefaultTimeout
	}
	return opt.Timeout
}

// NewClient starts a session on an established connection (a TCP
// connection, one end of a net.Pipe, or a TLS connection) and reads
// the greeting. The Client owns conn from then on: it is closed when the
// greeting is not 220, and by Quit and Close.
func NewClient(conn net.Conn, opt Options) (*Client, error) {
	return newClient(context.Background(), conn, conn.RemoteAddr().String(), opt)
}

func newClient(ctx context.Context, conn net.Conn, addr string, opt Options) (*Client, error) {
	dc := &deadlineConn{Conn: conn, timeout: timeoutOf(opt), ctx: ctx}
	c := &Client{
		conn:  conn,
		dc:    dc,
		addr:  addr,
		r:     bufio.NewReaderSize(dc, maxReplyLine),
		w:     bufio.NewWriterSize(dc, writeBuffer),
		trace: opt.Trace,
	}
	// Cancelling ctx while the greeting is awaited unblocks the read.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	rep, err := c.expect("greeting", 220)
	if !stop() && err == nil {
		err = &ConnError{Addr: addr, Step: "greeting", Err: ctx.Err()}
	}
	dc.ctx = nil
	c.greeting = rep
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Greeting returns the server's 220 reply.
func (c *Client) Greeting() Reply { return c.greeting }

// Login sends USER and then PASS, each of which must get 250. Neither is
// sent if either argument cannot be (see ArgumentError).
func (c *Client) Login(user, password string) error {
	if err := CheckLogin(user, password); err != nil {
		return err
	}
	if _, err := c.command("USER", user, user, 250); err != nil {
		return err
	}
	_, err := c.command("PASS", password, "********", 250)
	return err
}

// Send posts one message: DATA, which must get 354, then the text of msg
// converted to MPP message text (CRLF line ends, dot stuffing, terminator;
// see textWriter), which must get 250. msg is read as it is sent, so a
// message of any size costs little memory.
//
// If reading msg fails, the connection is closed without the terminator
// (the server then discards what it got) and an *InputError is returned.
func (c *Client) Send(msg io.Reader) error {
	if _, err := c.command("DATA", "", "", 354); err != nil {
		return err
	}
	tw := newTextWriter(c.w)
	src := &message.SourceReader{R: msg}
	buf := make([]byte, writeBuffer)
	var err error
	for err == nil {
		var n int
		n, err = src.Read(buf)
		if n > 0 {
			if _, werr := tw.Write(buf[:n]); werr != nil {
				return c.writeFailed("message", werr)
			}
		}
	}
	if src.Err != nil {
		c.Close()
		return &InputError{Err: src.Err}
	}
	if err := tw.Close(); err != nil {
		return c.writeFailed("message", err)
	}
	if err := c.w.Flush(); err != nil {
		return c.writeFailed("message", err)
	}
	c.tracef("C: (message text, %d octets)", tw.n)
	c.tracef("C: .")
	_, err = c.expect("message", 250)
	return err
}

// Noop sends NOOP, which must get 250.
func (c *Client) Noop() error {
	_, err := c.command("NOOP", "", "", 250)
	return err
}

// Quit sends QUIT, which must get 221, and closes the connection whatever
// the answer.
func (c *Client) Quit() error {
	_, err := c.command("QUIT", "", "", 221)
	c.Close()
	return err
}

// SendRaw writes raw to the server as it is, with no line end added, and
// reads nothing. It is for load tests that hold a session in the middle of
// a line; Reply then reads the answer once the line is finished.
func (c *Client) SendRaw(raw string) error {
	if _, err := c.w.WriteString(raw); err != nil {
		return c.writeFailed("raw", err)
	}
	if err := c.w.Flush(); err != nil {
		return c.writeFailed("raw", err)
	}
	c.tracef("C: (%d raw octets)", len(raw))
	return nil
}

// Reply reads one reply, whatever its code.
func (c *Client) Reply() (Reply, error) { return c.readReply("reply") }

// Close drops the connection without QUIT.
func (c *Client) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.conn.Close()
}

// command sends "VERB[ arg]" and reads the reply, which must be want.
// traceArg is what the trace shows in place of arg.
func (c *Client) command(verb, arg, traceArg string, want int) (Reply, error) {
	line := verb
	shown := verb
	if arg != "" {
		line += " " + arg
		shown += " " + traceArg
	}
	c.tracef("C: %s", shown)
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return Reply{}, c.writeFailed(verb, err)
	}
	return c.expect(verb, want)
}

// writeFailed turns a failed write into an error. A server that gives up
// on a session (too many errors, shutting down) sends 451 and closes, and a
// client still writing then sees a broken pipe; the reply, if it got
// through, is the better explanation, so look for it briefly.
func (c *Client) writeFailed(step string, err error) error {
	c.dc.timeout = time.Second
	if rep, rerr := c.readReply(step); rerr == nil {
		c.Close()
		return &ReplyError{Step: step, Reply: rep}
	}
	c.Close()
	return &ConnError{Addr: c.addr, Step: step, Err: err}
}

// expect reads a reply and checks its code.
func (c *Client) expect(step string, want int) (Reply, error) {
	rep, err := c.readReply(step)
	if err != nil {
		return rep, err
	}
	if rep.Code != want {
		return rep, &ReplyError{Step: step, Reply: rep}
	}
	return rep, nil
}

// readReply reads one reply: "NNN text" lines, with "NNN-text" continuation
// lines allowed as in RFC 821, on which RFC 1204 builds its replies. A line
// may end in CRLF or a bare LF.
func (c *Client) readReply(step string) (Reply, error) {
	var texts []string
	for i := 0; i < maxReplyLines; i++ {
		raw, err := c.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return Reply{}, &ProtocolError{Step: step, Line: string(raw[:80]) + "..."}
		}
		if err != nil {
			if len(raw) > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Reply{}, &ConnError{Addr: c.addr, Step: step, Err: err}
		}
		line := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
		c.tracef("S: %s", line)
		code, more, text, ok := parseReplyLine(line)
		if !ok {
			return Reply{}, &ProtocolError{Step: step, Line: line}
		}
		texts = append(texts, text)
		if !more {
			return Reply{Code: code, Text: strings.Join(texts, " ")}, nil
		}
	}
	return Reply{}, &ProtocolError{Step: step, Line: fmt.Sprintf("more than %d reply lines", maxReplyLines)}
}

// parseReplyLine splits "250 text", "250-text" or "250".
func parseReplyLine(line string) (code int, more bool, text string, ok bool) {
	if len(line) < 3 || line[0] < '1' || line[0] > '5' ||
		line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' {
		return 0, false, "", false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, false, "", true
	}
	switch line[3] {
	case ' ':
		return code, false, line[4:], true
	case '-':
		return code, true, line[4:], true
	}
	return 0, false, "", false
}

func (c *Client) tracef(format string, args ...any) {
	if c.trace != nil {
		fmt.Fprintf(c.trace, format+"\n", args...)
	}
}

// CheckLogin reports, as an *ArgumentError, a user name or password that
// Login would refuse to send, so a caller can refuse it before connecting.
func CheckLogin(user, password string) error {
	if err := checkArg("user name", user); err != nil {
		return err
	}
	return checkArg("password", password)
}

func checkArg(what, s string) error {
	if s == "" {
		return &ArgumentError{What: what, Why: "is empty"}
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return &ArgumentError{What: what, Why: "contains CR, LF or NUL"}
	}
	return nil
}

// WithDefaultPort returns addr with MPP's port 218 added when it has none:
// "mail.example.org" → "mail.example.org:218", "::1" or "[::1]" →
// "[::1]:218". An address with a port is returned unchanged.
func WithDefaultPort(addr string) string {
	return WithPort(addr, DefaultPort)
}

// WithPort is WithDefaultPort with another default port.
func WithPort(addr, port string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	host := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	return net.JoinHostPort(host, port)
}

// deadlineConn renews the deadline before every read and write, so
// Options.Timeout bounds each step, not the session: a large message may
// take longer than Timeout as long as it keeps moving. While ctx is set
// (during the greeting), its cancellation also ends a read.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	ctx     context.Context
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	d.Conn.SetReadDeadline(time.Now().Add(d.timeout))
	// Checked after the deadline is renewed: a cancellation that came
	// earlier would otherwise be undone by the renewal (the AfterFunc in
	// newClient covers the ones that come later).
	if d.ctx != nil && d.ctx.Err() != nil {
		return 0, d.ctx.Err()
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	d.Conn.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.Conn.Write(p)
}
