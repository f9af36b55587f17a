package protocol

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/mppd/mppd/internal/dialogue"
	"github.com/mppd/mppd/internal/message"
	"github.com/mppd/mppd/internal/sendlimit"
	"github.com/mppd/mppd/internal/testharness"
)

// dialogueDirs hold the dialogues of the hostile-input catalogue: those
// the engine alone answers, and those whose outcome also hangs on the
// daemon (its password-file backend, its maildir, its log handler, its
// config defaults), which test/adversarial plays against the built mppd.
var dialogueDirs = []string{"testdata/dialogues", "../test/adversarial/testdata"}

// loadDialogues loads every dialogue of the catalogue.
func loadDialogues(t testing.TB) []*dialogue.Script {
	t.Helper()
	var all []*dialogue.Script
	for _, dir := range dialogueDirs {
		scripts, err := dialogue.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, scripts...)
	}
	return all
}

// TestDialogues plays every dialogue of the catalogue against the engine
// in-process, over net.Pipe, with the fake backends: alice and bob with
// the passwords the daemon's suite uses. Each copy delivered is one
// recipient of a message the fake deliverer took.
func TestDialogues(t *testing.T) {
	for _, s := range loadDialogues(t) {
		t.Run(s.Name, func(t *testing.T) { playInProcess(t, s) })
	}
}

// playInProcess runs one dialogue against a fresh engine.
func playInProcess(t *testing.T, s *dialogue.Script) {
	var limits *sendlimit.Limiter
	ts := newTestEngine(t, map[string]string{"alice": "alice-adv-pw", "bob": "bob-adv-pw"}, func(cfg *Config) {
		cfg.Hostname = "mppd.test"
		limits = applyDialogueConfig(t, cfg, s.Config)
	})
	ts.srv.SendLimit = limits
	server, client := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.srv.Serve(context.Background(), loopbackConn{server})
	}()
	c := testharness.NewClient(t, client)
	c.Expect(220)
	testharness.Play(t, c, s)
	c.Close()
	select {
	case <-done:
	case <-time.After(testharness.IOTimeout):
		t.Fatal("the session did not end after the client closed")
	}

	var copies []string
	for _, m := range ts.del.Messages() {
		for range m.Envelope.Recipients {
			copies = append(copies, m.Text)
		}
	}
	testharness.CheckOutcome(t, s, ts.logBuf.String(), copies)
}

// applyDialogueConfig sets what a dialogue's config lines (mppd.conf TOML)
// say, for the keys the engine's dialogues use; any other key fails the
// test, as it would need the daemon. It returns the sending limits a
// [limits] section sets (a key left out is unlimited), nil for none.
func applyDialogueConfig(t *testing.T, cfg *Config, lines []string) *sendlimit.Limiter {
	t.Helper()
	var c struct {
		Session struct {
			UserPattern string `toml:"user_pattern"`
			IdleTimeout string `toml:"idle_timeout"`
		}
		Message struct {
			SenderPolicy *message.SenderPolicy `toml:"sender_policy"`
		}
		Limits *struct {
			MessagesPerHour   int `toml:"messages_per_hour"`
			RecipientsPerHour int `toml:"recipients_per_hour"`
			RecipientsPerDay  int `toml:"recipients_per_day"`
		}
	}
	dec := toml.NewDecoder(bytes.NewReader([]byte(strings.Join(lines, "\n"))))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("dialogue config: %v", err)
	}
	if p := c.Session.UserPattern; p != "" {
		cfg.UserPattern = regexp.MustCompile(p)
	}
	if d := c.Session.IdleTimeout; d != "" {
		var err error
		if cfg.Limits.IdleTimeout, err = time.ParseDuration(d); err != nil {
			t.Fatal(err)
		}
	}
	if p := c.Message.SenderPolicy; p != nil {
		cfg.SenderPolicy = *p
	}
	if l := c.Limits; l != nil {
		return sendlimit.New(sendlimit.Config{Default: sendlimit.Limits{MessagesPerHour: l.MessagesPerHour,
			RecipientsPerHour: l.RecipientsPerHour, RecipientsPerDay: l.RecipientsPerDay}}, nil)
	}
	return nil
}

// loopbackConn is a net.Pipe end that says it comes from 127.0.0.1, as a
// client on loopback does, for the client address the engine logs.
type loopbackConn struct{ net.Conn }

func (loopbackConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
