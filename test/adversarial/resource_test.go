//go:build integration

package adversarial

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testharness"
)

// The resource cases of the catalogue (section E): after each attack the
// daemon's goroutines return to their baseline and its RSS stays bounded
// and comes back near it. RSS is VmRSS from /proc/PID/status; goroutines
// are go_goroutines from the daemon's own /metrics endpoint. The figures
// are logged (go test -v) for docs/threat-model.md.

// resourceDaemon starts mppd with metrics on a free loopback port and
// extra config.
func resourceDaemon(t *testing.T, extra string) (*daemon, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	d := startDaemon(t, extra+fmt.Sprintf("\n[metrics]\nlisten = %q\n", metricsAddr))
	return d, metricsAddr
}

// rssKiB reads VmRSS (or another field, like VmHWM) of pid.
func procStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// goroutines scrapes go_goroutines from the daemon's metrics.
func goroutines(t *testing.T, metricsAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no go_goroutines in /metrics")
	return 0
}

// settle waits until the daemon has as many goroutines as base (allowing
// one for a metrics scrape in flight), failing after a while.
func settle(t *testing.T, metricsAddr string, base int, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := goroutines(t, metricsAddr)
		if n <= base+1 {
			t.Logf("%s: goroutines back to %d (baseline %d)", what, n, base)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines, baseline %d", what, n, base)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// baseline warms the daemon up with one whole session and returns its
// goroutines and RSS.
func baseline(t *testing.T, d *daemon, metricsAddr string) (int, int) {
	t.Helper()
	c := d.Dial(t)
	c.Send("USER alice\r\nPASS alice-adv-pw\r\nDATA\r\nTo: carol@example.test\r\n\r\nwarm\r\n.\r\nQUIT\r\n")
	for _, code := range []int{250, 250, 354, 250, 221} {
		c.Expect(code)
	}
	c.Closed()
	g := goroutines(t, metricsAddr)
	time.Sleep(100 * time.Millisecond)
	g = min(g, goroutines(t, metricsAddr))
	return g, procStatus(t, d.EnginePid(), "VmRSS")
}

// Case 43: endless lines on 8 connections at once (10 MB each without a
// line end): memory stays bounded while they run, the sessions end at the
// idle timeout, and everything returns.
func TestResourceEndlessLine(t *testing.T) {
	d, m := resourceDaemon(t, "[session]\nidle_timeout = \"1s\"\n")
	g0, rss0 := baseline(t, d, m)
	var wg sync.WaitGroup
	chunk := strings.Repeat("A", 64<<10)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", d.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for j := 0; j < 160; j++ { // 10 MiB
				c.SetWriteDeadline(time.Now().Add(testharness.IOTimeout))
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
			c.SetReadDeadline(time.Now().Add(testharness.IOTimeout))
			io.Copy(io.Discard, c) // to the 451 and the close
		}()
	}
	wg.Wait()
	peak := procStatus(t, d.EnginePid(), "VmHWM")
	settle(t, m, g0, "endless line")
	rss := procStatus(t, d.EnginePid(), "VmRSS")
	t.Logf("endless line x8 (80 MiB sent): RSS %d KiB before, peak %d KiB, %d KiB after", rss0, peak, rss)
	if peak-rss0 > 64<<10 {
		t.Errorf("RSS grew by %d KiB for 8 endless lines", peak-rss0)
	}
}

// dialData opens n sessions as alice, one after the other, each just
// past DATA's 354: what they send next is message text.
func dialData(t *testing.T, d *daemon, n int) []*testharness.Client {
	t.Helper()
	var conns []*testharness.Client
	for range n {
		c := d.Dial(t)
		c.Send("USER alice\r\nPASS alice-adv-pw\r\nDATA\r\n")
		c.Expect(250)
		c.Expect(250)
		c.Expect(354)
		conns = append(conns, c)
	}
	return conns
}

// Case 45: header bombs on 8 connections at once. The logins come first,
// one at a time (a password-file check is 19 MiB of argon2id work), and
// RSS is sampled while the bombs go in.
func TestResourceHeaderBomb(t *testing.T) {
	d, m := resourceDaemon(t, "")
	g0, _ := baseline(t, d, m)
	conns := dialData(t, d, 8)
	rss0 := procStatus(t, d.EnginePid(), "VmRSS")
	stop := make(chan struct{})
	peakc := make(chan int)
	go func() {
		peak := 0
		for {
			peak = max(peak, procStatus(t, d.EnginePid(), "VmRSS"))
			select {
			case <-stop:
				peakc <- peak
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	bomb := "To: carol@example.test\r\n" + strings.Repeat("X: y\r\n", 200_000) + "\r\nbody\r\n.\r\n"
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Send(bomb)
			c.Expect(550)
			c.Send("QUIT\r\n")
			c.Expect(221)
		}()
	}
	wg.Wait()
	close(stop)
	peak := <-peakc
	settle(t, m, g0, "header bomb")
	t.Logf("header bomb x8 (1.2 MB each): RSS %d KiB before, peak %d KiB, %d KiB after", rss0, peak, procStatus(t, d.EnginePid(), "VmRSS"))
	if peak-rss0 > 64<<10 {
		t.Errorf("RSS grew by %d KiB for 8 header bombs", peak-rss0)
	}
}

// Cases 31 and 51: 1,000 connections from one address: 50 (the per-client
// cap) get sessions, the rest get 451 at once; then 2,000 idle sessions
// from many loopback addresses against max_sessions = 1,500: the global
// cap holds. RSS per idle session is logged for docs/threat-model.md.
func TestResourceConnectionFlood(t *testing.T) {
	d, m := resourceDaemon(t, "trusted_networks = []\nmax_sessions = 1500\n")
	g0, rss0 := baseline(t, d, m)

	flood := func(n int, from func(i int) string) (ok, refused int, conns []net.Conn) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for i := 0; i < n; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				dl := net.Dialer{Timeout: testharness.IOTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from(i))}}
				c, err := dl.Dial("tcp", d.Addr())
				if err != nil {
					t.Error(err)
					return
				}
				c.SetReadDeadline(time.Now().Add(testharness.IOTimeout))
				l, err := bufio.NewReader(c).ReadString('\n')
				mu.Lock()
				defer mu.Unlock()
				switch {
				case strings.HasPrefix(l, "220"):
					ok++
					conns = append(conns, c)
				case strings.HasPrefix(l, "451"):
					refused++
					c.Close()
				default:
					t.Errorf("greeting %q %v", l, err)
					c.Close()
				}
			}()
		}
		wg.Wait()
		return ok, refused, conns
	}

	ok, refused, conns := flood(1000, func(int) string { return "127.0.0.2" })
	rss := procStatus(t, d.EnginePid(), "VmRSS")
	t.Logf("1000 connections from one address: %d sessions, %d refused; RSS %d KiB (baseline %d)", ok, refused, rss, rss0)
	if ok != 50 || refused != 950 {
		t.Errorf("per-client cap: %d sessions, %d refused; want 50, 950", ok, refused)
	}
	for _, c := range conns {
		c.Close()
	}
	settle(t, m, g0, "one-address flood")

	ok, refused, conns = flood(2000, func(i int) string { return fmt.Sprintf("127.1.%d.%d", i/200, i%200+1) })
	g := goroutines(t, m)
	rss = procStatus(t, d.EnginePid(), "VmRSS")
	t.Logf("2000 connections from 2000 addresses, max_sessions 1500: %d sessions, %d refused; RSS %d KiB (baseline %d, %.1f KiB per idle session), %d goroutines",
		ok, refused, rss, rss0, float64(rss-rss0)/float64(max(ok, 1)), g)
	if ok != 1500 || refused != 500 {
		t.Errorf("global cap: %d sessions, %d refused; want 1500, 500", ok, refused)
	}
	if per := (rss - rss0) / max(ok, 1); per > 64 {
		t.Errorf("%d KiB RSS per idle session, the goal is at most 64", per)
	}
	for _, c := range conns {
		c.Close()
	}
	settle(t, m, g0, "many-address flood")
}

// Case 49: slowloris. Clients that trickle a command one byte at a time
// are cut off at the session deadline; one that trickles message text
// slower than min_data_rate is cut off once its grace is spent. Both get
// 451 (or a close) and nothing is left behind.
func TestResourceSlowloris(t *testing.T) {
	d, m := resourceDaemon(t, "[session]\nidle_timeout = \"2s\"\nsession_timeout = \"5s\"\nmin_data_rate = 500\n")
	g0, _ := baseline(t, d, m)
	// The text tricklers log in first, one at a time: a password-file
	// check is CPU-heavy, and ten at once on a small machine could pass
	// the idle timeout, which also bounds a login.
	tricklers := dialData(t, d, 10)
	var wg sync.WaitGroup
	results := make(chan string, 20)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := d.Dial(t)
			start := time.Now()
			for time.Since(start) < 15*time.Second {
				if _, err := c.Conn.Write([]byte("N")); err != nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
				if l, err := c.ReadLine(time.Millisecond); err == nil || l != "" {
					results <- "command: " + l
					return
				}
			}
			results <- "command: still open after 15s"
		}()
		wg.Add(1)
		c := tricklers[i]
		go func() {
			defer wg.Done()
			start := time.Now()
			for time.Since(start) < 15*time.Second {
				if _, err := c.Conn.Write([]byte("0123456789")); err != nil {
					break
				}
				time.Sleep(500 * time.Millisecond) // 20 B/s
				if l, err := c.ReadLine(time.Millisecond); err == nil || l != "" {
					results <- "text: " + l
					return
				}
			}
			results <- "text: still open after 15s"
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if !strings.Contains(r, "451 ") {
			t.Errorf("slow client: %q", r)
		}
	}
	settle(t, m, g0, "slowloris")
	if len(d.deliveredFiles()) != 1 { // the warm-up message only
		t.Error("a trickled message was delivered")
	}
}
