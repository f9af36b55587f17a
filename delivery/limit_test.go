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
	for l.InUse() < 3 {
		time.Sleep(time.Millisecond)
	}
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
