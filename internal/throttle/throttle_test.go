package throttle

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
)

func newTest(t *testing.T, mutate func(*Config)) (*Throttle, *testenv.Clock) {
	t.Helper()
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	th := New(cfg, nil)
	c := testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	th.now = c.Now
	return th, c
}

// fail runs one failed login from client and returns its penalty; it
// fails the test if Begin refuses.
func fail(t *testing.T, th *Throttle, client, user, password string) time.Duration {
	t.Helper()
	if !th.Begin(client) {
		t.Fatalf("Begin(%s) refused", client)
	}
	return th.Failed(client, user, password)
}

func TestPenaltyEscalates(t *testing.T) {
	th, _ := newTest(t, func(c *Config) { c.MaxPerClient, c.MaxPerNetwork = 0, 0 })
	want := []time.Duration{2, 4, 8, 15, 15, 15}
	for i, w := range want {
		if got := fail(t, th, "192.0.2.1", "alice", fmt.Sprint("guess", i)); got != w*time.Second {
			t.Errorf("failure %d: penalty %v, want %v", i+1, got, w*time.Second)
		}
	}
}

// Catalogue case 30: a client repeating the same user and password does
// not make the penalty grow, nor move towards a block.
func TestRepeatedCredentialsDoNotGrow(t *testing.T) {
	th, _ := newTest(t, nil)
	for i := 0; i < 50; i++ {
		if got := fail(t, th, "192.0.2.1", "alice", "same-wrong"); got != 2*time.Second {
			t.Fatalf("repeat %d: penalty %v, want 2s", i, got)
		}
	}
	if !th.Admit(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("a repeating client was blocked")
	}
	if got := fail(t, th, "192.0.2.1", "alice", "other"); got != 4*time.Second {
		t.Fatalf("a new password: penalty %v, want 4s", got)
	}
}

func TestBlockPerAddress(t *testing.T) {
	th, clk := newTest(t, nil)
	ip := netip.MustParseAddr("192.0.2.7")
	for i := 0; i < 10; i++ {
		if !th.Admit(ip) {
			t.Fatalf("blocked after %d failures", i)
		}
		fail(t, th, ip.String(), "alice", fmt.Sprint("pw", i))
	}
	if th.Admit(ip) || th.Begin(ip.String()) {
		t.Fatal("not blocked after 10 failures")
	}
	if !th.Admit(netip.MustParseAddr("192.0.2.8")) {
		t.Fatal("a neighbour is blocked by one address's failures")
	}
	if !th.Admit(netip.MustParseAddr("::ffff:192.0.2.9")) {
		t.Fatal("a mapped neighbour is blocked")
	}
	if th.Admit(netip.MustParseAddr("::ffff:192.0.2.7")) {
		t.Fatal("the IPv4-mapped form of a blocked address is admitted")
	}
	clk.Advance(15*time.Minute - time.Second)
	if th.Admit(ip) {
		t.Fatal("block ended early")
	}
	clk.Advance(time.Second)
	if !th.Admit(ip) {
		t.Fatal("block did not end after the window")
	}
	if got := fail(t, th, ip.String(), "alice", "fresh"); got != 2*time.Second {
		t.Fatalf("after the block, penalty %v, want the first step", got)
	}
	if th.Blocks() != 1 {
		t.Fatalf("Blocks() = %d", th.Blocks())
	}
}

func TestBlockPerNetwork(t *testing.T) {
	th, _ := newTest(t, nil)
	// 30 failures spread over 10 addresses of one /24, 3 each: no address
	// reaches its limit, the network does.
	for i := 0; i < 30; i++ {
		fail(t, th, fmt.Sprintf("198.51.100.%d", i%10+1), "alice", fmt.Sprint("pw", i))
	}
	for _, ip := range []string{"198.51.100.1", "198.51.100.200"} {
		if th.Admit(netip.MustParseAddr(ip)) {
			t.Errorf("%s admitted, its /24 is blocked", ip)
		}
	}
	if !th.Admit(netip.MustParseAddr("198.51.101.1")) {
		t.Error("the next /24 is blocked too")
	}

	// IPv6: a /64 is one network.
	for i := 0; i < 30; i++ {
		fail(t, th, fmt.Sprintf("2001:db8:1:2::%x", i+1), "bob", fmt.Sprint("pw", i))
	}
	if th.Admit(netip.MustParseAddr("2001:db8:1:2:ffff::1")) {
		t.Error("an address in a blocked /64 is admitted")
	}
	if !th.Admit(netip.MustParseAddr("2001:db8:1:3::1")) {
		t.Error("the next /64 is blocked")
	}
}

// Parallel logins cannot guess past the limit: a login under way counts
// against what is left.
func TestParallelLoginsReserve(t *testing.T) {
	th, _ := newTest(t, nil)
	allowed := 0
	for i := 0; i < 200; i++ {
		if th.Begin("192.0.2.50") {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("%d logins allowed at once, want 10", allowed)
	}
	// Successes and backend outages give their slot back.
	for i := 0; i < allowed; i++ {
		th.Done("192.0.2.50")
	}
	if c, n, u := th.Size(); c+n+u != 0 {
		t.Fatalf("entries left after every login ended well: %d %d %d", c, n, u)
	}
	if !th.Begin("192.0.2.50") {
		t.Fatal("slot not given back")
	}
	th.Done("192.0.2.50")
}

// No per-user lockout: a user's failures from many addresses make the
// delay grow but never block anyone.
func TestUserOnlyDelays(t *testing.T) {
	th, _ := newTest(t, nil)
	var last time.Duration
	for i := 0; i < 100; i++ {
		last = fail(t, th, fmt.Sprintf("10.%d.%d.1", i/200, i%200), "alice", fmt.Sprint("pw", i))
	}
	if last != 15*time.Second {
		t.Fatalf("penalty after 100 failures for one user: %v", last)
	}
	// Another case is the same user.
	if d := fail(t, th, "10.9.9.9", "ALICE", "x"); d != 15*time.Second {
		t.Fatalf("ALICE from a fresh address: penalty %v, want alice's 15s", d)
	}
	if !th.Admit(netip.MustParseAddr("10.0.0.1")) || !th.Begin("10.0.0.1") {
		t.Fatal("blocked by another address's failures for the same user")
	}
	th.Done("10.0.0.1")
}

func TestTrustedExempt(t *testing.T) {
	loop := netip.MustParsePrefix("127.0.0.0/8")
	th, _ := newTest(t, func(c *Config) { c.Trusted = loop.Contains })
	for i := 0; i < 100; i++ {
		if d := fail(t, th, "127.0.0.1", "alice", fmt.Sprint(i)); d != 0 {
			t.Fatalf("penalty %v for a trusted address", d)
		}
	}
	if !th.Admit(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("trusted address blocked")
	}
	if c, n, u := th.Size(); c+n+u != 0 {
		t.Fatalf("trusted failures recorded: %d %d %d", c, n, u)
	}
	// No address (net.Pipe): nothing to throttle.
	if d := fail(t, th, "", "alice", "x"); d != 0 {
		t.Fatal("penalty without an address")
	}
}

// An attacker with many addresses cannot grow the tables past MaxEntries.
func TestBoundedTables(t *testing.T) {
	th, _ := newTest(t, func(c *Config) { c.MaxEntries = 100 })
	for i := 0; i < 10000; i++ {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		fail(t, th, ip.String(), fmt.Sprint("user", i), "pw")
	}
	if c, n, u := th.Size(); c > 100 || n > 100 || u > 100 {
		t.Fatalf("tables grew to %d %d %d entries, cap 100", c, n, u)
	}
}

// Many sessions at once (run with -race): parallel logins from one address
// get exactly the limit between them, and a churn of addresses over small
// tables keeps every table within its bound.
func TestConcurrentUse(t *testing.T) {
	th := New(func() Config { c := DefaultConfig(); c.MaxEntries = 100; return c }(), nil)
	const n = 100
	var wg sync.WaitGroup
	var allowed atomic.Int64
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if th.Begin("192.0.2.50") {
				allowed.Add(1)
				th.Failed("192.0.2.50", "alice", fmt.Sprint("pw", i))
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := allowed.Load(); got != 10 {
		t.Fatalf("%d of %d parallel logins from one address were checked, want the limit 10", got, n)
	}
	if th.Admit(netip.MustParseAddr("192.0.2.50")) {
		t.Fatal("not blocked after 10 parallel failures")
	}

	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				ip := netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)})
				th.Admit(ip)
				if th.Begin(ip.String()) {
					if i%3 == 0 {
						th.Done(ip.String())
					} else {
						th.Failed(ip.String(), fmt.Sprint("user", i%300), "pw")
					}
				}
				if i%100 == 0 {
					th.Size()
					th.Blocks()
				}
			}
		}()
	}
	wg.Wait()
	if c, n, u := th.Size(); c > 100 || n > 100 || u > 100 {
		t.Fatalf("tables grew to %d %d %d entries, cap 100", c, n, u)
	}
}

// Entries are forgotten once their window is over.
func TestWindowExpires(t *testing.T) {
	th, clk := newTest(t, nil)
	for i := 0; i < 3; i++ {
		fail(t, th, "192.0.2.1", "alice", fmt.Sprint(i))
	}
	clk.Advance(16 * time.Minute)
	if got := fail(t, th, "192.0.2.1", "carol", "x"); got != 2*time.Second {
		t.Fatalf("penalty %v after the window, want the first step", got)
	}
}

func TestFingerprintNotPassword(t *testing.T) {
	th, _ := newTest(t, nil)
	if th.fingerprint("ab", "c") == th.fingerprint("a", "bc") {
		t.Fatal("user/password boundary not in the fingerprint")
	}
	other := New(DefaultConfig(), nil)
	if th.fingerprint("a", "b") == other.fingerprint("a", "b") {
		t.Fatal("two processes share a fingerprint key")
	}
}

// BenchmarkFailed measures the cost of recording a failure with full
// tables (each failure takes at least a second of the client's time).
func BenchmarkFailed(b *testing.B) {
	th := New(DefaultConfig(), nil)
	for i := 0; b.Loop(); i++ {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()
		th.Begin(ip)
		th.Failed(ip, "alice", "pw")
	}
}
