// Package testharness builds mppd once per test binary, starts it on
// loopback with a port the kernel picks (read back from its log), and
// talks MPP (RFC 1204) to it, or to any server, with Client.
//
// A package that starts the daemon calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testharness.Main(m, testharness.Build{})) }
//
// then each test calls Start with the TOML it needs over BaseConfig, and
// the daemon is stopped (SIGTERM, wait) in t.Cleanup.
package testharness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
)

// Timeouts for the harness itself, generous so a loaded machine does not
// make tests flaky, bounded so a hung daemon cannot hang the run.
const (
	StartTimeout = 15 * time.Second
	StopTimeout  = 30 * time.Second
	IOTimeout    = 15 * time.Second
)

// Build says how Main builds mppd.
type Build struct {
	// Tags are the build tags (a backend behind a tag, such as "pam",
	// must be in the binary the tests start).
	Tags []string
	// Version is injected with -ldflags -X main.version ("test" if empty).
	Version string
}

// binary is the mppd Main built.
var binary string

// Binary is the path of the mppd that Main built.
func Binary() string { return binary }

// Main builds mppd as b says into a temporary directory, runs the tests
// and removes the directory. It returns the exit status for os.Exit.
func Main(m *testing.M, b Build) int {
	dir, err := os.MkdirTemp("", "mppd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testharness:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "mppd")
	if err := GoBuild(binary, "github.com/mppd/mppd/cmd/mppd", b); err != nil {
		fmt.Fprintln(os.Stderr, "testharness: building mppd:", err)
		return 1
	}
	return m.Run()
}

// GoBuild builds the package pkg into out with b's tags and version. go
// test puts its own toolchain first on PATH, so "go" is the one running
// the tests.
func GoBuild(out, pkg string, b Build) error {
	version := b.Version
	if version == "" {
		version = "test"
	}
	args := []string{"build", "-o", out, "-ldflags", "-X main.version=" + version}
	if len(b.Tags) > 0 {
		args = append(args, "-tags", strings.Join(b.Tags, ","))
	}
	build := exec.Command("go", append(args, pkg)...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return build.Run()
}

// Daemon is one running mppd.
type Daemon struct {
	t          testing.TB
	addr       string
	ConfigPath string
	Cmd        *exec.Cmd
	log        *testenv.LogBuffer
	done       chan struct{} // closed when the process has exited
	exitCode   int

	stopOnce sync.Once
}

// Start writes a config (BaseConfig and overrides, see WriteConfig),
// starts the built binary with it, and waits until it listens.
func Start(t testing.TB, overrides ...string) *Daemon {
	t.Helper()
	return StartConfig(t, WriteConfig(t, overrides...))
}

// Spawn starts cmd (mppd, or a program that becomes mppd, such as
// systemd-socket-activate) with its output in the Daemon's log. It is
// stopped in t.Cleanup if it still runs, and its log is shown if the test
// failed; the test judges its exit status itself.
func Spawn(t testing.TB, cmd *exec.Cmd) *Daemon {
	t.Helper()
	d := &Daemon{t: t, Cmd: cmd, log: &testenv.LogBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			d.exitCode = 0
		case errors.As(err, &ee):
			d.exitCode = ee.ExitCode()
		default:
			d.exitCode = -1
		}
		close(d.done)
	}()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("log of %v:\n%s", cmd.Args, d.Log())
		}
	})
	return d
}

// StartConfig starts the built binary with an existing config file (and
// more arguments) and waits until it has logged that it listens. It is
// stopped in t.Cleanup; a status other than 0 then fails the test. Addr
// is the first address it logged.
func StartConfig(t testing.TB, configPath string, args ...string) *Daemon {
	t.Helper()
	if binary == "" {
		t.Fatal("testharness: mppd is not built; call testharness.Main from TestMain")
	}
	d := Spawn(t, exec.Command(binary, append([]string{"--config", configPath}, args...)...))
	d.ConfigPath = configPath
	t.Cleanup(func() {
		if code := d.Stop(); code != 0 {
			t.Errorf("mppd exited with status %d; log:\n%s", code, d.Log())
		}
	})

	// The accept loop logs msg=listening addr=... once the socket is bound;
	// from then on the kernel queues connections, so the port accepts.
	deadline := time.Now().Add(StartTimeout)
	for {
		if a := LoggedAddr(d.Log(), "listening", ""); a != "" {
			d.addr = a
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("mppd exited with status %d before listening; log:\n%s", d.exitCode, d.Log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mppd did not listen within %v; log:\n%s", StartTimeout, d.Log())
		}
	}
}

// LoggedAddr finds the addr of the first line with message msg (and, when
// role is not empty, role=role) in log, in either log format (text:
// msg=listening addr=A; json: "msg":"listening","addr":"A").
func LoggedAddr(log, msg, role string) string {
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
func (d *Daemon) Addr() string { return d.addr }

// UseAddr sets the address Dial connects to, for a daemon Spawned on
// sockets the test bound itself.
func (d *Daemon) UseAddr(addr string) { d.addr = addr }

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// EnginePid is the process id of mppd's engine, the unprivileged process
// the monitor (Pid) starts and that holds the sessions, from the monitor's
// log line "engine started" (logged at level info). It fails t if there is
// none.
func (d *Daemon) EnginePid() int {
	d.t.Helper()
	m := engineStarted.FindStringSubmatch(d.Log())
	if m == nil {
		d.t.Fatalf("no engine pid in the log:\n%s", d.Log())
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

var engineStarted = regexp.MustCompile(`msg="engine started" pid=(\d+)`)

// ListenAddr is the host:port of the daemon's first listener with role
// "mpp", "mpps" (listen_tls) or "metrics", as logged when it was bound. It
// waits for the line: the daemon logs its listeners one after the other,
// and Start returns at the first.
func (d *Daemon) ListenAddr(role string) string {
	d.t.Helper()
	msg := "listening"
	if role == "metrics" {
		msg = "metrics endpoint listening"
	}
	deadline := time.Now().Add(IOTimeout)
	for {
		if a := LoggedAddr(d.Log(), msg, role); a != "" {
			return a
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the log names no %s listener; log:\n%s", role, d.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Log is everything the daemon wrote to stderr and stdout so far.
func (d *Daemon) Log() string { return d.log.String() }

// Stop sends SIGTERM, waits for the process to exit, and returns its exit
// status. It kills the process if it has not exited within StopTimeout
// (and fails the test). Calling it again returns the same status.
func (d *Daemon) Stop() int {
	d.stopOnce.Do(func() {
		select {
		case <-d.done:
			return
		default:
		}
		_ = d.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(StopTimeout):
			_ = d.Cmd.Process.Kill()
			<-d.done
			d.t.Errorf("mppd did not exit within %v of SIGTERM; killed", StopTimeout)
		}
	})
	<-d.done
	return d.exitCode
}

// WaitExit waits up to timeout for the process to exit on its own and
// returns its status; it fails the test if it does not.
func (d *Daemon) WaitExit(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
		return d.exitCode
	case <-time.After(timeout):
		d.t.Fatalf("mppd still running after %v; log:\n%s", timeout, d.Log())
		return -1
	}
}

// WaitLog waits until the daemon's log contains substr.
func (d *Daemon) WaitLog(substr string) {
	d.t.Helper()
	d.WaitLogCount(0, substr, 1)
}

// WaitLogCount waits until the log, from byte offset on, contains substr
// n times.
func (d *Daemon) WaitLogCount(offset int, substr string, n int) {
	d.t.Helper()
	deadline := time.Now().Add(IOTimeout)
	for strings.Count(d.Log()[offset:], substr) < n {
		if time.Now().After(deadline) {
			d.t.Fatalf("log never showed %q %d times; log:\n%s", substr, n, d.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Dial connects to the daemon and reads the 220 greeting.
func (d *Daemon) Dial(t testing.TB) *Client {
	t.Helper()
	c := Dial(t, d.Addr(), "")
	c.Expect(220)
	return c
}

// DialRaw connects to the daemon without reading anything.
func (d *Daemon) DialRaw(t testing.TB) *Client {
	t.Helper()
	return Dial(t, d.Addr(), "")
}

// Run runs the built binary with args to completion with stdin, and
// returns its combined output and exit status (see RunCmd).
func Run(t testing.TB, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	return RunCmd(t, cmd)
}

// RunCmd runs cmd to completion and returns its combined output and exit
// status. It kills cmd and fails the test if it runs longer than
// StopTimeout, or if it cannot be started.
func RunCmd(t testing.TB, cmd *exec.Cmd) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("running %v: %v", cmd.Args, err)
	}
	timer := time.AfterFunc(StopTimeout, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("%v did not finish within %v; output:\n%s", cmd.Args, StopTimeout, out.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	default:
		t.Fatalf("running %v: %v\n%s", cmd.Args, err, out.String())
		return out.String(), -1
	}
}
