package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testharness"
	"golang.org/x/sys/unix"
)

func TestSplitPasswdArgs(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		configPath string
		rest       []string
	}{
		{[]string{"alice"}, config.DefaultPath, []string{"alice"}},
		{[]string{"--config", "c.toml", "alice"}, "c.toml", []string{"alice"}},
		{[]string{"-config=c.toml", "--file", "pw", "alice"}, "c.toml", []string{"--file", "pw", "alice"}},
		{[]string{"--address", "a@x,b@x", "--address=c@x", "alice"}, config.DefaultPath, []string{"-address=a@x,b@x,c@x", "alice"}},
		{[]string{"--address", "", "alice"}, config.DefaultPath, []string{"-address=", "alice"}},
		{[]string{"--file=pw", "--", "-odd"}, config.DefaultPath, []string{"--file=pw", "--", "-odd"}},
		{[]string{"-h"}, config.DefaultPath, []string{"-h"}},
	} {
		cp, rest, err := splitPasswdArgs(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if cp != tc.configPath || !reflect.DeepEqual(rest, tc.rest) {
			t.Errorf("%q: got %q %q, want %q %q", tc.args, cp, rest, tc.configPath, tc.rest)
		}
	}
	if _, _, err := splitPasswdArgs([]string{"--config"}); err == nil {
		t.Error("--config without a value accepted")
	}
}

// TestRunExitStatus checks the exit statuses of run without serving.
func TestRunExitStatus(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(filepath.Join(dir, "passwd"), nil, 0o600)
	os.WriteFile(good, []byte(testBackends), 0o644)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("max_sessions = -1\n"), 0o644)
	noBackend := filepath.Join(dir, "nobackend.toml")
	os.WriteFile(noBackend, []byte(backendsTOML("missing")), 0o644)

	// An LDAP directory nobody answers for: --check-config tries it and
	// fails; with --offline it does not try.
	deadAddr := testharness.ClosedAddr(t)
	ldapDown := filepath.Join(dir, "ldap.toml")
	os.WriteFile(ldapDown, []byte(fmt.Sprintf(`
[authn]
backend = "ldap"
[authn.ldap]
uris = ["ldap://%s"]
insecure_plaintext = true
user_dn = "uid={user},dc=example,dc=test"
dial_timeout = "2s"
[delivery.maildir]
root = "maildir"
`, deadAddr)), 0o644)

	for _, tc := range []struct {
		args   []string
		status int
		out    string
	}{
		{[]string{"--version"}, exitOK, "mppd devel"},
		{[]string{"--check-config", "--config", ldapDown}, exitConfig, "authn.ldap: the directory check failed (--offline skips it): authentication backend unavailable: connect"},
		{[]string{"--check-config", "--offline", "--config", ldapDown}, exitOK, "config OK"},
		{[]string{"--check-config", "--config", good}, exitOK, "config OK"},
		{[]string{"--check-config", "--config", bad}, exitConfig, bad + ":1: max_sessions: -1 is out of range"},
		{[]string{"--config", bad}, exitConfig, bad + ":1: max_sessions"},
		{[]string{"--check-config", "--config", noBackend}, exitConfig, "authn.passwdfile:"},
		{[]string{"--check-config", "--config", filepath.Join(dir, "absent.toml")}, exitConfig, "absent.toml"},
		{[]string{"--bogus"}, exitConfig, "usage: mppd"},
		{[]string{"extra"}, exitConfig, `unexpected argument "extra"`},
		{[]string{"passwd", "--config", bad, "bob"}, exitConfig, ":1: max_sessions"},
	} {
		var stdout, stderr bytes.Buffer
		got := run(tc.args, strings.NewReader(""), &stdout, &stderr)
		out := stdout.String() + stderr.String()
		if got != tc.status || !strings.Contains(out, tc.out) {
			t.Errorf("mppd %q: status %d, output %q; want %d and %q", tc.args, got, out, tc.status, tc.out)
		}
	}
}

// TestRunNoCoreDumps: once the config is loaded, mppd can dump core no
// more, nor can any child it starts raise the limit.
func TestRunNoCoreDumps(t *testing.T) {
	var stdout, stderr bytes.Buffer
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "passwd"), nil, 0o600)
	cfg := filepath.Join(dir, "mppd.toml")
	os.WriteFile(cfg, []byte(testBackends), 0o644)
	if status := run([]string{"--check-config", "--config", cfg}, strings.NewReader(""), &stdout, &stderr); status != exitOK {
		t.Fatalf("status %d: %s", status, stderr.String())
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur != 0 || rl.Max != 0 {
		t.Errorf("RLIMIT_CORE = %d/%d, want 0/0", rl.Cur, rl.Max)
	}
}

// TestPasswdDefaultsToConfigPath: without --file, `mppd passwd` changes
// the file named by [authn.passwdfile] path, relative to the config file.
func TestPasswdDefaultsToConfigPath(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mppd.toml")
	os.WriteFile(cfg, []byte(backendsTOML("users")), 0o644)
	var stdout, stderr bytes.Buffer
	status := run([]string{"passwd", "--config", cfg, "--address", "bob@example.test", "--address", "b@example.test", "bob"},
		strings.NewReader("bob-password\n"), &stdout, &stderr)
	if status != exitOK {
		t.Fatalf("status %d: %s", status, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "users"))
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(b))
	if !strings.HasPrefix(line, "bob:$argon2id$") || !strings.HasSuffix(line, ":bob@example.test,b@example.test") {
		t.Errorf("password file line %q", line)
	}
}

// The configuration exit status is the one the packaged unit does not
// restart on, and not 2, the Go runtime's status for a crash or a SIGABRT
// (systemd's watchdog signal): a watchdog timeout must restart mppd.
func TestExitConfigMatchesTheUnit(t *testing.T) {
	if exitConfig == 2 || exitConfig == exitFailure || exitConfig == exitOK {
		t.Fatalf("exitConfig = %d collides with another status", exitConfig)
	}
	for _, unit := range []string{"mppd.service"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		var prevent []string
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "RestartPreventExitStatus="); ok {
				prevent = append(prevent, strings.Fields(v)...)
			}
		}
		if !reflect.DeepEqual(prevent, []string{"78"}) {
			t.Errorf("%s: RestartPreventExitStatus=%v, want [78] (exitConfig %d)", unit, prevent, exitConfig)
		}
	}
}

// A start-up error goes to the journal at priority err (3), so that
// `journalctl -p warning -u mppd` shows it; elsewhere it is a plain line.
func TestStartupErrorLine(t *testing.T) {
	err := errors.New("/etc/mppd/mppd.toml:1: hostnme: unknown key")
	if got, want := startupErrorLine(err, true), "<3>mppd: /etc/mppd/mppd.toml:1: hostnme: unknown key\n"; got != want {
		t.Errorf("under the journal: %q, want %q", got, want)
	}
	if got, want := startupErrorLine(err, false), "mppd: /etc/mppd/mppd.toml:1: hostnme: unknown key\n"; got != want {
		t.Errorf("on a terminal: %q, want %q", got, want)
	}
}
