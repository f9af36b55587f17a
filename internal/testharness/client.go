package testharness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Client is one MPP connection, to a daemon or to an in-process server.
// Every method that fails stops the test.
type Client struct {
	t    testing.TB
	Conn net.Conn
	r    *bufio.Reader
}

// NewClient talks over conn (a TCP or TLS connection, one end of a
// net.Pipe); it is closed in t.Cleanup.
func NewClient(t testing.TB, conn net.Conn) *Client {
	t.Cleanup(func() { conn.Close() })
	return &Client{t: t, Conn: conn, r: bufio.NewReader(conn)}
}

// Dial connects to addr over TCP, from the loopback source address from
// when it is not empty, without reading anything.
func Dial(t testing.TB, addr, from string) *Client {
	t.Helper()
	dl := net.Dialer{Timeout: IOTimeout}
	if from != "" {
		dl.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := dl.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return NewClient(t, conn)
}

// Send writes raw bytes, exactly as given.
func (c *Client) Send(raw string) {
	c.t.Helper()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(IOTimeout))
	if _, err := io.WriteString(c.Conn, raw); err != nil {
		c.t.Fatalf("send %q: %v", abbrev(raw), err)
	}
}

// ReadReply reads one reply line and returns its code and the line
// without CRLF. RFC 1204 replies are single lines of the form "NNN text"
// ended by CRLF, NNN from 200 to 599; anything else is an error.
func (c *Client) ReadReply() (int, string, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(IOTimeout))
	l, err := c.r.ReadString('\n')
	if err != nil {
		return 0, l, err
	}
	line := strings.TrimSuffix(l, "\r\n")
	if len(l) < 6 || line == l || l[3] != ' ' || l[0] < '2' || l[0] > '5' || strings.ContainsAny(line, "\r\n") {
		return 0, l, fmt.Errorf("malformed reply %q", l)
	}
	code, err := strconv.Atoi(line[:3])
	if err != nil {
		return 0, l, fmt.Errorf("malformed reply %q", l)
	}
	return code, line, nil
}

// Reader is the buffered reader over the connection, for a test that
// looks at what the server sent without reading it as replies.
func (c *Client) Reader() *bufio.Reader { return c.r }

// Line reads one line, which must end in CRLF, and returns it without the
// CRLF.
func (c *Client) Line() string {
	c.t.Helper()
	l, err := c.ReadLine(IOTimeout)
	if err != nil {
		c.t.Fatalf("reading a reply: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// ReadLine reads one line as it came, waiting at most wait. A line
// already sent is returned even when wait is short; a timeout returns what
// had arrived (usually "") and the error.
func (c *Client) ReadLine(wait time.Duration) (string, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(wait))
	return c.r.ReadString('\n')
}

// Expect reads one reply and requires its code; it returns the reply line
// without CRLF.
func (c *Client) Expect(code int) string {
	c.t.Helper()
	got, line, err := c.ReadReply()
	if err != nil {
		c.t.Fatalf("reading reply (want %d): %v (got %q)", code, err, line)
	}
	if got != code {
		c.t.Fatalf("reply %q, want code %d", line, code)
	}
	return line
}

// Cmd sends one command line (CRLF is added) and requires the reply code;
// it returns the reply line.
func (c *Client) Cmd(line string, code int) string {
	c.t.Helper()
	c.Send(line + "\r\n")
	return c.Expect(code)
}

// Login sends USER and PASS and requires 250 for both.
func (c *Client) Login(user, password string) {
	c.t.Helper()
	c.Cmd("USER "+user, 250)
	c.Cmd("PASS "+password, 250)
}

// Post sends DATA (requiring 354), then msg in wire form (see DotStuff),
// and requires code for the reply to the text, which it returns.
func (c *Client) Post(msg string, code int) string {
	c.t.Helper()
	c.Cmd("DATA", 354)
	c.Send(DotStuff(msg))
	return c.Expect(code)
}

// PostRaw sends DATA (requiring 354), then wire, the text exactly as it
// goes on the wire but without the terminating line, then the terminating
// line ".", and requires code for the reply to the text, which it returns.
func (c *Client) PostRaw(wire string, code int) string {
	c.t.Helper()
	c.Cmd("DATA", 354)
	c.Send(wire + ".\r\n")
	return c.Expect(code)
}

// DotStuff turns msg (LF or CRLF line endings) into MPP message text:
// CRLF endings, a dot doubled at the start of a line (RFC 821 §4.5.2),
// and the terminating line ".".
func DotStuff(msg string) string {
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	msg = strings.TrimSuffix(msg, "\n")
	var b strings.Builder
	if msg != "" {
		for _, line := range strings.Split(msg, "\n") {
			if strings.HasPrefix(line, ".") {
				b.WriteByte('.')
			}
			b.WriteString(line)
			b.WriteString("\r\n")
		}
	}
	b.WriteString(".\r\n")
	return b.String()
}

// Closed reports whether the server has closed the connection: a read
// returns EOF (or a reset) within IOTimeout rather than a byte or a
// timeout.
func (c *Client) Closed() bool {
	_ = c.Conn.SetReadDeadline(time.Now().Add(IOTimeout))
	_, err := c.r.ReadByte()
	if err == nil {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// ExpectClosed requires the server to have closed the connection.
func (c *Client) ExpectClosed() {
	c.t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(IOTimeout))
	b, err := c.r.ReadByte()
	if err == nil {
		rest, _ := c.r.ReadString('\n')
		c.t.Fatalf("connection still open, read %q", string(b)+rest)
	}
}

// Close closes the client's side.
func (c *Client) Close() { c.Conn.Close() }

func abbrev(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Serve accepts connections on a new listener on 127.0.0.1 (a port the
// kernel picks) and runs serve on each in its own goroutine until the
// test ends; then it closes the listener and waits for every serve to
// return. It returns the listener's address. For tests that run the
// engine, or a fake server, in-process.
func Serve(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", AnyPort)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// ClosedAddr returns a loopback address that nothing listened on a moment
// ago, for tests of a server that cannot be reached.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", AnyPort)
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
