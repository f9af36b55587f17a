package privsep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
)

// TestClientNeverExceedsInFlight: logins that block hold their slots even
// after their callers gave up, so a burst of sessions never makes a
// legitimate engine look like a flood to the monitor.
func TestClientNeverExceedsInFlight(t *testing.T) {
	r := newRig(t, func(m *Monitor) { m.MaxInFlight = 2 })
	cl, _ := r.client(t)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, err := cl.Authenticate(ctx, authn.Request{User: "alice", Password: "block", Client: "192.0.2.7", Session: fmt.Sprintf("b%d", i)})
			if authn.IsBadCredentials(err) || err == nil {
				t.Errorf("a login that timed out: %v", err)
			}
		})
	}
	wg.Wait()
	// Both callers have gone, but their requests are still in flight:
	// more logins wait for a slot instead of going to the monitor.
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		_, err := cl.Authenticate(ctx, authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: fmt.Sprintf("w%d", i)})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("login while the slots are taken: %v", err)
		}
	}
	r.stillServing()
	r.releaseAuth()
	if _, err := cl.Authenticate(context.Background(), authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: "later"}); err != nil {
		t.Fatalf("login once the slots are free: %v", err)
	}
	r.stillServing()
	if logHas(r.logs.String(), "privsep-violation") {
		t.Fatalf("a legitimate engine was taken for a violator:\n%s", r.logs)
	}
}

// TestClientMonitorGone: when the monitor's end closes, Done is closed and
// requests fail as unavailable (logins) and temporary (deliveries).
func TestClientMonitorGone(t *testing.T) {
	r := newRig(t)
	cl, _ := r.client(t)
	if _, err := cl.Authenticate(context.Background(), authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := cl.Authenticate(context.Background(), authn.Request{User: "bob", Password: "block", Client: "192.0.2.7", Session: "s2"})
		blocked <- err
	}()
	time.Sleep(20 * time.Millisecond)
	r.mconn.Close()
	select {
	case <-cl.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the monitor went away")
	}
	if !errors.Is(cl.Err(), errMonitorGone) && cl.Err() == nil {
		t.Fatalf("Err = %v", cl.Err())
	}
	if err := <-blocked; err == nil || authn.IsBadCredentials(err) {
		t.Fatalf("pending login: %v", err)
	}
	_, err := cl.Authenticate(context.Background(), authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: "s3"})
	if err == nil || authn.IsBadCredentials(err) {
		t.Fatalf("login after the monitor went: %v", err)
	}
	err = cl.Deliver(context.Background(), delivery.Envelope{Sender: "alice@example.org", Recipients: []string{"b@x"}, Session: "s1"}, stagedFile(t, msgText))
	if err == nil || delivery.IsPermanent(err) {
		t.Fatalf("delivery after the monitor went: %v", err)
	}
}

// TestClientTLSUpdates: tls frames after the hello reach OnTLS.
func TestClientTLSUpdates(t *testing.T) {
	r := newRig(t)
	got := make(chan TLSPair, 2)
	r.client(t, func(o *ClientOptions) { o.OnTLS = func(p TLSPair) { got <- p } })
	if err := SendTLS(r.mconn, TLSPair{Cert: "CERT PEM", Key: "KEY PEM"}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p.Cert != "CERT PEM" || p.Key != "KEY PEM" {
			t.Fatalf("pair %+v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no tls update")
	}
}

// TestClientNeedsHello: the first frame must be the hello.
func TestClientNeedsHello(t *testing.T) {
	r := newRig(t)
	if err := SendTLS(r.mconn, TLSPair{Cert: "c", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHello(r.engine); err == nil {
		t.Fatal("ReadHello accepted a first frame that is not a hello")
	}
}

// TestClientStagedFileAsIs: a message that already is an unlinked file is
// passed as it is, from its start.
func TestClientStagedFileAsIs(t *testing.T) {
	r := newRig(t)
	cl, _ := r.client(t)
	if _, err := cl.Authenticate(context.Background(), authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	f := stagedFile(t, msgText) // offset at the end
	env := delivery.Envelope{Sender: "a@example.net", Recipients: []string{"b@x"}, Session: "s1"}
	if err := cl.Deliver(context.Background(), env, f); err != nil {
		t.Fatal(err)
	}
	if r.rec.count() != 1 || r.rec.msgs[0] != msgText {
		t.Fatalf("delivered %q", r.rec.msgs)
	}
}

// TestClientTakesOnlyStagedFiles: the engine stages every message in one
// unlinked file; the client passes that file and never makes a copy of
// its own, so anything else is refused, as is a file with a name.
func TestClientTakesOnlyStagedFiles(t *testing.T) {
	r := newRig(t)
	cl, _ := r.client(t)
	if _, err := cl.Authenticate(context.Background(), authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	env := delivery.Envelope{Sender: "a@example.net", Recipients: []string{"b@x"}, Session: "s1"}
	if err := cl.Deliver(context.Background(), env, strings.NewReader(msgText)); delivery.Reason(err) != "staging" {
		t.Fatalf("a reader that is not a file: %v", err)
	}
	named, err := os.Create(filepath.Join(t.TempDir(), "named"))
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	named.WriteString(msgText)
	if err := cl.Deliver(context.Background(), env, named); delivery.Reason(err) != "staging" {
		t.Fatalf("a file with a name: %v", err)
	}
	if r.rec.count() != 0 {
		t.Fatalf("%d messages reached the backend", r.rec.count())
	}
}
