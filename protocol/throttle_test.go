package protocol

import (
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
	"github.com/mppd/mppd/internal/throttle"
)

// withServer serves on a new loopback listener with a copy of ts's server
// changed by change before the first connection, so that no session reads
// a field while the test writes it; it returns a dial function.
func withServer(t *testing.T, ts *testServer, change func(*Server)) func() *client {
	t.Helper()
	srv := &Server{Config: ts.srv.Config, Auth: ts.srv.Auth, Delivery: ts.srv.Delivery, Log: ts.srv.Log}
	change(srv)
	addr := testharness.Serve(t, func(conn net.Conn) { srv.Serve(ts.ctx, conn) })
	t.Cleanup(ts.cancel) // runs first: the sessions end, then the listener
	return func() *client {
		t.Helper()
		c := testharness.Dial(t, addr, "")
		c.Expect(220)
		return c
	}
}

// recordingThrottle is a Throttle that records its calls.
type recordingThrottle struct {
	mu      sync.Mutex
	allow   bool
	penalty time.Duration
	calls   []string
}

func (r *recordingThrottle) Begin(client string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "begin "+client)
	return r.allow
}

func (r *recordingThrottle) Failed(client, user, password string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "failed "+client+" "+user)
	return r.penalty
}

func (r *recordingThrottle) Done(client string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "done "+client)
}

func (r *recordingThrottle) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.calls, "; ")
}

// The throttle is told of every login; a failure waits for its penalty
// before the 530; success and a backend outage are not failures and are
// not delayed.
func TestThrottleCalls(t *testing.T) {
	const penalty = 200 * time.Millisecond
	rt := &recordingThrottle{allow: true, penalty: penalty}
	ts := newTestServer(t, nil)
	var evMu sync.Mutex
	var events []Event
	dial := withServer(t, ts, func(s *Server) {
		s.Throttle = rt
		s.Events = func(ev Event) {
			evMu.Lock()
			defer evMu.Unlock()
			if ev.Kind == EventThrottled {
				events = append(events, ev)
			}
		}
	})

	c := dial()
	c.Cmd("USER alice", 250)
	start := time.Now()
	c.Cmd("PASS wrong", 530)
	if took := time.Since(start); took < penalty {
		t.Errorf("530 after %v, penalty %v", took, penalty)
	}
	c = dial()
	c.Login("alice", "alice-pw")
	ts.auth.SetErr(authn.Unavailable("timeout", nil))
	c = dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS alice-pw", 451)
	want := "begin 127.0.0.1; failed 127.0.0.1 alice; begin 127.0.0.1; done 127.0.0.1; begin 127.0.0.1; done 127.0.0.1"
	if got := rt.log(); got != want {
		t.Errorf("throttle calls:\n got %s\nwant %s", got, want)
	}
	evMu.Lock()
	if len(events) != 1 || events[0].Result != "penalty" || events[0].Duration != penalty || events[0].Client != "127.0.0.1" {
		t.Errorf("throttle events %+v, want one penalty of %v", events, penalty)
	}
	evMu.Unlock()
	if !strings.Contains(ts.logBuf.String(), "penalty=200ms") {
		t.Errorf("auth-failed line lacks the penalty:\n%s", ts.logBuf.String())
	}
}

// A client the throttle shuts out gets 451 and is closed; its password is
// never checked.
func TestThrottleRefusesPass(t *testing.T) {
	ts := newTestServer(t, nil)
	blocked := make(chan Event, 1)
	dial := withServer(t, ts, func(s *Server) {
		s.Throttle = &recordingThrottle{allow: false}
		s.Events = func(ev Event) {
			if ev.Kind == EventThrottled {
				blocked <- ev
			}
		}
	})
	c := dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS alice-pw", 451)
	c.ExpectClosed()
	if ev := <-blocked; ev.Result != "blocked" {
		t.Errorf("throttle event %+v", ev)
	}
	if ts.auth.Count() != 0 {
		t.Fatal("password checked for a throttled client")
	}
	waitFor(t, func() bool { return ts.logged("event=throttled") })
}

// With the real throttle: the penalty grows from connection to connection
// (catalogue case 30), a repeated password does not make it grow, and past
// the limit the next PASS is refused without a backend call.
func TestThrottleEndToEnd(t *testing.T) {
	cfg := throttle.DefaultConfig()
	cfg.Penalties = []time.Duration{50 * time.Millisecond, 150 * time.Millisecond}
	cfg.MaxPerClient = 4
	th := throttle.New(cfg, nil)
	ts := newTestServer(t, nil)
	dial := withServer(t, ts, func(s *Server) { s.Throttle = th })
	guess := func(pw string, code int) time.Duration {
		c := dial()
		c.Cmd("USER alice", 250)
		start := time.Now()
		c.Cmd("PASS "+pw, code)
		return time.Since(start)
	}
	if d := guess("one", 530); d < 50*time.Millisecond {
		t.Errorf("first failure after %v", d)
	}
	if d := guess("two", 530); d < 150*time.Millisecond {
		t.Errorf("second failure after %v", d)
	}
	for i := 0; i < 3; i++ {
		guess("two", 530) // the same again: not counted
	}
	guess("three", 530)
	guess("four", 530)
	calls := ts.auth.Count()
	guess("five", 451)
	if ts.auth.Count() != calls {
		t.Error("backend asked after the limit")
	}
}

// Catalogue case 32: under a relaxed user grammar a user name made to
// look like log fields is quoted, and the real client= comes first.
func TestLogInjection(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.UserPattern = regexp.MustCompile(`^.+$`) })
	for _, u := range []string{`x"client=192.0.2.1`, `client=1.2.3.4`, `a"client="1.2.3.4`, `"`, `user=root`} {
		c := ts.dial()
		c.Cmd("USER "+u, 250)
		c.Cmd("PASS wrong", 530)
	}
	// Names with a space, tab, CR or other control never get that far.
	for _, u := range []string{"x client=192.0.2.1", "x\tclient=192.0.2.1", "x\rclient=192.0.2.1"} {
		c := ts.dial()
		c.Cmd("USER "+u, 501)
	}
	waitFor(t, func() bool { return strings.Count(ts.logBuf.String(), "event=auth-failed") == 5 })
	first := regexp.MustCompile(`^time=\S+ level=WARN msg="authentication failed" client=127\.0\.0\.1 session=[0-9a-f]+ event=auth-failed user="`)
	for _, line := range strings.Split(ts.logBuf.String(), "\n") {
		if !strings.Contains(line, "event=auth-failed") {
			continue
		}
		if !first.MatchString(line) {
			t.Errorf("auth-failed line not in the stable form (quoted user after the real client=):\n%s", line)
		}
	}
}

// The auth-failed line in JSON has the same fields.
func TestAuthFailedJSON(t *testing.T) {
	ts := newTestServer(t, nil)
	var buf testenv.LogBuffer
	dial := withServer(t, ts, func(s *Server) { s.Log = slog.New(slog.NewJSONHandler(&buf, nil)) })
	c := dial()
	c.Cmd("USER alice", 250)
	c.Cmd("PASS wrong", 530)
	waitFor(t, func() bool { return strings.Contains(buf.String(), "auth-failed") })
	for _, f := range []string{`"client":"127.0.0.1"`, `"event":"auth-failed"`, `"user":"alice"`, `"reason":"bad-password"`} {
		if !strings.Contains(buf.String(), f) {
			t.Errorf("JSON line lacks %s: %s", f, buf.String())
		}
	}
}
