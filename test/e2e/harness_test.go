// Package e2e tests the built mppd binary over real TCP on loopback.
//
// TestMain builds ./cmd/mppd once into a temporary directory; each test
// starts its own daemon with startMppd on a free 127.0.0.1 port, talks MPP
// (RFC 1204) to it with dial, and stops it in t.Cleanup. Other packages'
// end-to-end tests (PAM, LDAP, sendmail) reuse this harness: they pass their
// backend sections as extraTOML.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/mppd/mppd/internal/testenv"
)

// mppdBin is the binary TestMain built.
var mppdBin string

// mppdBuildTags are the build tags mppdBin is built with. A test file that
// needs a backend behind a tag adds it from init(), under the same build
// constraint (pam_test.go adds "pam"), so the binary matches the tests.
var mppdBuildTags []string

// testVersion is injected into the binary with -ldflags -X main.version.
const testVersion = "e2e-test-version"

// Timeouts for the harness itself, generous so a loaded machine does not
// make tests flaky, bounded so a hung daemon cannot hang the run.
const (
	startTimeout = 15 * time.Second
	stopTimeout  = 30 * time.Second
	ioTimeout    = 15 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mppd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	mppdBin = filepath.Join(dir, "mppd")
	// go test puts its own toolchain first on PATH, so "go" is the one
	// running these tests.
	args := []string{"build", "-o", mppdBin, "-ldflags", "-X main.version=" + testVersion}
	if len(mppdBuildTags) > 0 {
		args = append(args, "-tags", strings.Join(mppdBuildTags, ","))
	}
	build := exec.Command("go", append(args, "github.com/mppd/mppd/cmd/mppd")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building mppd:", err)
		return 1
	}
	return m.Run()
}

// mppd is one running daemon.
type mppd struct {
	t          testing.TB
	addr       string
	configPath string
	cmd        *exec.Cmd
	log        *testenv.LogBuffer
	done       chan struct{} // closed when the process has exited
	exitCode   int

	stopOnce sync.Once
}

// baseConfig is what every test daemon gets before extraTOML: loopback, a
// quick drain, no artificial PASS delay, debug logs.
func baseConfig(addr string) map[string]any {
	return map[string]any{
		"hostname":      "mppd.test",
		"listen":        []any{addr},
		"drain_timeout": "5s",
		"log":           map[string]any{"level": "debug", "format": "text"},
		"session":       map[string]any{"auth_failure_delay": "0s"},
	}
}

// mergeTOML merges src into dst, tables recursively; src wins.
func mergeTOML(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				mergeTOML(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

// writeConfig writes the harness's config for addr, overlaid with extraTOML
// (which may set any key, top-level or in a table, including ones the base
// sets), and returns its path.
func writeConfig(t testing.TB, addr, extraTOML string) string {
	t.Helper()
	cfg := baseConfig(addr)
	var extra map[string]any
	if err := toml.Unmarshal([]byte(extraTOML), &extra); err != nil {
		t.Fatalf("extraTOML does not parse: %v\n%s", err, extraTOML)
	}
	mergeTOML(cfg, extra)
	b, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	path := filepath.Join(t.TempDir(), "mppd.toml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// anyPort is the listen address of every socket the tests bind or have
// mppd bind: the kernel picks a free port at bind time, and the harness
// reads it from the daemon's log (Addr, ListenAddr). A port picked in
// advance and released could be taken by another connection on a busy
// machine before mppd binds it.
const anyPort = "127.0.0.1:0"

// startMppd writes a config (hostname "mppd.test", listen on 127.0.0.1 with
// a port the kernel picks, auth_failure_delay "0s", drain_timeout "5s",
// debug logs) plus extraTOML, starts the built binary, waits until it
// listens, and stops it (SIGTERM, wait) in t.Cleanup. extraTOML normally
// carries the backend sections (see devBackends).
func startMppd(t testing.TB, extraTOML string) *mppd {
	t.Helper()
	return startMppdConfig(t, writeConfig(t, anyPort, extraTOML))
}

// startMppdConfig starts the binary with an existing config file and waits
// until it has logged that it listens. Addr() is the first address it
// logged.
func startMppdConfig(t testing.TB, configPath string, args ...string) *mppd {
	t.Helper()
	m := &mppd{
		t:          t,
		configPath: configPath,
		log:        &testenv.LogBuffer{},
		done:       make(chan struct{}),
	}
	m.cmd = exec.Command(mppdBin, append([]string{"--config", configPath}, args...)...)
	m.cmd.Stdout = m.log
	m.cmd.Stderr = m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start mppd: %v", err)
	}
	go func() {
		err := m.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			m.exitCode = 0
		case errors.As(err, &ee):
			m.exitCode = ee.ExitCode()
		default:
			m.exitCode = -1
		}
		close(m.done)
	}()
	t.Cleanup(func() {
		if code := m.Stop(); code != 0 {
			t.Errorf("mppd exited with status %d; log:\n%s", code, m.Log())
		}
		if t.Failed() {
			t.Logf("mppd log:\n%s", m.Log())
		}
	})

	// The accept loop logs msg=listening addr=... once the socket is bound;
	// from then on the kernel queues connections, so the port accepts.
	deadline := time.Now().Add(startTimeout)
	for {
		if a := listeningAddr(m.Log()); a != "" {
			m.addr = a
			return m
		}
		select {
		case <-m.done:
			t.Fatalf("mppd exited with status %d before listening; log:\n%s", m.exitCode, m.Log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mppd did not listen within %v; log:\n%s", startTimeout, m.Log())
		}
	}
}

// listeningAddr finds the first "listening" line's addr in the log, in
// either log format (text: msg=listening addr=A; json: "msg":"listening",
// "addr":"A").
func listeningAddr(log string) string {
	return loggedAddr(log, "listening", "")
}

// loggedAddr finds the addr of the first line with message msg (and, when
// role is not empty, role=role) in the log, in either log format.
func loggedAddr(log, msg, role string) string {
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "{") {
			var rec struct{ Msg, Addr, Role string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg && (role == "" || rec.Role == role) {
				return rec.Addr
			}
			continue
		}
		var addr, lineMsg, lineRole string
		for _, f := range strings.Fields(line) {
			if a, ok := strings.CutPrefix(f, "addr="); ok {
				addr = strings.Trim(a, `"`)
			} else if r, ok := strings.CutPrefix(f, "role="); ok {
				lineRole = strings.Trim(r, `"`)
			}
		}
		if i := strings.Index(line, "msg="); i >= 0 {
			rest := line[i+len("msg="):]
			if strings.HasPrefix(rest, `"`) {
				if q, err := strconv.QuotedPrefix(rest); err == nil {
					lineMsg, _ = strconv.Unquote(q)
				}
			} else {
				lineMsg, _, _ = strings.Cut(rest, " ")
			}
		}
		if lineMsg == msg && addr != "" && (role == "" || lineRole == role) {
			return addr
		}
	}
	return ""
}

// Addr is the host:port the daemon listens on.
func (m *mppd) Addr() string { return m.addr }

// ListenAddr is the host:port of the daemon's first listener with role
// "mpp", "mpps" (listen_tls) or "metrics", as logged when it was bound. It
// waits for the line: the daemon logs its listeners one after the other,
// and startMppdConfig returns at the first.
func (m *mppd) ListenAddr(role string) string {
	m.t.Helper()
	msg := "listening"
	if role == "metrics" {
		msg = "metrics endpoint listening"
	}
	deadline := time.Now().Add(ioTimeout)
	for {
		if a := loggedAddr(m.Log(), msg, role); a != "" {
			return a
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the log names no %s listener; log:\n%s", role, m.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Log is everything the daemon wrote to stderr and stdout so far.
func (m *mppd) Log() string { return m.log.String() }

// Stop sends SIGTERM, waits for the process to exit, and returns its exit
// status. It kills the process if it has not exited within stopTimeout
// (and fails the test). Calling it again returns the same status.
func (m *mppd) Stop() int {
	m.stopOnce.Do(func() {
		select {
		case <-m.done:
			return
		default:
		}
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(stopTimeout):
			_ = m.cmd.Process.Kill()
			<-m.done
			m.t.Errorf("mppd did not exit within %v of SIGTERM; killed", stopTimeout)
		}
	})
	<-m.done
	return m.exitCode
}

// waitExit waits up to d for the process to exit on its own and returns
// its status; it fails the test if it does not.
func (m *mppd) waitExit(d time.Duration) int {
	m.t.Helper()
	select {
	case <-m.done:
		return m.exitCode
	case <-time.After(d):
		m.t.Fatalf("mppd still running after %v; log:\n%s", d, m.Log())
		return -1
	}
}

// waitLog waits until the daemon's log contains substr.
func (m *mppd) waitLog(substr string) {
	m.t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !strings.Contains(m.Log(), substr) {
		if time.Now().After(deadline) {
			m.t.Fatalf("log never contained %q; log:\n%s", substr, m.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is one MPP connection.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dial connects to the daemon and reads the 220 greeting.
func (m *mppd) dial(t testing.TB) *client {
	t.Helper()
	c := m.dialRaw(t)
	c.expect(220)
	return c
}

// dialRaw connects without reading anything.
func (m *mppd) dialRaw(t testing.TB) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", m.Addr(), ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", m.Addr(), err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// netDial connects to addr on loopback with the harness's timeout.
func netDial(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, ioTimeout)
}

func newReader(conn net.Conn) *bufio.Reader { return bufio.NewReader(conn) }

// send writes raw bytes, exactly as given.
func (c *client) send(raw string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatalf("send %q: %v", abbrev(raw), err)
	}
}

// readReply reads one reply line ("NNN text") and returns its code and the
// line without CRLF. RFC 1204 replies are single lines.
func (c *client) readReply() (int, string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return 0, line, err
	}
	line = strings.TrimRight(line, "\r\n")
	if len(line) < 3 {
		return 0, line, fmt.Errorf("short reply %q", line)
	}
	code, err := strconv.Atoi(line[:3])
	if err != nil {
		return 0, line, fmt.Errorf("reply without a code: %q", line)
	}
	return code, line, nil
}

// expect reads one reply and requires its code; it returns the reply line.
func (c *client) expect(code int) string {
	c.t.Helper()
	got, line, err := c.readReply()
	if err != nil {
		c.t.Fatalf("reading reply (want %d): %v (got %q)", code, err, line)
	}
	if got != code {
		c.t.Fatalf("reply %q, want code %d", line, code)
	}
	return line
}

// cmd sends one command line (CRLF is added) and requires the reply code;
// it returns the reply line.
func (c *client) cmd(line string, code int) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(code)
}

// data sends DATA (requiring 354), then msg with CRLF line endings,
// dot-stuffed (RFC 821 §4.5.2), and the terminating <CRLF>.<CRLF>, and
// requires code for the reply to the text. It returns that reply line.
func (c *client) data(msg string, code int) string {
	c.t.Helper()
	c.cmd("DATA", 354)
	c.send(dotStuff(msg))
	return c.expect(code)
}

// dotStuff turns msg (LF or CRLF line endings) into MPP message text:
// CRLF endings, a dot doubled at the start of a line, and the terminator.
func dotStuff(msg string) string {
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	msg = strings.TrimSuffix(msg, "\n")
	var b strings.Builder
	if msg != "" {
		for _, line := range strings.Split(msg, "\n") {
			if strings.HasPrefix(line, ".") {
				b.WriteByte('.')
			}
			b.WriteString(line)
			b.WriteString("\r\n")
		}
	}
	b.WriteString(".\r\n")
	return b.String()
}

// closed reports whether the server has closed the connection: a read
// returns EOF (or a reset) within ioTimeout.
func (c *client) closed() bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	_, err := c.r.ReadByte()
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

// close closes the client's side.
func (c *client) close() { c.conn.Close() }

func abbrev(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// runMppd runs the binary with args to completion (bounded) and returns
// its combined output and exit status.
func runMppd(t testing.TB, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, mppdBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("running mppd %v: %v\n%s", args, err, out)
		return string(out), -1
	}
}
