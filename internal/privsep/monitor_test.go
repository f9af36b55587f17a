package privsep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
)

const msgText = "From: alice@example.org\nTo: bob@example.org\nSubject: hi\n\nhello\n"

// TestLoginAndDeliver is the good path through the real client: log in,
// deliver, end the session. The backend sees the identity the token
// stands for and the message as staged.
func TestLoginAndDeliver(t *testing.T) {
	r := newRig(t)
	cl, hello := r.client(t)
	if hello.ConfigName != "/etc/mppd/mppd.conf" || hello.Config != "[server]\n" || len(hello.Listeners) != 1 || hello.Listeners[0].Role != "mpp" {
		t.Fatalf("hello = %+v", hello)
	}
	ctx := context.Background()
	id, err := cl.Authenticate(ctx, authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if id.Login != "alice" || len(id.Addresses) != 2 || id.Account != "" {
		t.Fatalf("identity = %+v (the engine is not told the account)", id)
	}
	env := delivery.Envelope{Sender: "alice@example.org", Recipients: []string{"bob@example.org"}, Session: "s1"}
	if err := cl.Deliver(ctx, env, stagedFile(t, msgText)); err != nil {
		t.Fatal(err)
	}
	if r.rec.count() != 1 {
		t.Fatalf("deliveries = %d", r.rec.count())
	}
	got := r.rec.envs[0]
	if got.Login != "alice" || got.Account != "alice" || got.Sender != "alice@example.org" ||
		got.Session != "s1" || len(got.Recipients) != 1 || got.Recipients[0] != "bob@example.org" {
		t.Fatalf("envelope = %+v", got)
	}
	if r.rec.msgs[0] != msgText {
		t.Fatalf("message = %q", r.rec.msgs[0])
	}
	seen := r.auth.seen[0]
	if seen.User != "alice" || seen.Password != "secret" || seen.Client != "192.0.2.7" || seen.Session != "s1" {
		t.Fatalf("authenticator saw %+v", seen)
	}

	// The backend's answers come back as they were.
	r.rec.setResult(delivery.Permanent("exit 67", nil))
	err = cl.Deliver(ctx, env, stagedFile(t, msgText))
	if !delivery.IsPermanent(err) || delivery.Reason(err) != "exit 67" {
		t.Fatalf("permanent failure came back as %v", err)
	}
	r.rec.setResult(delivery.Temporary("timeout", nil))
	err = cl.Deliver(ctx, env, stagedFile(t, msgText))
	if delivery.IsPermanent(err) || delivery.Reason(err) != "timeout" {
		t.Fatalf("temporary failure came back as %v", err)
	}
	r.rec.setResult(nil)

	// After End the token is gone in the monitor too.
	cl.End("s1")
	if err := cl.Deliver(ctx, env, stagedFile(t, msgText)); delivery.Reason(err) != "no-login" {
		t.Fatalf("deliver after End: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mon.mu.Lock()
		left := len(r.mon.grants) + len(r.mon.bySession)
		r.mon.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the monitor still holds the token after end")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// notify reaches the service manager.
	if err := cl.Notify("READY=1\nSTATUS=serving"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-r.notes:
		if s != "READY=1\nSTATUS=serving" {
			t.Fatalf("notify %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("notify did not arrive")
	}
}

// client makes a Client on the rig's engine end after the monitor's hello.
func (r *rig) client(t *testing.T, opts ...func(*ClientOptions)) (*Client, Hello) {
	t.Helper()
	err := SendHello(r.mconn, Hello{ConfigName: "/etc/mppd/mppd.conf", Config: "[server]\n",
		Listeners: []Listener{{Name: "mppd.socket", Role: "mpp"}}})
	if err != nil {
		t.Fatal(err)
	}
	o := ClientOptions{MaxInFlight: r.mon.MaxInFlight}
	for _, f := range opts {
		f(&o)
	}
	h, err := ReadHello(r.engine)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewClient(r.engine, o)
	if err != nil {
		t.Fatal(err)
	}
	return cl, h
}

// TestLoginOutcomes: bad credentials, an unavailable backend and the
// account policy each come back to the engine as the login failure they
// are, with their reason, and issue no token. A password that is not
// UTF-8 arrives intact.
func TestLoginOutcomes(t *testing.T) {
	r := newRig(t)
	cl, _ := r.client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		user, pass string
		bad        bool
		reason     string
	}{
		{"alice", "wrong", true, "bad-password"},
		{"down", "x", false, "connect"},
		{"root", "toor", true, "uid-zero"},
		{"nss", "x", false, "account-lookup"},
	} {
		_, err := cl.Authenticate(ctx, authn.Request{User: tc.user, Password: tc.pass, Client: "2001:db8::1", Session: "s-" + tc.user})
		if err == nil || authn.IsBadCredentials(err) != tc.bad || authn.Reason(err) != tc.reason {
			t.Errorf("%s: err = %v, want bad=%v reason %s", tc.user, err, tc.bad, tc.reason)
		}
		if cl.tokens["s-"+tc.user] != "" {
			t.Errorf("%s: a token was kept", tc.user)
		}
	}
	if !logHas(r.logs.String(), "event=account-refused", "reason=uid-zero", "login=root") {
		t.Errorf("the account refusal is not logged:\n%s", r.logs)
	}
	if _, err := cl.Authenticate(ctx, authn.Request{User: "carol", Password: "\xe9t\xe9", Client: "192.0.2.1", Session: "s-carol"}); err != nil {
		t.Fatalf("a latin-1 password did not arrive intact: %v", err)
	}
	r.mon.mu.Lock()
	defer r.mon.mu.Unlock()
	if len(r.mon.grants) != 1 {
		t.Fatalf("%d grants, want 1 (carol's)", len(r.mon.grants))
	}
}

// TestRefusals plays a compromised engine that sends well-formed deliver
// requests the monitor must refuse. Each is answered "refused", logged as
// a security event with its reason, reaches no backend, and the monitor
// keeps serving.
func TestRefusals(t *testing.T) {
	r := newRig(t)
	alice := r.login(1, "alice", "secret", "s-alice")
	bob := r.login(2, "bob", "hunter2", "s-bob")
	good := func() deliverRequest {
		return deliverRequest{Type: typeDeliver, Token: alice, Session: "s-alice",
			Sender: "alice@example.org", Recipients: []string{"bob@example.org"}}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	linked, err := os.Create(t.TempDir() + "/linked")
	if err != nil {
		t.Fatal(err)
	}
	defer linked.Close()
	linked.WriteString(msgText)

	cases := []struct {
		name   string
		edit   func(*deliverRequest)
		files  func() []*os.File
		reason string
	}{
		{"no token", func(d *deliverRequest) { d.Token = strings.Repeat("ab", 32) }, nil, "unknown-token"},
		{"another session's token", func(d *deliverRequest) { d.Token = bob }, nil, "other-session-token"},
		{"token used from another session", func(d *deliverRequest) { d.Session = "s-bob" }, nil, "other-session-token"},
		{"sender not the identity's", func(d *deliverRequest) { d.Sender = "bob@example.org" }, nil, "sender-not-identity"},
		{"sender local part case", func(d *deliverRequest) { d.Sender = "Alice@example.org" }, nil, "sender-not-identity"},
		{"no fd", nil, func() []*os.File { return nil }, "fd-count"},
		{"two fds", nil, func() []*os.File { return []*os.File{stagedFile(t, msgText), stagedFile(t, msgText)} }, "fd-count"},
		{"five fds", nil, func() []*os.File {
			return []*os.File{stagedFile(t, msgText), stagedFile(t, msgText), stagedFile(t, msgText), stagedFile(t, msgText), stagedFile(t, msgText)}
		}, "fd-count"},
		{"pipe", nil, func() []*os.File { return []*os.File{pr} }, "fd-not-regular"},
		{"directory", nil, func() []*os.File {
			d, err := os.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return []*os.File{d}
		}, "fd-not-regular"},
		{"named file", nil, func() []*os.File { return []*os.File{linked} }, "fd-linked"},
		{"oversize file", nil, func() []*os.File { return []*os.File{stagedFile(t, strings.Repeat("x", 1001))} }, "fd-too-big"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := good()
			d.ID = uint64(100 + i)
			if tc.edit != nil {
				tc.edit(&d)
			}
			files := []*os.File{stagedFile(t, msgText)}
			if tc.files != nil {
				files = tc.files()
			}
			r.sendRaw(d, files...)
			rep := r.readReply()
			if rep.ID != d.ID || rep.Result != resultRefused || rep.Reason != tc.reason {
				t.Fatalf("reply %+v, want refused %s", rep, tc.reason)
			}
			if !logHas(r.logs.String(), "level=WARN", "event=privsep-refused", "reason="+tc.reason) {
				t.Fatalf("refusal not logged:\n%s", r.logs)
			}
			if r.rec.count() != 0 {
				t.Fatal("the backend saw a delivery")
			}
			r.stillServing()
		})
	}

	// The same request with everything right is delivered, as alice,
	// sender domain compared without case.
	d := good()
	d.ID, d.Sender = 500, "alice@EXAMPLE.org"
	r.sendRaw(d, stagedFile(t, msgText))
	if rep := r.readReply(); rep.Result != resultQueued {
		t.Fatalf("good request: %+v", rep)
	}
	if r.rec.count() != 1 || r.rec.envs[0].Account != "alice" {
		t.Fatalf("deliveries %+v", r.rec.envs)
	}

	// An expired token is refused and forgotten.
	r.clock.Advance(20 * time.Minute)
	d.ID = 501
	r.sendRaw(d, stagedFile(t, msgText))
	if rep := r.readReply(); rep.Result != resultRefused || rep.Reason != "expired-token" {
		t.Fatalf("expired token: %+v", rep)
	}
	d.ID = 502
	r.sendRaw(d, stagedFile(t, msgText))
	if rep := r.readReply(); rep.Reason != "unknown-token" {
		t.Fatalf("expired token was not forgotten: %+v", rep)
	}
	if r.rec.count() != 1 {
		t.Fatal("an expired token delivered")
	}

	// A new login of a session replaces its token; a failed one drops it.
	carol := r.login(503, "carol", "\xe9t\xe9", "s-carol")
	carol2 := r.login(504, "carol", "\xe9t\xe9", "s-carol")
	if carol == carol2 {
		t.Fatal("the same token twice")
	}
	r.sendRaw(authRequest{Type: typeAuth, ID: 505, User: []byte("carol"), Password: []byte("wrong"), Client: "192.0.2.7", Session: "s-carol"})
	if rep := r.readReply(); rep.Result != resultBad {
		t.Fatalf("wrong password: %+v", rep)
	}
	for i, tok := range []string{carol, carol2} {
		r.sendRaw(deliverRequest{Type: typeDeliver, ID: uint64(506 + i), Token: tok, Session: "s-carol",
			Sender: "carol@example.org", Recipients: []string{"x@example.org"}}, stagedFile(t, msgText))
		if rep := r.readReply(); rep.Reason != "unknown-token" {
			t.Fatalf("token %d of a session that logged in again: %+v", i, rep)
		}
	}
	if r.rec.count() != 1 {
		t.Fatal("a replaced token delivered")
	}

	// end with another session's token is refused and changes nothing.
	bob = r.login(599, "bob", "hunter2", "s-bob")
	r.sendRaw(endRequest{Type: typeEnd, ID: 600, Session: "s-alice", Token: bob})
	d.ID, d.Token, d.Session, d.Sender = 601, bob, "s-bob", "bob@example.org"
	r.sendRaw(d, stagedFile(t, msgText))
	if rep := r.readReply(); rep.Result != resultQueued {
		t.Fatalf("bob's token after a foreign end: %+v", rep)
	}
	if !logHas(r.logs.String(), "event=privsep-refused", "request=end", "reason=other-session-token") {
		t.Fatalf("foreign end not logged:\n%s", r.logs)
	}
}

// TestViolations plays a compromised engine that breaks the protocol.
// Each time Serve logs the violation, stops, and returns a
// *ViolationError; no backend sees a delivery.
func TestViolations(t *testing.T) {
	auth := func(id uint64) authRequest {
		return authRequest{Type: typeAuth, ID: id, User: []byte("alice"), Password: []byte("secret"), Client: "192.0.2.7", Session: "s1"}
	}
	cases := []struct {
		name  string
		play  func(r *rig)
		match string
	}{
		{"garbage", func(r *rig) { r.sendRaw("\x00\x01garbage") }, ""},
		{"not an object", func(r *rig) { r.sendRaw(`["auth"]`) }, ""},
		{"two objects", func(r *rig) {
			b, _ := encode(auth(1))
			r.sendRaw(string(b) + string(b))
		}, "data after"},
		{"empty frame", func(r *rig) { r.sendRaw("") }, "empty frame"},
		{"oversized frame", func(r *rig) {
			r.sendRaw(`{"type":"notify","id":1,"state":"` + strings.Repeat("x", MaxFrame) + `"}`)
		}, "larger than"},
		{"unknown type", func(r *rig) { r.sendRaw(`{"type":"shell","id":1,"cmd":"id"}`) }, "unknown frame type"},
		{"monitor's own type", func(r *rig) { r.sendRaw(`{"type":"reply","id":1,"result":"ok"}`) }, "unknown frame type"},
		{"unknown field", func(r *rig) {
			r.sendRaw(`{"type":"auth","id":1,"user":"YWxpY2U=","password":"c2VjcmV0","client":"192.0.2.7","session":"s1","account":"root"}`)
		}, "unknown field"},
		{"id zero", func(r *rig) { r.sendRaw(auth(0)) }, "id 0"},
		{"bad session id", func(r *rig) { a := auth(1); a.Session = "../x"; r.sendRaw(a) }, "session id"},
		{"bad client", func(r *rig) { a := auth(1); a.Client = "localhost"; r.sendRaw(a) }, "client"},
		{"long password", func(r *rig) { a := auth(1); a.Password = make([]byte, 513); r.sendRaw(a) }, "password"},
		{"recipient like an option", func(r *rig) {
			r.sendRaw(deliverRequest{Type: typeDeliver, ID: 1, Token: strings.Repeat("0", 64), Session: "s1",
				Sender: "alice@example.org", Recipients: []string{"-oQ/tmp"}})
		}, "recipient 0"},
		{"too many recipients", func(r *rig) {
			r.sendRaw(deliverRequest{Type: typeDeliver, ID: 1, Token: strings.Repeat("0", 64), Session: "s1",
				Sender: "alice@example.org", Recipients: []string{"a@x", "b@x", "c@x", "d@x"}})
		}, "recipients"},
		{"notify outside the list", func(r *rig) { r.sendRaw(notifyRequest{Type: typeNotify, ID: 1, State: "MAINPID=1"}) }, "not allowed"},
		{"fd with auth", func(r *rig) { r.sendRaw(auth(1), stagedFile(r.t, msgText)) }, "file descriptor"},
		{"reused id", func(r *rig) {
			a := auth(7)
			a.Password = []byte("block")
			r.sendRaw(a)
			r.sendRaw(a)
		}, "reused"},
		{"flood", func(r *rig) {
			for i := range 5 { // MaxInFlight is 4
				a := auth(uint64(10 + i))
				a.Password = []byte("block")
				a.Session = fmt.Sprintf("s%d", i)
				r.sendRaw(a)
			}
		}, "in flight"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			tc.play(r)
			if strings.Contains(tc.name, "reused") || tc.name == "flood" {
				// The requests in flight are waited for: Serve
				// has not returned while they block.
				r.stillServing()
				r.releaseAuth()
			}
			err := r.waitServe()
			var v *ViolationError
			if !errors.As(err, &v) {
				t.Fatalf("Serve = %v, want a violation", err)
			}
			if !strings.Contains(v.Reason, tc.match) {
				t.Fatalf("reason %q does not say %q", v.Reason, tc.match)
			}
			if !logHas(r.logs.String(), "level=ERROR", "event=privsep-violation") {
				t.Fatalf("violation not logged:\n%s", r.logs)
			}
			if r.rec.count() != 0 {
				t.Fatal("the backend saw a delivery")
			}
		})
	}
}

// TestWaitsForDeliveryWhenEngineGoes: the engine goes away while a
// delivery runs. Serve lets it finish before returning nil.
func TestWaitsForDeliveryWhenEngineGoes(t *testing.T) {
	r := newRig(t)
	r.holdDelivery()
	r.engine.Close()
	r.stillServing()
	time.Sleep(50 * time.Millisecond)
	r.stillServing()
	close(r.rec.hold)
	if err := r.waitServe(); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	if r.rec.count() != 1 || r.rec.msgs[0] != msgText {
		t.Fatalf("the delivery did not finish: %v", r.rec.msgs)
	}
}

// TestViolationWaitsForDelivery: a violation while a delivery runs lets
// the delivery finish before Serve returns the violation.
func TestViolationWaitsForDelivery(t *testing.T) {
	r := newRig(t)
	r.holdDelivery()
	r.sendRaw("garbage")
	select {
	case <-r.violated:
	case <-time.After(5 * time.Second):
		t.Fatal("OnViolation was not called while the delivery runs")
	}
	r.stillServing()
	close(r.rec.hold)
	var v *ViolationError
	if err := r.waitServe(); !errors.As(err, &v) {
		t.Fatalf("Serve = %v", err)
	}
	if r.rec.count() != 1 {
		t.Fatal("the running delivery did not finish")
	}
}

// TestNoDescriptorLeak: descriptors that come with refused requests are
// closed by the monitor, however many there were.
func TestNoDescriptorLeak(t *testing.T) {
	r := newRig(t)
	tok := r.login(1, "alice", "secret", "s1")
	f := stagedFile(t, msgText)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	before := openFDs(t)
	for i := range 30 {
		d := deliverRequest{Type: typeDeliver, ID: uint64(10 + i), Token: tok, Session: "s1",
			Sender: "alice@example.org", Recipients: []string{"bob@example.org"}}
		switch i % 3 {
		case 0:
			r.sendRaw(d, f, f, f, f, f, f) // more than fit
		case 1:
			r.sendRaw(d, pr)
		case 2:
			d.Token = strings.Repeat("ab", 32)
			r.sendRaw(d, f)
		}
		if rep := r.readReply(); rep.Result != resultRefused {
			t.Fatalf("request %d: %+v", i, rep)
		}
	}
	if after := openFDs(t); after != before {
		t.Fatalf("%d descriptors open before, %d after", before, after)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
