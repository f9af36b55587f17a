//go:build integration

// Package packaging holds the checks of what the packages ship that need
// real programs: here, the example fail2ban filter against the log of a
// real mppd. The package build, lint and install test are shell scripts
// (see the Makefile's packages, lint-packages and install-test).
package packaging

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
)

// TestFail2banFilter runs mppd (password file, maildir, loopback), fails
// three logins with a wrong password, an unknown user and a user name
// crafted to look like a log field, logs in once correctly, and runs
// fail2ban-regex with packaging/fail2ban/mppd.conf on mppd's log: exactly
// the three failures match, all for 127.0.0.1, and the forged address in
// the user name is never taken.
func TestFail2banFilter(t *testing.T) {
	testenv.NeedCommand(t, "fail2ban-regex") // test/setup.d/60-packaging.sh
	dir := t.TempDir()
	bin := filepath.Join(dir, "mppd")
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(goCmd, "build", "-o", bin, "github.com/mppd/mppd/cmd/mppd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// The password file, through mppd's own command.
	passwd := filepath.Join(dir, "passwd")
	cmd := exec.Command(bin, "passwd", "--file", passwd, "alice")
	cmd.Stdin = strings.NewReader("right-password-4711\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mppd passwd: %v\n%s", err, out)
	}

	// A user_pattern that lets through the quote and '=' of the crafted
	// name (mppd still refuses spaces and control characters).
	conf := filepath.Join(dir, "mppd.toml")
	writeFile(t, conf, fmt.Sprintf(`hostname = "mppd.test"
listen = ["127.0.0.1:0"]
drain_timeout = "5s"
[session]
auth_failure_delay = "0s"
user_pattern = '^[a-z"=.0-9-]{1,64}$'
[authn]
backend = "passwdfile"
[authn.passwdfile]
path = %q
mail_domain = "mppd.test"
[delivery]
backend = "maildir"
[delivery.maildir]
root = %q
`, passwd, filepath.Join(dir, "maildir")))

	log := &testenv.LogBuffer{}
	srv := exec.Command(bin, "--config", conf)
	srv.Stdout, srv.Stderr = log, log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	defer func() {
		_ = srv.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	}()
	addr := waitListening(t, log, done)

	const forged = "10.9.9.9"
	logins := []struct {
		user, password string
		want           string // reply code to PASS
	}{
		{"alice", "wrong-password", "530"},
		{"bob", "whatever-1", "530"},
		{`x"client=` + forged + `"event=auth-failed`, "whatever-2", "530"},
		{"alice", "right-password-4711", "250"},
	}
	for _, l := range logins {
		if got := login(t, addr, l.user, l.password); got != l.want {
			t.Fatalf("login %q: PASS got %q, want %s; log:\n%s", l.user, got, l.want, log.String())
		}
	}
	// The failures are logged before the 530 is written, so the log is
	// complete now.
	logFile := filepath.Join(dir, "mppd.log")
	writeFile(t, logFile, log.String())
	if n := strings.Count(log.String(), "event=auth-failed"); n < 3 {
		t.Fatalf("mppd logged %d auth-failed lines, want 3:\n%s", n, log.String())
	}

	filter, err := filepath.Abs("../../packaging/fail2ban/mppd.conf")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("fail2ban-regex", "--print-all-matched", logFile, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	text := string(out)
	m := regexp.MustCompile(`Lines: \d+ lines, \d+ ignored, (\d+) matched`).FindStringSubmatch(text)
	if m == nil || m[1] != "3" {
		t.Fatalf("fail2ban-regex: want 3 matched lines:\n%s\nlog:\n%s", text, log.String())
	}
	if strings.Contains(text, "Date template hits:\n`-") || !strings.Contains(text, "Date template hits") {
		t.Errorf("fail2ban-regex found no time stamps in the log:\n%s", text)
	}

	// The addresses fail2ban would ban: -o ip prints one per match.
	ips, err := exec.Command("fail2ban-regex", "-o", "ip", logFile, filter).Output()
	if err != nil {
		t.Fatalf("fail2ban-regex -o ip: %v\n%s", err, ips)
	}
	got := strings.Fields(string(ips))
	if len(got) != 3 {
		t.Fatalf("fail2ban-regex -o ip: %q, want 127.0.0.1 three times", got)
	}
	for _, ip := range got {
		if ip != "127.0.0.1" {
			t.Errorf("fail2ban would ban %q; only 127.0.0.1 failed (the user name carried %s)", ip, forged)
		}
	}
}

// login runs USER, PASS, QUIT on a new connection and returns the code of
// the reply to PASS.
func login(t *testing.T, addr, user, password string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	reply := func() string {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a reply: %v", err)
		}
		return strings.TrimRight(line, "\r\n")
	}
	expect := func(prefix string) {
		if got := reply(); !strings.HasPrefix(got, prefix) {
			t.Fatalf("got %q, want %s", got, prefix)
		}
	}
	expect("220")
	fmt.Fprintf(c, "USER %s\r\n", user)
	expect("250")
	fmt.Fprintf(c, "PASS %s\r\n", password)
	code := reply()
	fmt.Fprintf(c, "QUIT\r\n")
	if len(code) < 3 {
		return code
	}
	return code[:3]
}

// waitListening returns the address mppd logged it listens on.
func waitListening(t *testing.T, log *testenv.LogBuffer, done <-chan error) string {
	t.Helper()
	re := regexp.MustCompile(`msg=listening .*?addr=(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(log.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("mppd exited (%v) before listening:\n%s", err, log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("mppd did not listen within 30s:\n%s", log.String())
	return ""
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
