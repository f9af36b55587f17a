package authn

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is a backend whose calls wait until release is closed.
type limitGate struct {
	release chan struct{}
	mu      sync.Mutex
	running int
	peak    int
}

func (g *limitGate) Authenticate(ctx context.Context, req Request) (Identity, error) {
	g.mu.Lock()
	g.running++
	g.peak = max(g.peak, g.running)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	return Identity{Login: req.User, Addresses: []string{req.User + "@x.test"}}, nil
}

// waitInUse waits, with a deadline, until n slots are held.
func waitInUse(t *testing.T, l *Limited, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.InUse() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots held after 10s, want %d", l.InUse(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCapAndQueueTimeout(t *testing.T) {
	g := &limitGate{release: make(chan struct{})}
	var logBuf bytes.Buffer
	l := Limit(g, 2, 50*time.Millisecond, slog.New(slog.NewTextHandler(&logBuf, nil)))
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Authenticate(context.Background(), Request{User: "a"}); err != nil {
				t.Error(err)
			}
		}()
	}
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
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("queued login: %v", err)
	}
	wg.Wait()
	if g.peak > 2 {
		t.Fatalf("%d ran at once, cap 2", g.peak)
	}
	if l.InUse() != 0 {
		t.Fatalf("%d slots still held", l.InUse())
	}
}

// A caller whose context ends while queued gets "busy" at once.
func TestQueueContext(t *testing.T) {
	g := &limitGate{release: make(chan struct{})}
	l := Limit(g, 1, time.Hour, nil)
	go l.Authenticate(context.Background(), Request{User: "a"})
	waitInUse(t, l, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Authenticate(ctx, Request{User: "b"}); Reason(err) != "busy" {
		t.Fatalf("got %v", err)
	}
	close(g.release)
}
