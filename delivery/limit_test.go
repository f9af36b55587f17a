package delivery

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
)

// limitGate is a deliverer whose deliveries wait for its gate.
type limitGate struct{ testenv.Gate }

func (g *limitGate) Deliver(ctx context.Context, env Envelope, msg io.Reader) error {
	g.Pass()
	return nil
}

func TestCapAndQueueTimeout(t *testing.T) {
	g := &limitGate{}
	logBuf := &testenv.LogBuffer{}
	l := Limit(g, 3, 50*time.Millisecond, slog.New(slog.NewTextHandler(logBuf, nil)))
	wait := testenv.Concurrently(t, 3, func() error {
		return l.Deliver(context.Background(), Envelope{}, strings.NewReader("x"))
	})
	testenv.WaitFor(t, 10*time.Second, func() bool { return l.InUse() >= 3 }, "fewer than 3 deliveries hold a slot after 10s")
	err := l.Deliver(context.Background(), Envelope{Session: "s1"}, strings.NewReader("x"))
	if err == nil || IsPermanent(err) || Reason(err) != "busy" {
		t.Fatalf("fourth delivery: %v", err)
	}
	if !strings.Contains(logBuf.String(), "event=delivery-busy") {
		t.Errorf("no log line for the cap:\n%s", logBuf.String())
	}
	g.Open()
	wait()
	if g.Peak() > 3 || l.InUse() != 0 {
		t.Fatalf("peak %d, in use %d", g.Peak(), l.InUse())
	}
	if err := l.Deliver(context.Background(), Envelope{}, strings.NewReader("x")); err != nil {
		t.Fatalf("after the queue drained: %v", err)
	}
}

// accountsBackend is a deliverer with an account policy.
type accountsBackend struct{ Deliverer }

func (accountsBackend) CheckAccount(login, account string) error {
	if account == "root" {
		return Permanent("uid-zero", nil)
	}
	return nil
}

// TestCheckAccountPassesThrough: the limit offers the account policy of
// the backend it wraps, and accepts every account when there is none.
func TestCheckAccountPassesThrough(t *testing.T) {
	l := Limit(accountsBackend{}, 1, time.Second, nil)
	if err := l.CheckAccount("root", "root"); Reason(err) != "uid-zero" {
		t.Fatalf("root: %v", err)
	}
	if err := l.CheckAccount("alice", "alice"); err != nil {
		t.Fatalf("alice: %v", err)
	}
	var plain Deliverer = accountsBackend{}.Deliverer
	if err := Limit(plain, 1, time.Second, nil).CheckAccount("root", "root"); err != nil {
		t.Fatalf("a backend without a policy: %v", err)
	}
}
