package privsep

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/delivery"
)

// BenchmarkLoginRoundTrip measures what the process split adds to a login:
// one auth request and its reply over the socketpair, with a backend that
// answers at once.
func BenchmarkLoginRoundTrip(b *testing.B) {
	r := newBenchRig(b)
	req := authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: "s1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.cl.Authenticate(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliverRoundTrip measures what the split adds to a delivery of
// a 4 KiB message already staged (the engine stages it while reading it):
// passing the descriptor, the monitor's checks, and the reply; the backend
// reads the message.
func BenchmarkDeliverRoundTrip(b *testing.B) {
	r := newBenchRig(b)
	if _, err := r.cl.Authenticate(context.Background(), authn.Request{User: "alice", Password: "secret", Client: "192.0.2.7", Session: "s1"}); err != nil {
		b.Fatal(err)
	}
	msg := msgText + strings.Repeat("x", 4096-len(msgText)-1) + "\n"
	env := delivery.Envelope{Sender: "alice@example.org", Recipients: []string{"bob@example.org"}, Session: "s1"}
	f := stagedFile(b, msg)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.cl.Deliver(context.Background(), env, f); err != nil {
			b.Fatal(err)
		}
	}
}

type benchRig struct {
	cl *Client
}

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	mconn, econn := connPair(b)
	mon := &Monitor{
		Auth:           &fakeAuth{release: make(chan struct{})},
		Delivery:       discard{},
		SessionTimeout: 1 << 40,
		MaxInFlight:    4,
		MaxRecipients:  100,
		MaxMessage:     1 << 20,
	}
	served := make(chan error, 1)
	go func() { served <- mon.Serve(context.Background(), mconn) }()
	if err := SendHello(mconn, Hello{}); err != nil {
		b.Fatal(err)
	}
	if _, err := ReadHello(econn); err != nil {
		b.Fatal(err)
	}
	cl, err := NewClient(econn, ClientOptions{MaxInFlight: 4})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		econn.Close()
		<-served
		mconn.Close()
	})
	return &benchRig{cl: cl}
}

// discard is a deliverer that reads the message and keeps nothing.
type discard struct{}

func (discard) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	_, err := io.Copy(io.Discard, msg)
	return err
}
