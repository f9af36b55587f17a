package protocol

import (
	"io"
	"net"
	"strings"
	"testing"
)

// Memory per session: a session that has sent no message text, whatever
// it sent, holds a command reader of at most 4 KiB; the larger text
// reader exists only for the length of one DATA. (Before, every session
// had a 64 KiB reader, which a client could fill with one unfinished
// line.)
func TestCommandReaderSmall(t *testing.T) {
	ts := newTestServer(t, nil)
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	s := newSession(ts.srv, server)
	if got := s.r.Size(); got > 4<<10 {
		t.Fatalf("command reader of %d octets, want at most 4096", got)
	}
}

// Octets read ahead cross the hand-over between the command reader and the
// text reader both ways: text pipelined after DATA, commands and a second
// message after the final dot, all in one write, with a text line longer
// than either reader's buffer.
func TestPipelinedAcrossText(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dial()
	long := strings.Repeat("x", 100<<10)
	body1 := "one\r\n" + long + "\r\nend of one\r\n"
	body2 := "two\r\n"
	wire := "USER alice\r\nPASS alice-pw\r\nDATA\r\n" +
		simpleMessage + body1 + ".\r\n" +
		"NOOP\r\nDATA\r\n" +
		simpleMessage + body2 + ".\r\n" +
		"NOOP\r\nQUIT\r\n"
	go io.WriteString(c.Conn, wire) // the replies are read meanwhile
	for _, code := range []int{250, 250, 354, 250, 250, 354, 250, 250, 221} {
		c.Expect(code)
	}
	msgs := ts.del.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages delivered, want 2", len(msgs))
	}
	want1 := strings.ReplaceAll(body1, "\r\n", "\n")
	if !strings.HasSuffix(msgs[0].Text, "Hello Bob.\n"+want1) {
		t.Errorf("first message ends %q", msgs[0].Text[max(0, len(msgs[0].Text)-80):])
	}
	if !strings.HasSuffix(msgs[1].Text, "Hello Bob.\ntwo\n") {
		t.Errorf("second message %q", msgs[1].Text)
	}
}
