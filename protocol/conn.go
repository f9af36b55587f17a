package protocol

// The connection side of a session: reading command lines, writing
// replies, the read and write deadlines, and what a failed read or a
// shutdown does to the session.

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mppd/mppd/internal/logkey"
)

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

// shutdownQuitWait is how long a session that finished a command while
// the server began shutting down (a message received, delivered and
// acknowledged during the drain) waits for the client's next command.
const shutdownQuitWait = 2 * time.Second

// lastWordAtShutdown is the reply that ends such a session. A client that
// got its 250 usually says QUIT next, and gets 221 for it, as it would
// any other time; anything else, or nothing within shutdownQuitWait, gets
// 451.
func (s *session) lastWordAtShutdown() reply {
	s.mu.Lock()
	s.readLimit = s.limit(time.Now().Add(shutdownQuitWait))
	s.mu.Unlock()
	if line, err := s.r.ReadSlice('\n'); err == nil {
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if cmd := parseCommand(line); cmd.verb == "QUIT" {
			if r := s.cmdQuit(cmd); r.code == replyBye.code {
				s.log.Info("closing for shutdown after QUIT", logkey.Event, logkey.EventShutdown, "state", s.state.String())
				return r
			}
		}
	}
	s.log.Info("closing for shutdown", logkey.Event, logkey.EventShutdown, "state", s.state.String())
	return replyLocal.with("Service shutting down, try again later.").closing()
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
			state := s.state.String()
			if what == "text" {
				state = "data" // cut in the middle of a message
			}
			s.log.Info("closing for shutdown", logkey.Event, logkey.EventShutdown, "state", state, "reading", what)
			return replyLocal.with("Service shutting down, try again later.").closing(), true
		case !time.Now().Before(s.deadline):
			s.log.Info("session time limit reached", logkey.Event, logkey.EventTimeout, logkey.Reason, "session", "state", s.state.String(), "reading", what)
			return replyLocal.with("Session time limit reached, closing connection.").closing(), true
		case what == "text" && time.Since(s.lastData) < s.cfg.Limits.IdleTimeout:
			// Not idle, yet cut off: the minimum data rate's deadline.
			s.log.Info("message text too slow", logkey.Event, logkey.EventTimeout, logkey.Reason, "data-rate", "state", s.state.String(),
				"bytes", s.dataBytes, "min_rate", s.cfg.Limits.MinDataRate)
			return replyLocal.with("Message text too slow, closing connection.").closing(), true
		default:
			s.log.Info("client too slow", logkey.Event, logkey.EventTimeout, logkey.Reason, "idle", "state", s.state.String(), "reading", what)
			return replyLocal.with("Timeout, closing connection.").closing(), true
		}
	}
	if what == "text" {
		s.log.Info("client went away during message text", logkey.Event, logkey.EventClientGone, "state", "data", "bytes", s.dataBytes)
	} else if !errors.Is(err, io.EOF) {
		s.log.Info("read failed", logkey.Event, logkey.EventClientGone, logkey.Err, err)
	}
	return reply{}, false
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
	if r.close || s.buffered() == 0 {
		if err := s.w.Flush(); err != nil {
			s.log.Info("write failed", logkey.Event, logkey.EventClientGone, logkey.Err, err)
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
// ending, which may be CRLF or a bare LF (decision 5). A line longer than
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

// Memory per session. Most sessions, and every session of an attacker
// who has no password, only ever send command lines (at most MaxLine,
// 1000 octets), so the command reader is small: an idle session, or one
// holding a partial line, or one that sent an endless line (which is read
// and dropped buffer by buffer), holds at most commandBufferSize octets of
// input. Message text, which only an authenticated client can send, is
// read through a larger reader taken from textReaders for the length of
// one DATA, so that a large message is read in few system calls.
const (
	commandBufferSize = 4 << 10
	textBufferSize    = 64 << 10
)

// textReaders holds the text readers of finished DATA commands for the
// next one.
var textReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, textBufferSize) }}

// sessionSource is what the session's readers read from: first the octets
// a reader gave back (pending), then the connection (deadlineReader).
// Switching from the command reader to the text reader and back hands the
// octets one has read ahead (pipelined text after DATA, commands after the
// final dot) to the other through pending, so none is lost or reordered.
type sessionSource struct {
	s       *session
	pending []byte
}

func (src *sessionSource) Read(p []byte) (int, error) {
	if len(src.pending) > 0 {
		n := copy(p, src.pending)
		src.pending = src.pending[n:]
		if len(src.pending) == 0 {
			src.pending = nil
		}
		return n, nil
	}
	return deadlineReader{src.s}.Read(p)
}

// giveBack puts what r has read ahead back in front of pending and empties
// r, which can then read from src again.
func (src *sessionSource) giveBack(r *bufio.Reader) {
	if n := r.Buffered(); n > 0 {
		ahead, _ := r.Peek(n)
		src.pending = append(append([]byte(nil), ahead...), src.pending...)
	}
	r.Reset(src)
}

// textReader returns a reader for message text that starts where the
// command reader stands; doneText gives it back.
func (s *session) textReader() *bufio.Reader {
	s.src.giveBack(s.r)
	tr := textReaders.Get().(*bufio.Reader)
	tr.Reset(s.src)
	return tr
}

// doneText hands what tr has read past the text back to the command
// reader, and tr back to the pool.
func (s *session) doneText(tr *bufio.Reader) {
	s.src.giveBack(tr)
	tr.Reset(nil)
	textReaders.Put(tr)
}

// buffered is how many octets the client has sent that no command or text
// has used yet.
func (s *session) buffered() int {
	return s.r.Buffered() + len(s.src.pending)
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

func (timeoutError) Error() string { return "server shutting down" }

func (timeoutError) Timeout() bool { return true }

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
