package protocol

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
)

// scriptConn is an in-memory net.Conn: reads come from the script and end
// in io.EOF when it is used up (a client that sends everything and hangs
// up), writes are recorded. Unlike net.Pipe it needs no second goroutine
// and no timeout to know the client is done, so one fuzz run takes
// microseconds and is deterministic.
type scriptConn struct {
	in  *bytes.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}
func (c *scriptConn) Close() error        { return nil }
func (c *scriptConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 218} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 40000}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// journal records, in order, what the fake backends were asked and
// answered.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

type journalAuth struct{ j *journal }

func (a journalAuth) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	pw := map[string]string{"alice": "alice-adv-pw", "bob": "bob-adv-pw"}[req.User]
	if pw == "" || pw != req.Password {
		a.j.add("fail " + req.User)
		return authn.Identity{}, authn.Rejected("bad-password", nil)
	}
	a.j.add("ok " + req.User)
	return authn.Identity{Login: req.User, Addresses: []string{req.User + "@example.test"}, Account: req.User}, nil
}

type journalDelivery struct{ j *journal }

func (d journalDelivery) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	if _, err := io.Copy(io.Discard, msg); err != nil {
		return err
	}
	d.j.add("deliver " + env.Login)
	return nil
}

var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9] [^\r\n]*$`)

// FuzzSession drives a whole session of the real engine with a client
// script, seeded with every dialogue of the hostile-input catalogue
// (see dialogueDirs). Properties: it never panics; every reply is
// "NNN text" ending in CRLF, the first is 220 and nothing follows a
// closing reply; no message is delivered unless the last login before it
// succeeded (a 250 to PASS) as the user it is delivered as; every
// delivery was answered 250, and every "Message queued." reply had one.
func FuzzSession(f *testing.F) {
	for _, s := range loadDialogues(f) {
		f.Add(s.ClientBytes(64 << 10))
	}
	f.Add([]byte("USER alice\r\nPASS alice-adv-pw\r\nDATA\r\nTo: b@example.test\r\n\r\nx\r\n.\r\nUSER bob\r\nPASS bob-adv-pw\r\nDATA\r\nTo: c@example.test\r\n\r\ny\r\n.\r\nQUIT\r\n"))
	staging := f.TempDir()
	f.Fuzz(func(t *testing.T, script []byte) {
		j := &journal{}
		cfg := testConfig()
		cfg.StagingDir = staging
		cfg.Limits.MaxMessage = 32 << 10
		cfg.Limits.MaxHeader = 8 << 10
		srv := &Server{Config: cfg, Auth: journalAuth{j}, Delivery: journalDelivery{j}}
		conn := &scriptConn{in: bytes.NewReader(script)}
		srv.Serve(context.Background(), conn)

		out := conn.out.String()
		if !strings.HasSuffix(out, "\r\n") {
			t.Fatalf("output does not end in CRLF: %q", out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
		if !strings.HasPrefix(lines[0], "220 ") {
			t.Fatalf("first reply %q", lines[0])
		}
		queued := 0
		for i, l := range lines {
			if !replyLine.MatchString(l) {
				t.Fatalf("reply %d malformed: %q", i, l)
			}
			if strings.HasPrefix(l, "221 ") && i != len(lines)-1 {
				t.Fatalf("replies after 221: %q", lines[i+1:])
			}
			if l == "250 Message queued." {
				queued++
			}
		}
		last := ""
		deliveries := 0
		for _, e := range j.events {
			switch {
			case strings.HasPrefix(e, "deliver "):
				deliveries++
				if last != "ok "+strings.TrimPrefix(e, "deliver ") {
					t.Fatalf("%s after %q; journal %v", e, last, j.events)
				}
			default:
				last = e
			}
		}
		if deliveries != queued {
			t.Fatalf("%d deliveries, %d 250 replies to messages\n%s", deliveries, queued, fmt.Sprint(j.events))
		}
	})
}
