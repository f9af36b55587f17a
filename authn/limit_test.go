package authn

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
)

// limitGate is a backend whose calls wait for its gate.
type limitGate struct{ testenv.Gate }

func (g *limitGate) Authenticate(ctx context.Context, req Request) (Identity, error) {
	g.Pass()
	return Identity{Login: req.User, Addresses: []string{req.User + "@x.test"}}, nil
}

// waitInUse waits, with a deadline, until n slots are held.
func waitInUse(t *testing.T, l *Limited, n int) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() bool { return l.InUse() >= n }, "fewer than %d slots held after 10s", n)
}

func TestCapAndQueueTimeout(t *testing.T) {
	g := &limitGate{}
	logBuf := &testenv.LogBuffer{}
	l := Limit(g, 2, 50*time.Millisecond, slog.New(slog.NewTextHandler(logBuf, nil)))
	wait := testenv.Concurrently(t, 2, func() error {
		_, err := l.Authenticate(context.Background(), Request{User: "a"})
		return err
	})
	waitInUse(t, l, 2)
	// The third waits out the queue timeout and gets "busy" (451).
	_, err := l.Authenticate(context.Background(), Request{User: "c", Client: "192.0.2.1"})
	if err == nil || IsBadCredentials(err) || Reason(err) != "busy" {
		t.Fatalf("third login: %v", err)
	}
	if !strings.Contains(logBuf.String(), "event=authn-busy") || !strings.Contains(logBuf.String(), "client=192.0.2.1") {
		t.Errorf("no log line for the cap:\n%s", logBuf.String())
	}
	// One that waits less than the timeout gets through once a slot frees.
	done := make(chan error, 1)
	l2 := Limit(g, 2, 10*time.Second, nil)
	l2.slots = l.slots
	go func() {
		_, err := l2.Authenticate(context.Background(), Request{User: "d"})
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	g.Open()
	if err := <-done; err != nil {
		t.Fatalf("queued login: %v", err)
	}
	wait()
	if g.Peak() > 2 {
		t.Fatalf("%d ran at once, cap 2", g.Peak())
	}
	if l.InUse() != 0 {
		t.Fatalf("%d slots still held", l.InUse())
	}
}

// A caller whose context ends while queued gets "busy" at once.
func TestQueueContext(t *testing.T) {
	g := &limitGate{}
	l := Limit(g, 1, time.Hour, nil)
	go l.Authenticate(context.Background(), Request{User: "a"})
	waitInUse(t, l, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Authenticate(ctx, Request{User: "b"}); Reason(err) != "busy" {
		t.Fatalf("got %v", err)
	}
	g.Open()
}
