package cache

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testenv"
)

// backend is a recording authenticator: alice's password is "right";
// down makes it unavailable.
type backend struct {
	mu     sync.Mutex
	calls  int
	down   bool
	refuse string // a client address the policy refuses, as pam_access would
	locked bool   // alice's account is locked
	gate   chan struct{}
}

func (b *backend) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	b.mu.Lock()
	b.calls++
	gate := b.gate
	b.mu.Unlock()
	if gate != nil {
		<-gate // held until the test lets every request in flight go
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case req.User == "alice" && b.locked:
		return authn.Identity{}, authn.Rejected("locked", nil)
	case b.down:
		return authn.Identity{}, authn.Unavailable("connect", nil)
	case req.Client == b.refuse:
		return authn.Identity{}, authn.Rejected("permission-denied", nil)
	case req.User == "alice" && req.Password == "right":
		return authn.Identity{Login: "alice", Addresses: []string{"alice@example.test"}, Account: "alice"}, nil
	}
	return authn.Identity{}, authn.Rejected("bad-password", nil)
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

func newCache(t *testing.T, max int) (*Cache, *backend, *testenv.Clock) {
	t.Helper()
	b := &backend{}
	cfg := config.DefaultCache()
	cfg.Enabled = true
	cfg.MaxEntries = max
	c := New(b, cfg, nil)
	clk := testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.now = clk.Now
	return c, b, clk
}

func login(c *Cache, user, pw string) (authn.Identity, error) {
	return c.Authenticate(context.Background(), authn.Request{User: user, Password: pw, Client: "192.0.2.1"})
}

func TestSuccessCachedForTTL(t *testing.T) {
	c, b, clk := newCache(t, 100)
	for i := 0; i < 5; i++ {
		id, err := login(c, "alice", "right")
		if err != nil || id.Login != "alice" {
			t.Fatalf("login %d: %v %v", i, id, err)
		}
	}
	if b.count() != 1 {
		t.Fatalf("backend asked %d times, want 1", b.count())
	}
	clk.Advance(time.Minute - time.Nanosecond)
	login(c, "alice", "right")
	if b.count() != 1 {
		t.Fatal("asked again within the TTL")
	}
	// A cached success never outlives its TTL, even with the backend
	// down: then the login fails.
	clk.Advance(time.Nanosecond)
	b.down = true
	if _, err := login(c, "alice", "right"); err == nil || authn.IsBadCredentials(err) || authn.Reason(err) != "connect" {
		t.Fatalf("expired success with the backend down: %v", err)
	}
}

// A repeated wrong password is answered from the cache: the directory
// sees it once (no lockout storm).
func TestFailureCached(t *testing.T) {
	c, b, _ := newCache(t, 100)
	for i := 0; i < 20; i++ {
		if _, err := login(c, "alice", "wrong"); !authn.IsBadCredentials(err) || authn.Reason(err) != "bad-password" {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if b.count() != 1 {
		t.Fatalf("backend asked %d times for one wrong password", b.count())
	}
	// Another password, or another user, is a different question.
	login(c, "alice", "wrong2")
	login(c, "bob", "wrong")
	if b.count() != 3 {
		t.Fatalf("backend asked %d times, want 3", b.count())
	}
	// The right password is not hidden by the cached failures.
	if _, err := login(c, "alice", "right"); err != nil {
		t.Fatal(err)
	}
}

// An outage is never cached, and never turns a cached failure into a
// success.
func TestUnavailableNotCached(t *testing.T) {
	c, b, clk := newCache(t, 100)
	login(c, "alice", "wrong")
	b.down = true
	for i := 0; i < 3; i++ {
		if _, err := login(c, "alice", "wrong"); !authn.IsBadCredentials(err) {
			t.Fatalf("cached failure became %v during an outage", err)
		}
		if _, err := login(c, "alice", "right"); err == nil || authn.IsBadCredentials(err) {
			t.Fatalf("login during an outage: %v", err)
		}
	}
	if b.count() != 4 {
		t.Fatalf("backend asked %d times, want 4 (1 + 3 uncached outages)", b.count())
	}
	b.down = false
	clk.Advance(time.Second)
	if _, err := login(c, "alice", "right"); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

// A backend's answer may depend on the client's address (pam_access): a
// success cached for one address is not served to another.
func TestKeyedByClient(t *testing.T) {
	c, b, _ := newCache(t, 100)
	from := func(client string) error {
		_, err := c.Authenticate(context.Background(), authn.Request{User: "alice", Password: "right", Client: client})
		return err
	}
	if err := from("192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.refuse = "192.0.2.66"
	b.mu.Unlock()
	if err := from("192.0.2.66"); !authn.IsBadCredentials(err) {
		t.Fatalf("a success cached for 192.0.2.1 answered 192.0.2.66: %v", err)
	}
	if err := from("192.0.2.1"); err != nil || b.count() != 2 {
		t.Fatalf("the first address is no longer answered from the cache: %v, %d calls", err, b.count())
	}
}

func TestBounded(t *testing.T) {
	c, _, _ := newCache(t, 10)
	for i := 0; i < 1000; i++ {
		login(c, fmt.Sprint("user", i), "pw")
	}
	if c.Len() != 10 {
		t.Fatalf("cache holds %d results, cap 10", c.Len())
	}
}

// The cache holds neither a password nor anything the caller can change.
func TestNoPasswordHeld(t *testing.T) {
	c, _, _ := newCache(t, 10)
	const marker = "Zq9-marker-password"
	login(c, "alice", marker)
	id, _ := login(c, "alice", "right")
	id.Addresses[0] = "mallory@example.test"
	c.mu.Lock()
	for el := c.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry)
		if s := fmt.Sprintf("%+v %x", *e, e.key); strings.Contains(s, marker) || strings.Contains(s, fmt.Sprintf("%x", marker)) {
			t.Errorf("entry holds the password: %s", s)
		}
	}
	c.mu.Unlock()
	if id, _ := login(c, "alice", "right"); id.Addresses[0] != "alice@example.test" {
		t.Fatalf("cached identity changed by a caller: %v", id)
	}
	other := New(&backend{}, config.DefaultCache(), nil)
	req := authn.Request{User: "alice", Password: "right"}
	if c.keyOf(req) == other.keyOf(req) {
		t.Fatal("two processes share a key")
	}
	if c.keyOf(authn.Request{User: "ab", Password: "c"}) == c.keyOf(authn.Request{User: "a", Password: "bc"}) {
		t.Fatal("user/password boundary not in the key")
	}
	if c.keyOf(authn.Request{Client: "1", User: "2a", Password: "b"}) == c.keyOf(authn.Request{Client: "12", User: "a", Password: "b"}) {
		t.Fatal("client/user boundary not in the key")
	}
}

// Parallel repeats of one wrong password share one backend call: a burst
// from a mail client with several connections cannot lock the account.
func TestParallelRepeatsCoalesced(t *testing.T) {
	c, b, _ := newCache(t, 100)
	b.gate = make(chan struct{})
	wait := testenv.Concurrently(t, 10, func() error {
		if _, err := login(c, "alice", "wrong"); authn.Reason(err) != "bad-password" {
			return fmt.Errorf("a coalesced request got %v", err)
		}
		return nil
	})
	// Wait until the first request reached the backend and the others
	// had the time to queue behind it, then let it answer.
	for b.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(b.gate)
	wait()
	if b.count() != 1 {
		t.Fatalf("backend asked %d times for 10 parallel repeats, want 1", b.count())
	}
}

// A bad password is kept for failure_ttl from its last use, not for ttl:
// a client retrying every minute or so (longer than ttl) reaches the
// backend once; so does a client that changes address.
func TestFailureTTLRenewed(t *testing.T) {
	c, b, clk := newCache(t, 100)
	for i := 0; i < 40; i++ {
		if _, err := login(c, "alice", "wrong"); authn.Reason(err) != "bad-password" {
			t.Fatalf("attempt %d: %v", i, err)
		}
		clk.Advance(62 * time.Second) // 40 minutes in all, past failure_ttl
	}
	if b.count() != 1 {
		t.Fatalf("backend asked %d times for repeats 62 s apart", b.count())
	}
	_, err := c.Authenticate(context.Background(), authn.Request{User: "alice", Password: "wrong", Client: "198.51.100.9"})
	if authn.Reason(err) != "bad-password" || b.count() != 1 {
		t.Fatalf("from another address: %v, backend asked %d times", err, b.count())
	}
	// Left alone for failure_ttl, it is asked again.
	clk.Advance(30 * time.Minute)
	login(c, "alice", "wrong")
	if b.count() != 2 {
		t.Fatalf("backend asked %d times after failure_ttl, want 2", b.count())
	}
}

// An account-state refusal is kept a few seconds at most: the helpdesk's
// unlock takes effect at once.
func TestStateRefusalShort(t *testing.T) {
	c, b, clk := newCache(t, 100)
	b.locked = true
	if _, err := login(c, "alice", "right"); authn.Reason(err) != "locked" {
		t.Fatal(err)
	}
	if _, err := login(c, "alice", "right"); authn.Reason(err) != "locked" || b.count() != 1 {
		t.Fatalf("within %s: %v, %d calls", StateTTL, err, b.count())
	}
	b.mu.Lock()
	b.locked = false
	b.mu.Unlock()
	clk.Advance(StateTTL)
	if _, err := login(c, "alice", "right"); err != nil {
		t.Fatalf("after the unlock and %s: %v", StateTTL, err)
	}
}

// A cache hit is logged at info, with cached=true, and without the
// password.
func TestHitLogged(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	cfg := config.DefaultCache()
	cfg.Enabled = true
	c := New(&backend{}, cfg, slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil)))
	login(c, "alice", "Wr0ng-secret")
	login(c, "alice", "Wr0ng-secret")
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, "level=INFO") || !strings.Contains(out, "cached=true") || !strings.Contains(out, "reason=bad-password") || !strings.Contains(out, "user=alice") {
		t.Fatalf("hit log: %q", out)
	}
	if strings.Contains(out, "Wr0ng-secret") {
		t.Fatalf("the password is in the log: %q", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
