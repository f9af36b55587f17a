package protocol

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/mppd/mppd/authn/authntest"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/delivery/deliverytest"
	"github.com/mppd/mppd/internal/testharness"
)

// TestEvents: Server.Events hears of each login (ok, rejected), each
// delivery with its result, each message with its outcome, and the end of
// each session, with the session's id, client and user filled in.
func TestEvents(t *testing.T) {
	var mu sync.Mutex
	var got []Event
	del := &deliverytest.Recorder{}
	cfg := testConfig()
	cfg.StagingDir = t.TempDir()
	srv := &Server{
		Config:   cfg,
		Auth:     authntest.New(map[string]string{"alice": "alice-pw"}),
		Delivery: del,
		Events: func(ev Event) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, ev)
		},
	}
	session := func(script func(c *client)) {
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.Serve(context.Background(), a)
		}()
		c := testharness.NewClient(t, b)
		c.Expect(220)
		script(c)
		b.Close()
		<-done
	}

	session(func(c *client) {
		c.Login("alice", "alice-pw")
		c.PostRaw(simpleMessage, 250)
		c.Cmd("QUIT", 221)
	})
	session(func(c *client) {
		c.Cmd("USER alice", 250)
		c.Cmd("PASS wrong", 530)
	})
	del.SetErr(delivery.Temporary("test", nil))
	session(func(c *client) {
		c.Login("alice", "alice-pw")
		c.PostRaw(simpleMessage, 451)
	})
	session(func(c *client) {
		c.Login("alice", "alice-pw")
		c.PostRaw("To: bob@example.test\r\n\r\nbare\rCR\r\n", 550)
	})

	want := []struct {
		kind   EventKind
		result string
	}{
		{EventLogin, "ok"}, {EventDelivery, "ok"}, {EventMessage, "queued"}, {EventSessionEnd, ""},
		{EventLogin, "rejected"}, {EventSessionEnd, ""},
		{EventLogin, "ok"}, {EventDelivery, "temporary"}, {EventMessage, "failed"}, {EventSessionEnd, ""},
		{EventLogin, "ok"}, {EventMessage, "rejected"}, {EventSessionEnd, ""},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		ev := got[i]
		if ev.Kind != w.kind || ev.Result != w.result {
			t.Errorf("event %d = %v %q, want %v %q", i, ev.Kind, ev.Result, w.kind, w.result)
		}
		if ev.Session == "" || ev.User != "alice" {
			t.Errorf("event %d lacks session or user: %+v", i, ev)
		}
	}
	if got[1].Duration <= 0 {
		t.Errorf("delivery event has no duration: %+v", got[1])
	}
	if got[0].Session != got[3].Session || got[3].Session == got[5].Session {
		t.Errorf("session ends do not name their sessions: %+v", got)
	}
}
