//go:build integration

package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// mppd under systemd's own socket-activation tool, systemd-socket-activate
// (Debian package systemd): it binds the sockets, and on the first
// connection execs mppd with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES set
// as systemd does. A unixgram socket the test listens on stands in for
// systemd's NOTIFY_SOCKET.

func needActivator(t *testing.T) string {
	t.Helper()
	return testenv.NeedCommand(t, "systemd-socket-activate")
}

// notifySocket receives sd_notify datagrams.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan string, 1000)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			select {
			case n.msgs <- string(buf[:k]):
			default: // nobody waits any more; never block the reader
			}
		}
	}()
	return n
}

// wait returns the first message (from here on) that contains substr.
func (n *notifySocket) wait(t *testing.T, substr string) string {
	t.Helper()
	timeout := time.After(testharness.IOTimeout)
	var seen []string
	for {
		select {
		case m, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed; seen %q", seen)
			}
			if strings.Contains(m, substr) {
				return m
			}
			seen = append(seen, m)
		case <-timeout:
			t.Fatalf("no sd_notify message with %q within %v; seen %q", substr, testharness.IOTimeout, seen)
		}
	}
}

// activatorSockets binds n listening sockets on 127.0.0.1, on ports the
// kernel picks, as systemd binds a socket unit's, and returns them as files
// for spawnActivated, with their addresses. The activator could bind them
// itself (-l ADDR), but only on a port picked in advance and released,
// which another connection on a busy machine could take first.
func activatorSockets(t *testing.T, n int) ([]*os.File, []string) {
	t.Helper()
	var files []*os.File
	var addrs []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", testharness.AnyPort)
		if err != nil {
			t.Fatal(err)
		}
		f, err := l.(*net.TCPListener).File() // a duplicate: the socket stays
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
		addrs = append(addrs, l.Addr().String())
	}
	return files, addrs
}

// spawnActivated runs systemd-socket-activate with args, handing it files
// (fds 3...) the way systemd hands sockets to a service: LISTEN_FDS, and
// LISTEN_PID, which must be the activator's own pid, known only in the
// child (a constant shell script sets it and execs; the arguments are
// "$@"). The test's copies of the sockets are closed once it runs, so
// that they live and die with the activator, as with -l.
func spawnActivated(t *testing.T, act string, files []*os.File, args ...string) *testharness.Daemon {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`, act}, args...)...)
	cmd.ExtraFiles = files
	cmd.Env = []string{fmt.Sprintf("LISTEN_FDS=%d", len(files)), "PATH=" + os.Getenv("PATH")}
	m := testharness.Spawn(t, cmd)
	for _, f := range files {
		f.Close()
	}
	return m
}

// TestSocketActivationTwoListeners: two named sockets, mpp (plain) and
// mpps (TLS from the first byte), both serve a post; the configured
// listen address is not bound; the notify socket gets READY=1 with
// STATUS=, WATCHDOG=1 (WATCHDOG_USEC set), a STATUS= with the live session
// count, and STOPPING=1 on SIGTERM, after which mppd exits 0.
func TestSocketActivationTwoListeners(t *testing.T) {
	act := needActivator(t)
	certFile, keyFile, pool := testCert(t, t.TempDir(), "activated")
	extra, root := devBackends(t, alice)
	// The configured listen address is held by the test: an mppd that
	// tried to bind it would fail to start.
	held, err := net.Listen("tcp", testharness.AnyPort)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := testharness.WriteConfig(t, fmt.Sprintf("listen = [%q]\n", held.Addr().String()), fmt.Sprintf("[tls]\ncert_file = %q\nkey_file = %q\n", certFile, keyFile)+extra)
	files, addrs := activatorSockets(t, 2)
	plain, secure := addrs[0], addrs[1]
	n := listenNotify(t)

	m := spawnActivated(t, act, files, "--fdname=mpp:mpps",
		"-E", "NOTIFY_SOCKET="+n.path, "-E", "WATCHDOG_USEC=400000", testharness.Binary(), "--config", cfg)
	m.UseAddr(plain)
	m.WaitLog("Listening on " + secure)

	c := login(t, m, alice) // the first connection starts mppd
	ready := n.wait(t, "READY=1")
	if !strings.Contains(ready, "STATUS=") {
		t.Errorf("READY=1 without STATUS=: %q", ready)
	}
	n.wait(t, "WATCHDOG=1") // WatchdogSec=0.4s: every 0.2s
	c.Post("To: bob@example.test\nSubject: plain\n\nover mpp\n", 250)

	tc := dialTLSCert(t, secure, pool, "activated")
	tc.Login(alice.name, alice.password)
	tc.Post("To: bob@example.test\nSubject: tls\n\nover mpps\n", 250)
	waitDelivered(t, root, "bob@example.test", 2)
	n.wait(t, "STATUS=serving: 2 sessions")

	m.WaitLog("socket-activated sockets=2")
	if strings.Contains(m.Log(), "binding the configured addresses") {
		t.Errorf("mppd bound the configured listen address under socket activation:\n%s", m.Log())
	}

	if err := m.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.wait(t, "STOPPING=1")
	c.Expect(451)
	tc.Expect(451)
	if code := m.WaitExit(testharness.StopTimeout); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// TestSocketActivationMPPSWithoutTLS: systemd passes an mpps socket but the
// config has no [tls] (mppd-tls.socket enabled by mistake). mppd logs an
// error for that socket and serves the plain one: a TLS mistake must not
// take port 218 down with it.
func TestSocketActivationMPPSWithoutTLS(t *testing.T) {
	act := needActivator(t)
	extra, root := devBackends(t, alice)
	cfg := testharness.WriteConfig(t, extra)
	files, addrs := activatorSockets(t, 2)
	m := spawnActivated(t, act, files, "--fdname=mpp:mpps", testharness.Binary(), "--config", cfg)
	m.UseAddr(addrs[0])
	m.WaitLog("Listening on " + addrs[1])

	c := login(t, m, alice) // the first connection starts mppd
	c.Post("To: bob@example.test\nSubject: plain\n\nserved\n", 250)
	c.Cmd("QUIT", 221)
	waitDelivered(t, root, "bob@example.test", 1)
	m.WaitLog("level=ERROR msg=\"not serving an mpps socket")
	if code := m.Stop(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// TestSocketActivationRefusals: a passed socket whose name the config does
// not know, and a connection passed where a listener belongs (an
// Accept=yes unit, which mppd does not support), stop mppd with status 78
// and a message naming the problem.
func TestSocketActivationRefusals(t *testing.T) {
	act := needActivator(t)
	extra, _ := devBackends(t, alice)
	cfg := testharness.WriteConfig(t, extra)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown name", []string{"--fdname=smtp"}, `fd 3 is named \"smtp\", which is in none of systemd.mpp_sockets`},
		{"connection", []string{"--accept", "--fdname=mpp"}, "a connection, not a listening socket: Accept=yes is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, addrs := activatorSockets(t, 1)
			addr := addrs[0]
			m := spawnActivated(t, act, files, append(tc.args, testharness.Binary(), "--config", cfg)...)
			m.WaitLog("Listening on " + addr)
			conn, err := net.DialTimeout("tcp", addr, testharness.IOTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(testharness.IOTimeout))
			if b, err := io.ReadAll(conn); err == nil && len(b) > 0 {
				t.Errorf("got %q from a refused start", b)
			}
			m.WaitLog(tc.want)
			if !strings.Contains(tc.name, "connection") {
				if code := m.WaitExit(testharness.StopTimeout); code != 78 {
					t.Errorf("exit status %d, want 78", code)
				}
				return
			}
			// With --accept the activator itself runs on and reports
			// its child's status.
			m.WaitLog("died with code 78")
		})
	}
}

// TestExitOnIdle: with systemd.exit_on_idle, a socket-activated mppd exits
// 0 once no session has run for that long; the socket stays open in the
// test (as systemd keeps it), a connection made while no mppd runs waits
// in the backlog, and the next activation serves it.
func TestExitOnIdle(t *testing.T) {
	act := needActivator(t)
	extra, root := devBackends(t, alice)
	cfg := testharness.WriteConfig(t, "[systemd]\nexit_on_idle = \"5s\"\n"+extra) // the least allowed
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	n := listenNotify(t)

	// The test plays systemd's part: it owns the socket and passes it to
	// systemd-socket-activate, which passes it on to mppd. LISTEN_PID
	// must be the activator's pid, known only in the child: the shell
	// sets it and execs (constant script, arguments as "$@").
	activate := func() *testharness.Daemon {
		cmd := exec.Command("sh", "-c", `LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"`,
			act, "--fdname=mpp", "-E", "NOTIFY_SOCKET="+n.path, testharness.Binary(), "--config", cfg)
		cmd.ExtraFiles = []*os.File{lf} // fd 3
		cmd.Env = []string{"LISTEN_FDS=1", "PATH=" + os.Getenv("PATH")}
		m := testharness.Spawn(t, cmd)
		m.UseAddr(l.Addr().String())
		return m
	}

	m1 := activate()
	c := login(t, m1, alice)
	n.wait(t, "READY=1")
	c.Post("To: bob@example.test\nSubject: first\n\none\n", 250)
	c.Cmd("QUIT", 221)
	n.wait(t, "STOPPING=1")
	if code := m1.WaitExit(testharness.StopTimeout); code != 0 {
		t.Fatalf("exit status %d after idle, want 0", code)
	}
	if !strings.Contains(m1.Log(), "event=exit-on-idle") {
		t.Errorf("no exit-on-idle line in the log:\n%s", m1.Log())
	}

	// No mppd runs now; the kernel queues this connection on the socket
	// the test holds.
	conn, err := net.DialTimeout("tcp", l.Addr().String(), testharness.IOTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	m2 := activate()
	c2 := testharness.NewClient(t, conn)
	c2.Expect(220)
	c2.Login(alice.name, alice.password)
	c2.Post("To: bob@example.test\nSubject: second\n\ntwo\n", 250)
	waitDelivered(t, root, "bob@example.test", 2)
	if code := m2.Stop(); code != 0 {
		t.Errorf("second mppd exit status %d, want 0", code)
	}
}

// TestSIGTERMDuringData: SIGTERM at different points of a message, again
// and again: before DATA, right after 354, in the middle of the text,
// together with the final ".", and just after it. Whatever the timing,
// the message is either acknowledged with 250 and delivered whole, or the
// client gets no 250 and nothing is delivered; and mppd exits 0.
func TestSIGTERMDuringData(t *testing.T) {
	points := []string{"before-data", "after-354", "mid-text", "with-dot", "after-dot", "after-dot-2ms"}
	for round := 0; round < 2; round++ {
		for _, point := range points {
			t.Run(fmt.Sprintf("%s-%d", point, round), func(t *testing.T) {
				sigtermDuringData(t, point)
			})
		}
	}
}

func sigtermDuringData(t *testing.T, point string) {
	extra, root := devBackends(t, alice)
	m := testharness.Start(t, extra)
	c := login(t, m, alice)
	term := func() {
		if err := m.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	// Writes may fail once mppd has closed the connection; that is a
	// message not acknowledged, not a test failure.
	write := func(s string) bool {
		c.Conn.SetWriteDeadline(time.Now().Add(testharness.IOTimeout))
		_, err := io.WriteString(c.Conn, s)
		return err == nil
	}
	body := strings.Repeat("line of the body, long enough to matter\r\n", 200)
	first, second := body[:len(body)/2], body[len(body)/2:]
	head := "To: bob@example.test\r\nSubject: " + point + "\r\n\r\n"

	acked := false
	func() {
		if point == "before-data" {
			term()
			time.Sleep(50 * time.Millisecond)
		}
		if !write("DATA\r\n") {
			return
		}
		code, _, err := c.ReadReply()
		if err != nil || code != 354 {
			return
		}
		switch point {
		case "after-354":
			term()
		}
		if !write(head + first) {
			return
		}
		if point == "mid-text" {
			time.Sleep(20 * time.Millisecond)
			term()
		}
		if !write(second) {
			return
		}
		if point == "with-dot" {
			term()
		}
		if !write(".\r\n") {
			return
		}
		switch point {
		case "after-dot":
			term()
		case "after-dot-2ms":
			time.Sleep(2 * time.Millisecond)
			term()
		}
		code, line, err := c.ReadReply()
		if err == nil && code == 250 {
			acked = true
		} else if err == nil && code != 451 && code != 550 {
			t.Errorf("reply %q to the text", line)
		}
	}()
	if code := m.WaitExit(testharness.StopTimeout); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	msgs := delivered(t, root, "bob@example.test")
	switch {
	case acked && len(msgs) != 1:
		t.Fatalf("250 but %d messages delivered", len(msgs))
	case acked && !strings.Contains(msgs[0], strings.ReplaceAll(body, "\r\n", "\n")):
		t.Fatalf("250 but the delivered message is not whole (%d bytes)", len(msgs[0]))
	case !acked && len(msgs) != 0:
		t.Fatalf("no 250 but %d messages delivered", len(msgs))
	}
	t.Logf("%s: acknowledged=%v", point, acked)
}

// TestSIGTERMWhileSendmailRuns (catalogue case 68): SIGTERM reaches mppd
// alone (as KillMode=mixed does it) while sendmail runs; mppd waits for
// the program and replies with its result: 250 and the message in the
// mailbox when it succeeds, 451 and nothing when it fails; then exits 0.
func TestSIGTERMWhileSendmailRuns(t *testing.T) {
	testenv.NeedPostfix(t)
	for _, tc := range []struct {
		name string
		exit string // the stand-in's ending
		code int
	}{
		{"queued", `exec /usr/sbin/sendmail "$@"`, 250},
		{"tempfail", "cat >/dev/null; exit 75", 451},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testenv.OpenTempDir(t)
			started := filepath.Join(dir, "started")
			script := filepath.Join(dir, "sendmail")
			// It says it has started, then takes a second: the
			// signal comes in between.
			if err := os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\n: >%s\nsleep 1\n%s\n", started, tc.exit)), 0o755); err != nil {
				t.Fatal(err)
			}
			m := testharness.Start(t, sendmailBackends(t, script, alice))
			tok := randomToken(t)
			c := login(t, m, alice)
			c.Cmd("DATA", 354)
			c.Send(testharness.DotStuff("To: mppd-mta2@localhost\nSubject: " + tok + "\n\nterm during sendmail\n"))
			deadline := time.Now().Add(testharness.IOTimeout)
			for {
				if _, err := os.Stat(started); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the stand-in never started; log:\n%s", m.Log())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := m.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			c.Expect(tc.code)
			c.Expect(451) // then the shutdown
			if code := m.WaitExit(testharness.StopTimeout); code != 0 {
				t.Errorf("exit status %d, want 0", code)
			}
			if tc.code == 250 {
				if n := strings.Count(testenv.WaitPostfixMessage(t, "mppd-mta2", tok), tok); n != 1 {
					t.Errorf("token appears %d times", n)
				}
			} else if testenv.PostfixMessage(t, "mppd-mta2", tok) != "" {
				t.Error("a message answered 451 was delivered")
			}
		})
	}
}

// TestSocketActivationProxyProtocol: proxy_protocol_from applies to the
// sockets systemd passes as to the configured ones: a PROXY header from
// 127.0.0.1 names the client, and a connection from it without one is
// closed without a greeting.
func TestSocketActivationProxyProtocol(t *testing.T) {
	act := needActivator(t)
	extra, root := devBackends(t, alice)
	held, err := net.Listen("tcp", testharness.AnyPort)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := testharness.WriteConfig(t, fmt.Sprintf("listen = [%q]\nproxy_protocol_from = [\"127.0.0.1/32\"]\n", held.Addr().String()), extra)
	files, addrs := activatorSockets(t, 1)
	m := spawnActivated(t, act, files, "--fdname=mpp", testharness.Binary(), "--config", cfg)
	m.UseAddr(addrs[0])
	m.WaitLog("Listening on " + addrs[0])

	c := testharness.Dial(t, addrs[0], "127.0.0.1")
	c.Send("PROXY TCP4 198.51.100.7 192.0.2.1 40000 218\r\n")
	c.Expect(220)
	c.Login(alice.name, alice.password)
	c.Post("To: bob@example.test\nSubject: activated-proxied\n\nx\n", 250)
	h, _ := headerBody(t, waitDelivered(t, root, "bob@example.test", 1)[0])
	if !strings.Contains(h, "Received: from [198.51.100.7]") {
		t.Errorf("Received: does not name the header's client:\n%s", h)
	}

	bare := testharness.Dial(t, addrs[0], "127.0.0.1")
	bare.Send("USER alice\r\n")
	bare.ExpectClosed()
	m.WaitLog("event=proxy-refused client=127.0.0.1")
}
