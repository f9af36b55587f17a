package mppclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/mppclient/mpptest"
	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// pipeSession runs the fake server on one end of a net.Pipe and returns a
// Client on the other (or the error NewClient gave).
func pipeSession(t *testing.T, replies map[string]string, opt Options) (*Client, *mpptest.Server, error) {
	t.Helper()
	srv := &mpptest.Server{Replies: replies}
	cs, ss := net.Pipe()
	done := make(chan struct{})
	go func() {
		srv.Serve(ss)
		close(done)
	}()
	t.Cleanup(func() {
		cs.Close()
		<-done
	})
	if opt.Timeout == 0 {
		opt.Timeout = 5 * time.Second
	}
	c, err := NewClient(cs, opt)
	return c, srv, err
}

// post runs a whole session: login, one message, quit.
func post(c *Client, user, pass, msg string) error {
	if err := c.Login(user, pass); err != nil {
		return err
	}
	if err := c.Send(strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

func TestPostOverPipe(t *testing.T) {
	c, srv, err := pipeSession(t, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Greeting(); got.Code != 220 || got.Text != "Message Posting Service Ready." {
		t.Errorf("Greeting() = %+v", got)
	}
	msg := "From: alice\nTo: bob\n\n.\n..x\nend"
	if err := post(c, "alice", "s3cret pass", msg); err != nil {
		t.Fatal(err)
	}
	ss := srv.Sessions()
	if len(ss) != 1 {
		t.Fatalf("%d sessions", len(ss))
	}
	wantCmds := []string{"USER alice", "PASS s3cret pass", "DATA", "QUIT"}
	if strings.Join(ss[0].Commands, "|") != strings.Join(wantCmds, "|") {
		t.Errorf("commands %q, want %q", ss[0].Commands, wantCmds)
	}
	if len(ss[0].Texts) != 1 || !ss[0].Complete {
		t.Fatalf("texts %q complete=%v", ss[0].Texts, ss[0].Complete)
	}
	wantWire := "From: alice\r\nTo: bob\r\n\r\n..\r\n...x\r\nend\r\n"
	if got := string(ss[0].Texts[0]); got != wantWire {
		t.Errorf("wire text %q, want %q", got, wantWire)
	}
}

func TestPostOverTCP(t *testing.T) {
	srv, err := mpptest.Listen(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.Addr(), Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Two messages in one login (RFC 1204 §2.3: DATA is legal again right
	// after an accepted message), with a NOOP between.
	if err := c.Login("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"To: bob\r\n\r\none\r\n", "To: bob\n\ntwo"} {
		if err := c.Send(strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
		if err := c.Noop(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	ss := srv.Sessions()
	if len(ss) != 1 || len(ss[0].Texts) != 2 {
		t.Fatalf("sessions %+v", ss)
	}
	for i, want := range []string{"To: bob\n\none\n", "To: bob\n\ntwo\n"} {
		if got := string(mpptest.Unstuff(ss[0].Texts[i])); got != want {
			t.Errorf("message %d: %q, want %q", i, got, want)
		}
	}
}

// Every reply that means failure, at every step, comes back as a
// *ReplyError naming the step and the reply, and its text is the line
// the mpp command prints.
func TestReplyErrors(t *testing.T) {
	cases := []struct {
		step, reply string
		temporary   bool
		text        string
	}{
		{"greeting", "451 Too many sessions.", true, "server refused the connection: 451 Too many sessions."},
		{"USER", "501 Argument syntax error.", false, "server refused the user name: 501 Argument syntax error."},
		{"USER", "451 Local error encountered.", true, "server refused the user name: 451 Local error encountered."},
		{"PASS", "530 Authentication Failure.", false, "server refused the password: 530 Authentication Failure."},
		{"PASS", "451 Local error encountered.", true, "server refused the password: 451 Local error encountered."},
		{"PASS", "501 Argument syntax error.", false, "server refused the password: 501 Argument syntax error."},
		{"DATA", "503 Illegal command sequence.", false, "server refused to take a message: 503 Illegal command sequence."},
		{"DATA", "451 Local error encountered.", true, "server refused to take a message: 451 Local error encountered."},
		{"message", "550 No recipients.", false, "server refused the message: 550 No recipients."},
		{"message", "451 Local error encountered.", true, "server refused the message: 451 Local error encountered."},
		{"QUIT", "500 Command unrecognized.", false, "server refused QUIT: 500 Command unrecognized."},
		{"PASS", "250", false, ""}, // bare code: success
		{"USER", "530", false, "server refused the user name: 530"},
	}
	for _, tc := range cases {
		t.Run(tc.step+" "+tc.reply, func(t *testing.T) {
			c, srv, err := pipeSession(t, map[string]string{tc.step: tc.reply}, Options{})
			if err == nil {
				err = post(c, "alice", "pw", "To: bob\n\nhi\n")
			}
			if tc.text == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			var re *ReplyError
			if !errors.As(err, &re) {
				t.Fatalf("got %T %v, want *ReplyError", err, err)
			}
			if re.Step != tc.step || re.Reply.String() != tc.reply || re.Temporary() != tc.temporary {
				t.Errorf("got %+v temporary=%v", re, re.Temporary())
			}
			if err.Error() != tc.text {
				t.Errorf("Error() = %q, want %q", err.Error(), tc.text)
			}
			// Nothing after a refused step is sent (apart from QUIT,
			// which the caller may still send).
			cmds := srv.Sessions()[0].Commands
			if tc.step == "PASS" && len(cmds) != 2 {
				t.Errorf("commands after refused PASS: %q", cmds)
			}
		})
	}
}

func TestMultiLineReply(t *testing.T) {
	c, _, err := pipeSession(t, map[string]string{
		"greeting": "220-mppd here\r\n220-second line\r\n220 Ready.",
		"PASS":     "530-Authentication\r\n530 Failure.",
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Greeting().Text; got != "mppd here second line Ready." {
		t.Errorf("greeting text %q", got)
	}
	err = c.Login("alice", "pw")
	if err == nil || err.Error() != "server refused the password: 530 Authentication Failure." {
		t.Errorf("Login: %v", err)
	}
}

func TestMalformedReplies(t *testing.T) {
	for _, bad := range []string{
		"hello", "25 short", "2500 no space", "250x", "650 not a class", "099 nope", "",
		"250-a\r\nnot a continuation",
	} {
		t.Run(bad, func(t *testing.T) {
			_, _, err := pipeSession(t, map[string]string{"greeting": bad}, Options{})
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Step != "greeting" {
				t.Fatalf("got %T %v, want *ProtocolError", err, err)
			}
		})
	}
}

func TestOverlongReplyLine(t *testing.T) {
	_, _, err := pipeSession(t, map[string]string{"greeting": "220 " + strings.Repeat("x", 5000)}, Options{})
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %T %v, want *ProtocolError", err, err)
	}
}

// A server that hangs up instead of answering gives a *ConnError naming the
// step.
func TestServerHangsUp(t *testing.T) {
	for _, step := range []string{"greeting", "USER", "PASS", "DATA", "message"} {
		t.Run(step, func(t *testing.T) {
			c, _, err := pipeSession(t, map[string]string{step: mpptest.Close}, Options{})
			if err == nil {
				err = post(c, "alice", "pw", "To: bob\n\nhi\n")
			}
			var ce *ConnError
			if !errors.As(err, &ce) || ce.Step != step {
				t.Fatalf("got %T %v, want *ConnError at %s", err, err, step)
			}
			if !strings.Contains(err.Error(), "closed by the server during "+step) {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestDialRefused(t *testing.T) {
	addr := testharness.ClosedAddr(t)
	_, err := Dial(context.Background(), addr, Options{})
	var ce *ConnError
	if !errors.As(err, &ce) || ce.Step != "dial" {
		t.Fatalf("got %T %v, want *ConnError at dial", err, err)
	}
	if want := "cannot connect to " + addr + ": connect: connection refused"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

// silentServer accepts connections and never greets; it returns its
// address.
func silentServer(t *testing.T) string {
	return testharness.Serve(t, func(conn net.Conn) {
		io.Copy(io.Discard, conn)
		conn.Close()
	})
}

// A server that accepts but never greets: Options.Timeout bounds the wait.
func TestGreetingTimeout(t *testing.T) {
	addr := silentServer(t)
	start := time.Now()
	_, err := Dial(context.Background(), addr, Options{Timeout: 100 * time.Millisecond})
	var ce *ConnError
	var ne net.Error
	if !errors.As(err, &ce) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %T %v, want a timeout *ConnError", err, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

// Cancelling the context of Dial stops the wait for the greeting.
func TestDialContextCancel(t *testing.T) {
	addr := silentServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, addr, Options{Timeout: time.Minute})
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Fatalf("got %T %v, want *ConnError", err, err)
	}
}

type failingReader struct {
	data string
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// A message source that fails part-way must never produce a posted
// message: the client drops the connection without the terminator.
func TestInputErrorAbortsMessage(t *testing.T) {
	c, srv, err := pipeSession(t, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	readErr := errors.New("disk on fire")
	err = c.Send(&failingReader{data: "To: bob\n\nfirst half\n", err: readErr})
	var ie *InputError
	if !errors.As(err, &ie) || !errors.Is(err, readErr) {
		t.Fatalf("got %T %v, want *InputError", err, err)
	}
	c.Close()
	testenv.WaitFor(t, 5*time.Second, func() bool { return len(srv.Sessions()[0].Texts) == 1 },
		"server never saw the aborted text")
	if ss := srv.Sessions(); ss[0].Complete {
		t.Fatalf("server saw a complete message: %q", ss[0].Texts[0])
	}
}

// User names and passwords that would break the command line are refused
// before anything is sent.
func TestArgumentErrors(t *testing.T) {
	for _, tc := range []struct{ user, pass string }{
		{"", "pw"},
		{"alice", ""},
		{"alice\r\nDATA", "pw"},
		{"alice", "pw\nDATA"},
		{"al\x00ice", "pw"},
		{"alice", "p\rw"},
	} {
		c, srv, err := pipeSession(t, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Login(tc.user, tc.pass)
		var ae *ArgumentError
		if !errors.As(err, &ae) {
			t.Errorf("Login(%q, %q) = %v, want *ArgumentError", tc.user, tc.pass, err)
		}
		c.Quit()
		if cmds := srv.Sessions()[0].Commands; len(cmds) != 1 || cmds[0] != "QUIT" {
			t.Errorf("Login(%q, %q) sent %q", tc.user, tc.pass, cmds)
		}
	}
}

// The trace shows the dialogue but neither the password nor the message.
func TestTraceMasksPassword(t *testing.T) {
	var trace strings.Builder
	c, _, err := pipeSession(t, nil, Options{Trace: &trace})
	if err != nil {
		t.Fatal(err)
	}
	if err := post(c, "alice", "hunter2", "To: bob\n\nsecret body\n"); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"S: 220 Message Posting Service Ready.",
		"C: USER alice",
		"S: 250 Command OK.",
		"C: PASS ********",
		"S: 250 Command OK.",
		"C: DATA",
		"S: 354 Enter mail, end with <CRLF>.<CRLF>",
		"C: (message text, 21 octets)",
		"C: .",
		"S: 250 Command OK.",
		"C: QUIT",
		"S: 221 Closing Connection.",
	}, "\n") + "\n"
	if trace.String() != want {
		t.Errorf("trace:\n%s\nwant:\n%s", trace.String(), want)
	}
}

// A server that gives up during the text (451, then close, as mppd does
// when shutting down) may break the client's write; the client still
// reports the server's reply rather than a broken pipe.
func TestReplyDuringText(t *testing.T) {
	addr := testharness.Serve(t, func(conn net.Conn) {
		defer conn.Close()
		r := bufio.NewReader(conn)
		io.WriteString(conn, "220 Ready.\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "DATA") {
				io.WriteString(conn, "354 Go ahead.\r\n451 Shutting down.\r\n")
				return
			}
			io.WriteString(conn, "250 OK.\r\n")
		}
	})
	c, err := Dial(context.Background(), addr, Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat(strings.Repeat("y", 99)+"\n", 200_000) // 20 MB: more than socket buffers hold
	err = c.Send(strings.NewReader(big))
	var re *ReplyError
	if !errors.As(err, &re) || re.Reply.Code != 451 || re.Step != "message" {
		t.Fatalf("got %T %v, want 451 *ReplyError", err, err)
	}
}

func TestWithDefaultPort(t *testing.T) {
	for in, want := range map[string]string{
		"localhost":        "localhost:218",
		"localhost:2525":   "localhost:2525",
		"127.0.0.1":        "127.0.0.1:218",
		"127.0.0.1:2525":   "127.0.0.1:2525",
		"::1":              "[::1]:218",
		"[::1]":            "[::1]:218",
		"[::1]:2525":       "[::1]:2525",
		"mail.example.org": "mail.example.org:218",
	} {
		if got := WithDefaultPort(in); got != want {
			t.Errorf("WithDefaultPort(%q) = %q, want %q", in, got, want)
		}
	}
}
