package adversarial

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/dialogue"
	"github.com/mppd/mppd/internal/testharness"
)

// TestDialogues plays every testdata/*.dlg against the built mppd: the
// exact bytes of each client step, the code (and text) of each reply, the
// close, how many copies were delivered and what they hold, and the log
// lines. Scripts with the same config share a daemon and run one after the
// other, so that deliveries and log lines belong to one script.
func TestDialogues(t *testing.T) {
	scripts, err := dialogue.Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string][]*dialogue.Script{}
	var order []string
	for _, s := range scripts {
		k := strings.Join(s.Config, "\n")
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], s)
	}
	for _, k := range order {
		d := startDaemon(t, k)
		for _, s := range groups[k] {
			t.Run(s.Name, func(t *testing.T) { play(t, d, s) })
		}
	}
}

// play runs one script against d.
func play(t *testing.T, d *daemon, s *dialogue.Script) {
	offset := len(d.Log())
	before := d.deliveredFiles()
	ended := strings.Count(d.Log(), "event=disconnect")

	c := d.Dial(t)
	// Sends run on their own goroutine, in order, so that a large one
	// cannot deadlock against replies the server writes meanwhile; a
	// write error after the server has hung up is expected in some
	// cases and is judged by the replies.
	sends := make(chan []byte, len(s.Steps))
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for b := range sends {
			c.Conn.SetWriteDeadline(time.Now().Add(testharness.IOTimeout))
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
	c.Conn.Close()
	d.WaitLogCount(0, "event=disconnect", ended+1)

	log := d.Log()[offset:]
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
	var got []string
	for f := range d.deliveredFiles() {
		if !before[f] {
			got = append(got, f)
		}
	}
	if len(got) != s.Deliveries {
		t.Errorf("%d copies delivered, want %d: %v", len(got), s.Deliveries, got)
	}
	for _, f := range got {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range s.Has {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q:\n%s", f, want, b)
			}
		}
		for _, bad := range s.Lacks {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s holds %q:\n%s", f, bad, b)
			}
		}
	}
}
