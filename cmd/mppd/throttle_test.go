package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/throttle"
)

// TestThrottledRefused: a client the throttle blocks gets 451 from the
// accept loop and no session; once it is admitted again it gets one.
func TestThrottledRefused(t *testing.T) {
	h := newCapHarness(t, 100, 100, false)
	cfg := throttle.DefaultConfig()
	cfg.MaxPerClient = 2
	th := throttle.New(cfg, nil)
	// start reads admit under d.mu; set it likewise, the loop runs.
	h.d.mu.Lock()
	h.d.admit = th.Admit
	h.d.mu.Unlock()
	if got := h.greeting(t); got != "220" {
		t.Fatalf("before any failure: %s", got)
	}
	for i := 0; i < 2; i++ {
		th.Begin("127.0.0.1")
		th.Failed("127.0.0.1", "alice", fmt.Sprint("guess", i))
	}
	if th.Admit(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("throttle did not block")
	}
	if got := h.greeting(t); got != "451" {
		t.Fatalf("blocked client: %s", got)
	}
	h.mu.Lock()
	refused := strings.Join(h.refused, "|")
	served := h.served
	h.mu.Unlock()
	if refused != "Too many failed logins, try again later" || served != 1 {
		t.Fatalf("refused %q, served %d", refused, served)
	}
}
