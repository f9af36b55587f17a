package delivery

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type limitGate struct {
	release chan struct{}
	mu      sync.Mutex
	running int
	peak    int
}

func (g *limitGate) Deliver(ctx context.Context, env Envelope, msg io.Reader) error {
	g.mu.Lock()
	g.running++
	g.peak = max(g.peak, g.running)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	return nil
}

func TestCapAndQueueTimeout(t *testing.T) {
	g := &limitGate{release: make(chan struct{})}
	var logBuf bytes.Buffer
	l := Limit(g, 3, 50*time.Millisecond, slog.New(slog.NewTextHandler(&logBuf, nil)))
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Deliver(context.Background(), Envelope{}, strings.NewReader("x")); err != nil {
				t.Error(err)
			}
		}()
	}
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
	close(g.release)
	wg.Wait()
	if g.peak > 3 || l.InUse() != 0 {
		t.Fatalf("peak %d, in use %d", g.peak, l.InUse())
	}
	if err := l.Deliver(context.Background(), Envelope{}, strings.NewReader("x")); err != nil {
		t.Fatalf("after the queue drained: %v", err)
	}
}
