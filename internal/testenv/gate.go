package testenv

import (
	"sync"
	"testing"
	"time"
)

// Gate lets a stand-in backend hold its calls: each call Passes the gate,
// which lets it through once Open has been called, and the gate counts how
// many calls were inside at once. The zero Gate is closed and ready.
type Gate struct {
	once   sync.Once
	open   chan struct{}
	mu     sync.Mutex
	inside int
	peak   int
}

func (g *Gate) opened() chan struct{} {
	g.once.Do(func() { g.open = make(chan struct{}) })
	return g.open
}

// Pass waits until the gate is open.
func (g *Gate) Pass() {
	g.mu.Lock()
	g.inside++
	g.peak = max(g.peak, g.inside)
	g.mu.Unlock()
	<-g.opened()
	g.mu.Lock()
	g.inside--
	g.mu.Unlock()
}

// Open lets every call waiting in Pass, and every later one, through.
func (g *Gate) Open() { close(g.opened()) }

// Peak is the most calls that were inside Pass at once.
func (g *Gate) Peak() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak
}

// Concurrently runs call n times, each in a goroutine of its own, and returns a
// function that waits for them all. An error from a call fails t.
func Concurrently(t testing.TB, n int, call func() error) (wait func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := call(); err != nil {
				t.Error(err)
			}
		}()
	}
	return wg.Wait
}

// WaitFor calls done every few milliseconds until it reports true; when
// that takes longer than timeout, the test stops with the message format
// makes of args.
func WaitFor(t testing.TB, timeout time.Duration, done func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
