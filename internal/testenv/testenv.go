// Package testenv lets integration tests say what they need from the machine.
//
// On a developer's machine a missing dependency skips the test with a message
// naming the fix (run the setup script). Under CI (the CI environment
// variable is set) a missing dependency fails the test: CI runs the setup
// script first, so a missing piece there is a broken setup, not a reason to
// go green.
package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI.
func InCI() bool { return os.Getenv("CI") != "" }

// Missing stops t because a dependency is absent: a failure under CI, a skip
// elsewhere. what names the dependency, fix says how to get it.
func Missing(t testing.TB, what, fix string) {
	t.Helper()
	if InCI() {
		t.Fatalf("missing dependency %s (CI must not skip): %s", what, fix)
	}
	t.Skipf("skipping: %s is not available; %s", what, fix)
}

// NeedCommand returns the path of an executable, or stops t through Missing.
func NeedCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if _, statErr := os.Stat(name); statErr == nil {
			return name
		}
		Missing(t, name, "run `sudo test/setup.sh` (or `sudo make test`)")
	}
	return p
}

// NeedRoot stops t through Missing unless the test runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root", "run the integration tests as root (`sudo make test`)")
	}
}

// NeedFile stops t through Missing unless path exists.
func NeedFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, path, "run `sudo test/setup.sh` (or `sudo make test`)")
	}
}

// setupFix names the setup script that installs a dependency.
func setupFix(script string) string {
	return "run `sudo bash test/setup.d/" + script + "` (or `sudo test/setup.sh`)"
}

// NeedUsers stops t through Missing unless every local account in names
// exists; script is the test/setup.d script that creates them.
func NeedUsers(t testing.TB, script string, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := user.Lookup(n); err != nil {
			Missing(t, "test user "+n, setupFix(script))
		}
	}
}

// PostfixUsers are the local accounts test/setup.d/40-postfix.sh creates
// for the tests to submit as and deliver to.
var PostfixUsers = []string{"mppd-mta1", "mppd-mta2"}

// NeedPostfix stops t through Missing unless it runs as root with
// /usr/sbin/sendmail, a running Postfix (local delivery only) and the
// PostfixUsers, as test/setup.d/40-postfix.sh leaves them.
func NeedPostfix(t testing.TB) {
	t.Helper()
	const script = "40-postfix.sh"
	NeedRoot(t)
	if _, err := os.Stat("/usr/sbin/sendmail"); err != nil {
		Missing(t, "/usr/sbin/sendmail (package postfix)", setupFix(script))
	}
	postfix, err := exec.LookPath("postfix")
	if err != nil {
		postfix = "/usr/sbin/postfix"
	}
	if err := exec.Command(postfix, "status").Run(); err != nil {
		Missing(t, "a running Postfix (package postfix)", setupFix(script))
	}
	NeedUsers(t, script, PostfixUsers...)
}

// PostfixMessage returns a message holding tok in the local user's
// ~/Maildir (new or cur), where the test Postfix delivers, or "".
func PostfixMessage(t testing.TB, name, tok string) string {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(u.HomeDir, "Maildir", sub)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && strings.Contains(string(b), tok) {
				return string(b)
			}
		}
	}
	return ""
}

// WaitPostfixMessage waits (at most 30 s) for PostfixMessage to find a
// message holding tok and returns it.
func WaitPostfixMessage(t testing.TB, name, tok string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := PostfixMessage(t, name, tok); m != "" {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no message with %s in %s's Maildir after 30 s (see /var/log/postfix-mppd.log)", tok, name)
	return ""
}

// NeedSlapd returns the paths of slapd and slapadd (package slapd, which
// test/setup.d/30-slapd.sh installs), or stops t through Missing.
func NeedSlapd(t testing.TB) (slapd, slapadd string) {
	t.Helper()
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		p := "/usr/sbin/" + name
		if _, err := os.Stat(p); err != nil {
			Missing(t, name+" (package slapd)", setupFix("30-slapd.sh"))
		}
		return p
	}
	return find("slapd"), find("slapadd")
}

// NeedSambaDomain returns the path of samba, and stops t through Missing
// unless it runs as root and the test AD domain that
// test/setup.d/35-samba.sh provisions is there: stamp is the file that
// script writes last.
func NeedSambaDomain(t testing.TB, stamp string) string {
	t.Helper()
	NeedRoot(t)
	samba, err := exec.LookPath("samba")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/samba"); statErr != nil {
			Missing(t, "samba (package samba)", setupFix("35-samba.sh"))
		}
		samba = "/usr/sbin/samba"
	}
	if _, err := os.Stat(stamp); err != nil {
		Missing(t, "the provisioned test AD domain ("+stamp+")", setupFix("35-samba.sh"))
	}
	return samba
}

// NeedPAMService stops t through Missing unless it runs as root (PAM's
// pam_unix reads /etc/shadow) and every service in services has its file
// in /etc/pam.d, as test/setup.d/20-pam.sh installs them.
func NeedPAMService(t testing.TB, services ...string) {
	t.Helper()
	NeedRoot(t)
	for _, s := range services {
		if _, err := os.Stat("/etc/pam.d/" + s); err != nil {
			Missing(t, "PAM service file /etc/pam.d/"+s, setupFix("20-pam.sh"))
		}
	}
}

// OpenTempDir returns a fresh directory that every user can read, enter
// and write, for tests whose child processes run as other users
// (t.TempDir is the test's own, mode 0700).
func OpenTempDir(t testing.TB) string {
	t.Helper()
	return tempDirMode(t, 0o777)
}

// tempDirMode returns a fresh t.TempDir whose mode, and its parent's, is
// mode.
func tempDirMode(t testing.TB, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// LogBuffer collects a logger's or a process's output while a test reads
// it from another goroutine.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Contains checks that out contains each of wants, and reports each one
// missing (the test goes on).
func Contains(t testing.TB, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
