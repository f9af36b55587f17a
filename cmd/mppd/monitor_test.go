package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/privsep"
	"github.com/mppd/mppd/internal/testenv"
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
	case "garbage.test":
		conn.Write([]byte("this is not a frame"))
		select {
		case <-term:
			return 0
		case <-time.After(30 * time.Second):
			return 9
		}
	}
	return 6
}

// monitorConfig writes a configuration with the development backends.
func monitorConfig(t *testing.T, hostname string) string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "passwd"), nil, 0o600)
	path := filepath.Join(dir, "mppd.toml")
	os.WriteFile(path, []byte(fmt.Sprintf(`hostname = %q
listen = ["127.0.0.1:0"]
[authn.passwdfile]
path = "passwd"
mail_domain = "example.test"
[delivery.maildir]
root = "maildir"
`, hostname)), 0o644)
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
