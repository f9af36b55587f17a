//go:build integration

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/proxyproto"
	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// The instances behind HAProxy take PROXY headers from 127.0.0.1, the
// address HAProxy connects to them from; the clients connect to HAProxy
// from other loopback addresses, each in a /24 of its own, so that each
// is a network of its own for the throttle.
const balancerConfig = `
proxy_protocol_from = ["127.0.0.1/32"]
trusted_networks = []
[throttle]
max_failures_per_client = 2
penalties = ["0s"]
`

// haproxyConfig is HAProxy in front of the instances at servers, on
// listen: TCP mode, round robin, send-proxy-v2 to each instance, and a
// health check every 300 ms that sends the PROXY header (LOCAL), expects
// the greeting, and quits. A connection to an instance that fails is
// dispatched to the other one (retries, option redispatch).
func haproxyConfig(listen string, servers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 2000
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
frontend mpp
    bind %s
    default_backend mppd
backend mppd
    balance roundrobin
    option tcp-check
    tcp-check expect rstring ^220
    tcp-check send "QUIT\r\n"
    tcp-check expect rstring ^221
`, listen)
	for i, s := range servers {
		fmt.Fprintf(&b, "    server mppd%d %s send-proxy-v2 check inter 300ms fall 3 rise 1\n", i, s)
	}
	return b.String()
}

// startHAProxy runs haproxy in the foreground with cfg until the test
// ends.
func startHAProxy(t *testing.T, cfg string) {
	t.Helper()
	bin := testenv.NeedCommand(t, "haproxy")
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	out := &testenv.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
}

// freePort returns a loopback address with a port that was free a moment
// ago, for HAProxy's frontend.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// mppExchange runs one MPP session from the loopback address from: login
// as u and post msg, or, with a wrong password, expect 530. It returns an
// error rather than failing the test, so that a caller can retry.
func mppExchange(addr, from string, u testUser, password, msg string) (err error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	expect := func(send string, code string) error {
		if send != "" {
			if _, err := c.Write([]byte(send)); err != nil {
				return err
			}
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("after %q: %w (got %q)", strings.TrimSpace(send), err, line)
		}
		if !strings.HasPrefix(line, code+" ") {
			return fmt.Errorf("after %q: %q, want %s", strings.TrimSpace(send), strings.TrimSpace(line), code)
		}
		return nil
	}
	if err := expect("", "220"); err != nil {
		return err
	}
	if err := expect("USER "+u.name+"\r\n", "250"); err != nil {
		return err
	}
	if password != u.password {
		return expect("PASS "+password+"\r\n", "530")
	}
	if err := expect("PASS "+password+"\r\n", "250"); err != nil {
		return err
	}
	if err := expect("DATA\r\n", "354"); err != nil {
		return err
	}
	if err := expect(testharness.DotStuff(msg), "250"); err != nil {
		return err
	}
	// The 250 above is the server's promise: the message is posted, and a
	// client that tried again now would post it twice. How the QUIT goes
	// (an instance stopping may close first) does not change that.
	_ = expect("QUIT\r\n", "221")
	return nil
}

// tokenMessage is a message to bob whose subject is tok.
func tokenMessage(tok string) string {
	return "To: bob@example.test\nSubject: " + tok + "\n\nsent through the balancer\n"
}

// TestBehindHAProxy: two mppd instances behind a real HAProxy with
// send-proxy-v2 and a health check, sharing one password file and one
// maildir root. Clients from several loopback addresses post through the
// balancer: every message is delivered once, with the client's own
// address in Received: and in the logs; one source's failed logins get it
// blocked on both instances without touching another source; the health
// checks are logged at debug and are no failed logins; stopping one
// instance mid-run loses nothing; and a PROXY header sent straight to an
// instance from an address not in proxy_protocol_from is refused.
func TestBehindHAProxy(t *testing.T) {
	extra, root := devBackends(t, alice)
	a := testharness.Start(t, balancerConfig+extra)
	b := testharness.Start(t, balancerConfig+extra)
	lb := freePort(t)
	startHAProxy(t, haproxyConfig(lb, a.Addr(), b.Addr()))

	// Both instances are up once each has had a health check.
	for _, m := range []*testharness.Daemon{a, b} {
		m.WaitLog(`level=DEBUG msg="session started" client=127.0.0.1 `)
	}

	// Posts from four sources, three each, at once.
	sources := []string{"127.1.0.10", "127.2.0.10", "127.3.0.10", "127.4.0.10"}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for _, src := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				if err := mppExchange(lb, src, alice, alice.password, tokenMessage(fmt.Sprintf("tok-%s-%d", src, i))); err != nil {
					errs <- fmt.Errorf("%s, message %d: %w", src, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	msgs := waitDelivered(t, root, "bob@example.test", 12)
	for _, src := range sources {
		for i := 0; i < 3; i++ {
			tok := fmt.Sprintf("tok-%s-%d", src, i)
			var found []string
			for _, m := range msgs {
				if strings.Contains(m, "Subject: "+tok+"\n") {
					found = append(found, m)
				}
			}
			if len(found) != 1 {
				t.Errorf("%s delivered %d times", tok, len(found))
				continue
			}
			h, _ := headerBody(t, found[0])
			if !strings.Contains(h, "Received: from ["+src+"]") || strings.Contains(h, "127.0.0.1") {
				t.Errorf("%s: Received: does not name the client %s:\n%s", tok, src, h)
			}
		}
	}
	logs := a.Log() + b.Log()
	for _, src := range sources {
		if got := countLines(logs, "client="+src+" ", "event=login"); got != 3 {
			t.Errorf("%d login lines name %s, want 3", got, src)
		}
	}
	if got := countLines(logs, "client=127.0.0.1 ", "event=login"); got != 0 {
		t.Errorf("%d login lines name the balancer", got)
	}
	for _, m := range []*testharness.Daemon{a, b} {
		if !strings.Contains(m.Log(), "event=delivered") {
			t.Errorf("an instance delivered nothing: the balancer did not spread the sessions")
		}
	}

	// Failed logins from one source block it on both instances (each
	// counts its own: two failures each); another source is untouched.
	guesser, other := "127.5.0.10", "127.6.0.10"
	for i := 0; i < 4; i++ {
		// Different guesses: the throttle counts a repeated one once.
		if err := mppExchange(lb, guesser, alice, fmt.Sprintf("wrong-guess-%d", i), ""); err != nil {
			t.Fatalf("failed login %d: %v", i, err)
		}
	}
	for i := 0; i < 2; i++ {
		err := mppExchange(lb, guesser, alice, alice.password, tokenMessage("blocked"))
		if err == nil || !strings.Contains(err.Error(), "451") {
			t.Errorf("blocked source, attempt %d: %v, want 451", i, err)
		}
	}
	if err := mppExchange(lb, other, alice, alice.password, tokenMessage("other-source")); err != nil {
		t.Errorf("another source: %v", err)
	}
	for _, m := range []*testharness.Daemon{a, b} {
		m.WaitLog(`event=throttle-block`)
	}

	// Health checks: logged at debug only, never a failed login.
	logs = a.Log() + b.Log()
	if strings.Contains(logs, `level=INFO msg="session started" client=127.0.0.1 `) {
		t.Error("a health check was logged at info level")
	}
	if strings.Contains(logs, "event=auth-failed client=127.0.0.1") || strings.Contains(logs, "client=127.0.0.1 reason=throttled") {
		t.Error("a health check counted as a failed login")
	}
	for _, src := range []string{guesser, other} {
		if !strings.Contains(logs, "client="+src) {
			t.Errorf("the logs do not name %s", src)
		}
	}

	// A PROXY header straight to an instance, from an address not in
	// proxy_protocol_from: closed without a session.
	forged := proxyproto.AppendV2(nil, proxyproto.Header{
		Source:      netip.MustParseAddrPort("203.0.113.5:40000"),
		Destination: netip.MustParseAddrPort("192.0.2.1:218"),
	}, nil)
	direct := testharness.Dial(t, a.Addr(), "127.8.0.10")
	direct.Send(string(forged) + "USER alice\r\n")
	direct.ExpectClosed()
	a.WaitLog("event=proxy-refused client=127.8.0.10")
	if strings.Contains(a.Log(), "203.0.113.5") {
		t.Error("the forged address was used")
	}

	// Stop one instance mid-run, while three clients post ten messages
	// each: a client that got no 250 tries again (as a client would), and
	// every message is delivered exactly once.
	const n = 30
	before := len(delivered(t, root, "bob@example.test"))
	var workers sync.WaitGroup
	var mu sync.Mutex
	retried := 0
	through := make(chan struct{}, n) // one per message posted
	stopped := make(chan struct{})
	go func() {
		for i := 0; i < 5; i++ { // five messages through, then stop b
			<-through
		}
		if code := b.Stop(); code != 0 {
			t.Errorf("stopped instance exited with status %d", code)
		}
		close(stopped)
	}()
	for w := 0; w < 3; w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := 0; i < n/3; i++ {
				tok := fmt.Sprintf("run-%d-%d", w, i)
				var err error
				for try := 0; try < 10; try++ {
					if err = mppExchange(lb, fmt.Sprintf("127.7.%d.10", w), alice, alice.password, tokenMessage(tok)); err == nil {
						break
					}
					mu.Lock()
					retried++
					mu.Unlock()
					time.Sleep(200 * time.Millisecond)
				}
				if err != nil {
					t.Errorf("%s never went through: %v", tok, err)
					return
				}
				through <- struct{}{}
			}
		}()
	}
	workers.Wait()
	close(through) // b is stopped even if fewer than five went through
	<-stopped
	t.Logf("%d messages from 3 clients, one instance stopped after the fifth: %d retries", n, retried)
	msgs = waitDelivered(t, root, "bob@example.test", before+n)
	for w := 0; w < 3; w++ {
		for i := 0; i < n/3; i++ {
			tok := fmt.Sprintf("Subject: run-%d-%d\n", w, i)
			count := 0
			for _, m := range msgs {
				if strings.Contains(m, tok) {
					count++
				}
			}
			if count != 1 {
				t.Errorf("run-%d-%d delivered %d times", w, i, count)
			}
		}
	}
}

// countLines counts the lines of log holding every one of subs.
func countLines(log string, subs ...string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			n++
		}
	}
	return n
}
