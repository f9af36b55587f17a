package privsep

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/testenv"
)

// fakeAuth knows a few users. A user whose password is "block" waits on
// release before answering, so tests can keep requests in flight.
type fakeAuth struct {
	release chan struct{}

	mu   sync.Mutex
	seen []authn.Request
}

var users = map[string]struct {
	password string
	id       authn.Identity
}{
	"alice": {"secret", authn.Identity{Login: "alice", Addresses: []string{"alice@Example.org", "a@example.net"}, Account: "alice"}},
	"bob":   {"hunter2", authn.Identity{Login: "bob", Addresses: []string{"bob@example.org"}, Account: "bob"}},
	"root":  {"toor", authn.Identity{Login: "root", Addresses: []string{"root@example.org"}, Account: "root"}},
	"carol": {"\xe9t\xe9", authn.Identity{Login: "carol", Addresses: []string{"carol@example.org"}, Account: "carol"}},
	"nss":   {"x", authn.Identity{Login: "nss", Addresses: []string{"nss@example.org"}, Account: "nss"}},
}

func (a *fakeAuth) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	a.mu.Lock()
	a.seen = append(a.seen, req)
	a.mu.Unlock()
	if req.Password == "block" {
		select {
		case <-a.release:
		case <-ctx.Done():
		}
		return authn.Identity{}, authn.Rejected("blocked", nil)
	}
	if req.User == "down" {
		return authn.Identity{}, authn.Unavailable("connect", nil)
	}
	u, ok := users[req.User]
	if !ok || u.password != req.Password {
		return authn.Identity{}, authn.Rejected("bad-password", nil)
	}
	return u.id, nil
}

// fakeAccounts refuses root as the sendmail backend would, and cannot
// answer for "nss".
type fakeAccounts struct{}

func (fakeAccounts) CheckAccount(login, account string) error {
	switch account {
	case "root":
		return delivery.Permanent("uid-zero", errors.New("account root has uid 0"))
	case "nss":
		return delivery.Temporary("account-lookup", errors.New("NSS is down"))
	}
	return nil
}

// recorder is a deliverer that keeps what it is given. When hold is not
// nil, Deliver signals started and waits for hold to close.
type recorder struct {
	hold    chan struct{}
	started chan struct{}
	result  error

	mu   sync.Mutex
	envs []delivery.Envelope
	msgs []string
}

func (r *recorder) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	r.mu.Lock()
	started, hold := r.started, r.hold
	r.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if hold != nil {
		<-hold
	}
	b, err := io.ReadAll(msg)
	if err != nil {
		return delivery.Temporary("read", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.envs = append(r.envs, env)
	r.msgs = append(r.msgs, string(b))
	return r.result
}

// holdNext makes the deliveries from now on say that they started (on
// rec.started) and wait until rec.hold is closed.
func (r *recorder) holdNext() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = make(chan struct{})
	r.started = make(chan struct{}, 1)
}

// setResult sets what the next deliveries answer. The monitor runs each
// delivery on a goroutine of its own, so the write takes the lock its reads
// do.
func (r *recorder) setResult(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.result = err
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.envs)
}

// rig is a monitor serving one end of a real socketpair; the test holds
// the other end (raw, or through a Client).
type rig struct {
	t      *testing.T
	mon    *Monitor
	auth   *fakeAuth
	rec    *recorder
	logs   *testenv.LogBuffer
	engine *net.UnixConn
	mconn  *net.UnixConn
	served chan error
	clock  *testenv.Clock
	notes  chan string
	// violated is closed by the monitor's OnViolation.
	violated chan struct{}

	releaseOnce sync.Once
}

// releaseAuth lets every blocked login finish.
func (r *rig) releaseAuth() { r.releaseOnce.Do(func() { close(r.auth.release) }) }

// connPair is Pair with the engine's end turned into a connection, as
// the engine does with the descriptor it inherits: the monitor's end, then
// the engine's.
func connPair(t testing.TB) (mconn, econn *net.UnixConn) {
	t.Helper()
	mconn, ef, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	econn, err = FileConn(ef)
	ef.Close()
	if err != nil {
		t.Fatal(err)
	}
	return mconn, econn
}

func newRig(t *testing.T, tweak ...func(*Monitor)) *rig {
	t.Helper()
	mconn, econn := connPair(t)
	r := &rig{
		t:        t,
		auth:     &fakeAuth{release: make(chan struct{})},
		rec:      &recorder{},
		logs:     &testenv.LogBuffer{},
		engine:   econn,
		mconn:    mconn,
		served:   make(chan error, 1),
		clock:    testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		notes:    make(chan string, 10),
		violated: make(chan struct{}),
	}
	r.mon = &Monitor{
		Auth:           r.auth,
		Delivery:       r.rec,
		Accounts:       fakeAccounts{},
		SessionTimeout: 20 * time.Minute,
		MaxInFlight:    4,
		MaxRecipients:  3,
		MaxMessage:     1000,
		Log:            slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Notify:         func(s string) error { r.notes <- s; return nil },
		now:            r.clock.Now,
		OnViolation:    func() { close(r.violated) },
	}
	for _, f := range tweak {
		f(r.mon)
	}
	go func() { r.served <- r.mon.Serve(context.Background(), mconn) }()
	t.Cleanup(func() {
		r.releaseAuth()
		econn.Close()
		select {
		case <-r.served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after the engine closed its end")
		}
		mconn.Close()
	})
	return r
}

// sendRaw sends one frame (JSON text, or a value to marshal) with the
// descriptors of files attached.
func (r *rig) sendRaw(frame any, files ...*os.File) {
	r.t.Helper()
	var b []byte
	switch v := frame.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			r.t.Fatal(err)
		}
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := r.engine.WriteMsgUnix(b, oob, nil); err != nil {
		r.t.Fatalf("send: %v", err)
	}
}

// readReply reads the monitor's next frame as a reply.
func (r *rig) readReply() reply {
	r.t.Helper()
	r.engine.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, MaxFrame+1)
	n, _, _, _, err := r.engine.ReadMsgUnix(buf, nil)
	if err != nil {
		r.t.Fatalf("read reply: %v", err)
	}
	var rep reply
	if err := decodeStrict(buf[:n], &rep, true); err != nil || rep.Type != typeReply {
		r.t.Fatalf("bad reply %q: %v", buf[:n], err)
	}
	return rep
}

// login logs user in for session with a raw auth frame and returns the
// token.
func (r *rig) login(id uint64, user, password, session string) string {
	r.t.Helper()
	r.sendRaw(authRequest{Type: typeAuth, ID: id, User: []byte(user), Password: []byte(password), Client: "192.0.2.7", Session: session})
	rep := r.readReply()
	if rep.ID != id || rep.Result != resultOK {
		r.t.Fatalf("login %s: %+v", user, rep)
	}
	return rep.Token
}

// holdDelivery logs alice in and sends a delivery of msgText that the
// backend starts and then holds until rec.hold is closed; it returns once
// the delivery has started.
func (r *rig) holdDelivery() {
	r.t.Helper()
	r.rec.holdNext()
	tok := r.login(1, "alice", "secret", "s1")
	r.sendRaw(deliverRequest{Type: typeDeliver, ID: 2, Token: tok, Session: "s1", Sender: "alice@example.org",
		Recipients: []string{"bob@example.org"}}, stagedFile(r.t, msgText))
	<-r.rec.started
}

// waitServe returns Serve's result, failing the test if it takes long.
func (r *rig) waitServe() error {
	r.t.Helper()
	select {
	case err := <-r.served:
		r.served <- err // for Cleanup
		return err
	case <-time.After(10 * time.Second):
		r.t.Fatal("Serve did not return")
		return nil
	}
}

// stillServing fails the test if Serve has returned.
func (r *rig) stillServing() {
	r.t.Helper()
	select {
	case err := <-r.served:
		r.served <- err
		r.t.Fatalf("Serve returned %v", err)
	case <-time.After(20 * time.Millisecond):
	}
}

// stagedFile returns an unlinked regular file holding text, as the engine
// stages messages.
func stagedFile(t testing.TB, text string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "msg-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.Name()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// logHas reports whether a log line has all of the given key=value texts.
func logHas(logs string, parts ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
