//go:build integration

package adversarial

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGuessesPerHour measures how many passwords an attacker gets checked
// against one user, with the throttle's defaults scaled down 300 times in
// time (window 15m → 3s, penalties 2/4/8/15s → 7/13/27/50ms, failure floor
// 1s → 3ms), so that 12 s of test stand for one hour. Three attackers run
// at once against alice for the whole "hour":
//   - one address, 20 connections in parallel, reconnecting at once;
//   - one address, one connection at a time;
//   - a whole /24 (253 addresses), 20 connections in parallel.
//
// A guess counts when the backend answered it (530). The figures go to
// docs/threat-model.md; the test checks the bounds the design promises:
// at most max_failures_per_client (10) per window per address,
// max_failures_per_network (30) per window per /24, and at most one window
// more for the rounding at the ends.
func TestGuessesPerHour(t *testing.T) {
	d := startDaemon(t, `
trusted_networks = []
[session]
auth_failure_delay = "3ms"
[throttle]
penalties = ["7ms", "13ms", "27ms", "50ms"]
window = "3s"
`)
	const hour = 12 * time.Second // 3600 s / 300
	end := time.Now().Add(hour)

	attack := func(workers int, from func(i int) string) (guesses, refused int64) {
		var g, r atomic.Int64
		var n atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					i := int(n.Add(1))
					switch try(d.Addr(), from(i), fmt.Sprintf("guess-%d", i)) {
					case "530":
						g.Add(1)
					case "451":
						r.Add(1)
						time.Sleep(5 * time.Millisecond)
					default:
						time.Sleep(5 * time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
		return g.Load(), r.Load()
	}
	var wg sync.WaitGroup
	var par, ser, net24, parR, serR, net24R int64
	wg.Add(3)
	go func() { defer wg.Done(); par, parR = attack(20, func(int) string { return "127.0.5.2" }) }()
	go func() { defer wg.Done(); ser, serR = attack(1, func(int) string { return "127.0.7.2" }) }()
	go func() {
		defer wg.Done()
		net24, net24R = attack(20, func(i int) string { return fmt.Sprintf("127.0.6.%d", i%253+2) })
	}()
	wg.Wait()

	t.Logf("guesses against one user in one (scaled) hour with the default throttle: one address in parallel %d (%d refused), one address serially %d (%d refused), one /24 in parallel %d (%d refused)",
		par, parR, ser, serR, net24, net24R)
	windows := int64(hour / (3 * time.Second))
	if par > 10*(windows+1) || ser > 10*(windows+1) {
		t.Errorf("one address got %d (parallel) / %d (serial) guesses; the bound is %d", par, ser, 10*(windows+1))
	}
	if net24 > 30*(windows+1) {
		t.Errorf("one /24 got %d guesses; the bound is %d", net24, 30*(windows+1))
	}
	if par == 0 || ser == 0 || net24 == 0 {
		t.Error("an attacker got no guess at all: the measurement is broken")
	}
}

// try is one login attempt from a source address: it returns the code of
// the reply that decided it ("530", "250", or "451" when refused at
// connect or at PASS), or "" on a network error.
func try(addr, from, password string) string {
	dl := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := dl.Dial("tcp", addr)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	l, _ := r.ReadString('\n')
	if !strings.HasPrefix(l, "220") {
		return l[:min(3, len(l))]
	}
	fmt.Fprintf(c, "USER alice\r\nPASS %s\r\n", password)
	r.ReadString('\n') // 250 to USER
	l, _ = r.ReadString('\n')
	fmt.Fprintf(c, "QUIT\r\n")
	return l[:min(3, len(l))]
}
