// Package mpptest is a scripted fake MPP server for testing clients: it
// answers every command with the reply a test chose (by default the RFC
// 1204 texts for success) and records what it received, byte for byte.
//
// It is deliberately not a server: it enforces no state machine and does no
// unstuffing of its own beyond what a test asks for. Tests of the real
// engine drive protocol.Server; this fake lets client tests provoke every
// reply, including ones a correct server would never send.
package mpptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
)

// Close, as a reply, makes the server drop the connection instead of
// answering.
const Close = "<close>"

// Default replies, RFC 1204 §2.2.
var defaults = map[string]string{
	"greeting": "220 Message Posting Service Ready.",
	"USER":     "250 Command OK.",
	"PASS":     "250 Command OK.",
	"DATA":     "354 Enter mail, end with <CRLF>.<CRLF>",
	"message":  "250 Command OK.",
	"NOOP":     "250 Command OK.",
	"QUIT":     "221 Closing Connection.",
	"unknown":  "500 Command unrecognized.",
}

// Session is what one connection received.
type Session struct {
	// Commands are the command lines, without their CRLF, in order.
	Commands []string
	// Texts are the message texts as sent on the wire after a 354: still
	// dot-stuffed, CRLF line ends, without the terminating ".\r\n" line.
	Texts [][]byte
	// Complete is false when the connection ended inside a message text.
	Complete bool
}

// Server is the fake. Set Replies before connections arrive.
type Server struct {
	// Replies overrides the reply to a step: "greeting", "USER", "PASS",
	// "DATA", "message" (after the text), "NOOP", "QUIT", or "unknown".
	// A value is the whole reply line without CRLF, or Close. A value may
	// hold several lines separated by "\r\n" (a multi-line reply).
	Replies map[string]string

	ln       net.Listener
	mu       sync.Mutex
	sessions []*Session
	wg       sync.WaitGroup
}

// Listen starts a fake on a loopback port. Close it when done.
func Listen(replies map[string]string) (*Server, error) {
	return listen(replies, nil)
}

func listen(replies map[string]string, wrap func(net.Conn) net.Conn) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Replies: replies, ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if wrap != nil {
				conn = wrap(conn)
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.Serve(conn)
			}()
		}
	}()
	return s, nil
}

// Addr is the address the fake listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening and waits for the open sessions to end.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// Sessions returns what each finished or running connection received.
func (s *Server) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, len(s.sessions))
	for i, ss := range s.sessions {
		out[i] = *ss
	}
	return out
}

func (s *Server) reply(step string) string {
	if r, ok := s.Replies[step]; ok {
		return r
	}
	return defaults[step]
}

// Serve runs one session on conn (for example one end of a net.Pipe) and
// closes it.
func (s *Server) Serve(conn net.Conn) {
	defer conn.Close()
	sess := &Session{Complete: true}
	s.mu.Lock()
	s.sessions = append(s.sessions, sess)
	s.mu.Unlock()
	update := func(f func()) {
		s.mu.Lock()
		f()
		s.mu.Unlock()
	}

	r := bufio.NewReader(conn)
	send := func(step string) bool {
		rep := s.reply(step)
		if rep == Close {
			return false
		}
		_, err := io.WriteString(conn, rep+"\r\n")
		return err == nil
	}
	if !send("greeting") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		update(func() { sess.Commands = append(sess.Commands, line) })
		verb := strings.ToUpper(line)
		if i := strings.IndexByte(verb, ' '); i >= 0 {
			verb = verb[:i]
		}
		step := "unknown"
		switch verb {
		case "USER", "PASS", "DATA", "NOOP", "QUIT":
			step = verb
		}
		if !send(step) {
			return
		}
		if step == "QUIT" {
			return
		}
		if step == "DATA" && strings.HasPrefix(s.reply("DATA"), "354") {
			text, ok := readText(r)
			update(func() {
				sess.Texts = append(sess.Texts, text)
				sess.Complete = ok
			})
			if !ok || !send("message") {
				return
			}
		}
	}
}

// readText reads up to the line ".\r\n". Only CRLF.CRLF ends the text, as
// in mppd: a ".\n" line is content.
func readText(r *bufio.Reader) ([]byte, bool) {
	var text bytes.Buffer
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			text.Write(line)
			return text.Bytes(), false
		}
		if string(line) == ".\r\n" {
			return text.Bytes(), true
		}
		text.Write(line)
	}
}

// Unstuff undoes dot stuffing and CRLF line ends of a wire text (as in
// Session.Texts): one leading dot is removed from each line (RFC 821
// §4.5.2) and CRLF becomes LF, giving the message as a Unix file.
func Unstuff(text []byte) []byte {
	var out bytes.Buffer
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line = text[:i+1]
		}
		text = text[len(line):]
		line = bytes.TrimPrefix(line, []byte("."))
		if bytes.HasSuffix(line, []byte("\r\n")) {
			line = append(line[:len(line)-2:len(line)-2], '\n')
		}
		out.Write(line)
	}
	return out.Bytes()
}

// ListenTLS is Listen with TLS from the first byte (mpps): every accepted
// connection is wrapped in a tls.Server with cfg before the greeting.
func ListenTLS(replies map[string]string, cfg *tls.Config) (*Server, error) {
	return listen(replies, func(c net.Conn) net.Conn { return tls.Server(c, cfg) })
}
