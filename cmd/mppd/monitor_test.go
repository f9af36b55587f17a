package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/privsep"
	"github.com/mppd/mppd/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestMain lets the test binary play the engine: the monitor under test
// starts /proc/self/exe engine, which is this binary. What the stand-in
// does is named by the hostname of the configuration in the hello (the
// monitor gives the engine no environment to say it with).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == engineCommand {
		os.Exit(fakeEngine())
	}
	os.Exit(m.Run())
}

// fakeEngine reads the hello and then, by the configured hostname:
// "exit3.test" exits 3, "exit0.test" checks the hello and exits 0 if it
// is right (4 if not), "garbage.test" sends a frame that is no JSON and
// waits for the SIGTERM the monitor must send.
func fakeEngine() int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	f := os.NewFile(engineMonitorFD, "monitor")
	conn, err := privsep.FileConn(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake engine:", err)
		return 5
	}
	hello, err := privsep.ReadHello(conn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake engine:", err)
		return 5
	}
	cfg, err := config.Parse(hello.ConfigName, []byte(hello.Config))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake engine:", err)
		return 5
	}
	switch cfg.Hostname {
	case "exit3.test":
		return 3
	case "exit0.test":
		l, err := net.FileListener(os.NewFile(engineListenersFD, "listener"))
		if err != nil || len(hello.Listeners) != 1 || hello.Listeners[0].Role != roleMPP ||
			hello.Listeners[0].Name != l.Addr().String() || hello.Activated {
			fmt.Fprintf(os.Stderr, "fake engine: hello %+v, listener %v\n", hello, err)
			return 4
		}
		return 0
	case "attack.test":
		return attackMonitor(conn, term)
	case "garbage.test":
		return sendGarbage(conn, term, "this is not a frame")
	}
	return 6
}

// monitorConfig writes a configuration with the development backends.
func monitorConfig(t *testing.T, hostname string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "passwd"), nil, 0o600)
	path := filepath.Join(dir, "mppd.toml")
	os.WriteFile(path, []byte(fmt.Sprintf("hostname = %q\nlisten = [\"127.0.0.1:0\"]\n", hostname)+testBackends), 0o644)
	return path
}

// TestMonitorExitStatus: the monitor exits with its engine's status, and
// with 1 after stopping an engine that broke the protocol.
func TestMonitorExitStatus(t *testing.T) {
	if os.Geteuid() == 0 {
		if _, err := userLookup("mppd"); err != nil {
			testenv.Missing(t, "the system account mppd", "run `sudo bash test/setup.d/15-engine-user.sh`")
		}
	}
	for _, tc := range []struct {
		host   string
		status int
		log    string
	}{
		{"exit0.test", exitOK, `msg="engine started"`},
		{"exit3.test", 3, `msg="the engine exited" status=3`},
		{"garbage.test", exitFailure, "event=privsep-violation"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			var stdout bytes.Buffer
			var stderr testenv.LogBuffer // the engine writes to it too
			start := time.Now()
			got := run([]string{"--config", monitorConfig(t, tc.host)}, strings.NewReader(""), &stdout, &stderr)
			if got != tc.status || !strings.Contains(stderr.String(), tc.log) {
				t.Fatalf("status %d, want %d with %q; log:\n%s", got, tc.status, tc.log, stderr.String())
			}
			if took := time.Since(start); took > engineExitGrace {
				t.Errorf("took %s: the engine was not stopped at once", took)
			}
		})
	}
}

// attackMonitor plays a compromised engine against the real monitor and
// its real backends (the password file and a maildir): it logs in as alice
// with her right password in two sessions, then asks for deliveries the
// monitor must refuse, then two it must make, then more than alice's
// sending limit (2 messages an hour) allows, skipping the check a sound
// engine makes, then sends garbage. It prints what it got on standard
// error (the monitor's log) and waits for the monitor's SIGTERM.
func attackMonitor(conn *net.UnixConn, term chan os.Signal) int {
	staged := func() *os.File {
		f, _ := os.CreateTemp("", "attack-")
		os.Remove(f.Name())
		f.WriteString("To: bob@example.test\nSubject: attack\n\nhi\n")
		return f
	}
	buf := make([]byte, privsep.MaxFrame)
	ask := func(frame string, files ...*os.File) map[string]any {
		var oob []byte
		if len(files) > 0 {
			fds := []int{}
			for _, f := range files {
				fds = append(fds, int(f.Fd()))
			}
			oob = unix.UnixRights(fds...)
		}
		if _, _, err := conn.WriteMsgUnix([]byte(frame), oob, nil); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			return nil
		}
		n, err := conn.Read(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "read:", err)
			return nil
		}
		var r map[string]any
		json.Unmarshal(buf[:n], &r)
		return r
	}
	login := func(id int, session string) string {
		r := ask(fmt.Sprintf(`{"type":"auth","id":%d,"user":"YWxpY2U=","password":%q,"client":"192.0.2.7","session":%q}`,
			id, base64.StdEncoding.EncodeToString([]byte("alice-password")), session))
		tok, _ := r["token"].(string)
		fmt.Fprintf(os.Stderr, "login %s: %v\n", session, r["result"])
		return tok
	}
	deliver := func(name string, id int, token, session, sender string, files ...*os.File) {
		r := ask(fmt.Sprintf(`{"type":"deliver","id":%d,"token":%q,"session":%q,"sender":%q,"recipients":["bob@example.test"]}`,
			id, token, session, sender), files...)
		fmt.Fprintf(os.Stderr, "%s: %v %v\n", name, r["result"], r["reason"])
	}
	t1, t2 := login(1, "s1"), login(2, "s2")
	deliver("no token", 3, strings.Repeat("0", 64), "s1", "alice@example.test", staged())
	deliver("another session's token", 4, t2, "s1", "alice@example.test", staged())
	deliver("foreign sender", 5, t1, "s1", "root@example.test", staged())
	deliver("no fd", 6, t1, "s1", "alice@example.test")
	deliver("two fds", 7, t1, "s1", "alice@example.test", staged(), staged())
	deliver("good", 8, t1, "s1", "alice@example.test", staged())
	deliver("good again", 9, t2, "s2", "alice@example.test", staged())
	deliver("past the limit", 10, t1, "s1", "alice@example.test", staged())
	deliver("past the limit in another session", 11, t2, "s2", "alice@example.test", staged())
	return sendGarbage(conn, term, "garbage")
}

// sendGarbage writes what is no frame and waits for the SIGTERM the
// monitor must answer it with: 0 when it comes, 9 when it does not.
func sendGarbage(conn *net.UnixConn, term chan os.Signal, garbage string) int {
	conn.Write([]byte(garbage))
	select {
	case <-term:
		return 0
	case <-time.After(30 * time.Second):
		return 9
	}
}

// TestCompromisedEngine: an engine that owns alice's right password can
// post as alice in her session, within her sending limits, and nothing
// else. Against the real monitor and backends, every other request is
// refused and logged, only the two good messages reach the maildir, and
// garbage stops the engine.
func TestCompromisedEngine(t *testing.T) {
	if os.Geteuid() == 0 {
		if _, err := userLookup("mppd"); err != nil {
			testenv.Missing(t, "the system account mppd", "run `sudo bash test/setup.d/15-engine-user.sh`")
		}
	}
	cfgPath := monitorConfig(t, "attack.test")
	dir := filepath.Dir(cfgPath)
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n[limits]\nmessages_per_hour = 2\n")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var pw bytes.Buffer
	if code := run([]string{"passwd", "--config", cfgPath, "alice"}, strings.NewReader("alice-password\n"), &pw, &pw); code != exitOK {
		t.Fatalf("passwd: %d %s", code, pw.String())
	}
	var stdout bytes.Buffer
	var logs testenv.LogBuffer
	got := run([]string{"--config", cfgPath}, strings.NewReader(""), &stdout, &logs)
	if got != exitFailure {
		t.Errorf("status %d, want %d", got, exitFailure)
	}
	out := logs.String()
	testenv.Contains(t, out,
		"login s1: ok", "login s2: ok",
		"no token: refused unknown-token",
		"another session's token: refused other-session-token",
		"foreign sender: refused sender-not-identity",
		"no fd: refused fd-count",
		"two fds: refused fd-count",
		"good: queued",
		"good again: queued",
		"past the limit: refused send-limit",
		"past the limit in another session: refused send-limit",
		"event=privsep-violation",
	)
	if n := strings.Count(out, "event=privsep-refused"); n != 7 {
		t.Errorf("%d refusals logged, want 7", n)
	}
	if n := strings.Count(out, "reason=send-limit "); n != 2 ||
		strings.Count(out, "login=alice limit=messages_per_hour max=2 count=2 recipients=1") != 2 {
		t.Errorf("%d sending-limit refusals logged, want 2 with the login and the limit:\n%s", n, out)
	}
	// The monitor's limiter swept until the monitor stopped.
	testenv.Contains(t, out, "component=monitor event=send-limit-summary login=alice limit=messages_per_hour")
	msgs, _ := filepath.Glob(filepath.Join(dir, "maildir", "*", "new", "*"))
	if len(msgs) != 2 {
		t.Errorf("%d messages delivered, want the two good ones: %v", len(msgs), msgs)
	}
}

// The monitor runs its Go code on one processor, except with the password
// file, whose hash is Go code that concurrent logins run side by side.
// GOMAXPROCS in the environment wins.
func TestMonitorProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	for backend, want := range map[string]int{"pam": 1, "ldap": 1, "passwdfile": 0} {
		cfg := &config.Config{}
		cfg.Authn.Backend = backend
		if got := monitorProcs(cfg); got != want {
			t.Errorf("authn.backend %q: monitorProcs = %d, want %d", backend, got, want)
		}
	}
	t.Setenv("GOMAXPROCS", "4")
	cfg := &config.Config{}
	cfg.Authn.Backend = "pam"
	if got := monitorProcs(cfg); got != 0 {
		t.Errorf("with GOMAXPROCS=4: monitorProcs = %d, want 0", got)
	}
}

// The engine's environment carries GOMAXPROCS only when mppd's has it.
func TestEngineEnvGOMAXPROCS(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3")
	if env := engineEnv(); !slices.Contains(env, "GOMAXPROCS=3") {
		t.Errorf("engineEnv() = %q, want GOMAXPROCS=3 in it", env)
	}
	os.Unsetenv("GOMAXPROCS") // t.Setenv restores it after the test
	for _, kv := range engineEnv() {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			t.Errorf("engineEnv() = %q without GOMAXPROCS in mppd's environment", kv)
		}
	}
}
