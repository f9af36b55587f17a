package testharness

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/dialogue"
)

// Play runs the steps of a dialogue over c, whose greeting has been read:
// the exact bytes of each client step, the code (and text) of each reply,
// the close. Sends run on their own goroutine, in order, so that a large
// one cannot deadlock against replies the server writes meanwhile; a
// write error after the server has hung up is expected in some cases and
// is judged by the replies.
func Play(t testing.TB, c *Client, s *dialogue.Script) {
	t.Helper()
	sends := make(chan []byte, len(s.Steps))
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for b := range sends {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(IOTimeout))
			if _, err := c.Conn.Write(b); err != nil {
				for range sends {
				}
				return
			}
		}
	}()
	defer func() { close(sends); <-sent }()

	for _, st := range s.Steps {
		switch st.Kind {
		case dialogue.Send:
			sends <- st.Data
		case dialogue.Expect:
			_, l, err := c.ReadReply()
			if err != nil {
				t.Fatalf("line %d: want %d: %v (got %q)", st.Line, st.Code, err, l)
			}
			if l[:3] != fmt.Sprint(st.Code) || !strings.HasPrefix(l[4:], st.Text) {
				t.Fatalf("line %d: got %q, want %d %s", st.Line, l, st.Code, st.Text)
			}
		case dialogue.Closed:
			if !c.Closed() {
				t.Fatalf("line %d: connection still open", st.Line)
			}
		}
	}
}

// CheckOutcome checks what a dialogue left behind: log is what the server
// logged while it ran, copies the text of each copy delivered.
func CheckOutcome(t testing.TB, s *dialogue.Script, log string, copies []string) {
	t.Helper()
	for _, want := range s.Logs {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, bad := range s.NoLogs {
		if strings.Contains(log, bad) {
			t.Errorf("log shows %q", bad)
		}
	}
	if len(copies) != s.Deliveries {
		t.Errorf("%d copies delivered, want %d", len(copies), s.Deliveries)
	}
	for i, text := range copies {
		for _, want := range s.Has {
			if !strings.Contains(text, want) {
				t.Errorf("copy %d lacks %q:\n%s", i, want, text)
			}
		}
		for _, bad := range s.Lacks {
			if strings.Contains(text, bad) {
				t.Errorf("copy %d holds %q:\n%s", i, bad, text)
			}
		}
	}
}
