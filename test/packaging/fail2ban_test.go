//go:build integration

// Package packaging holds the checks of what the packages ship that need
// real programs: here, the example fail2ban filter against the log of a
// real mppd. The package build, lint and install test are shell scripts
// (see the Makefile's packages, lint-packages and install-test).
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

func TestMain(m *testing.M) {
	os.Exit(testharness.Main(m, testharness.Build{}))
}

// TestFail2banFilter runs mppd (password file, maildir, loopback), fails
// three logins with a wrong password, an unknown user and a user name
// crafted to look like a log field, logs in once correctly, posts past a
// sending limit (which must not match: it is the user's doing), and runs
// fail2ban-regex with packaging/fail2ban/mppd.conf on mppd's log: exactly
// the three failures match, all for 127.0.0.1, and the forged address in
// the user name is never taken.
func TestFail2banFilter(t *testing.T) {
	testenv.NeedCommand(t, "fail2ban-regex") // test/setup.d/60-packaging.sh
	dir := t.TempDir()

	// The password file, through mppd's own command.
	passwd := filepath.Join(dir, "passwd")
	if out, code := testharness.Run(t, "right-password-4711\n", "passwd", "--file", passwd, "alice"); code != 0 {
		t.Fatalf("mppd passwd: status %d\n%s", code, out)
	}

	// A user_pattern that lets through the quote and '=' of the crafted
	// name (mppd still refuses spaces and control characters); the log at
	// its default level, as installed.
	d := testharness.Start(t, `[log]
level = "info"
[session]
user_pattern = '^[a-z"=.0-9-]{1,64}$'
[limits]
messages_per_hour = 1
`, testharness.PasswdfileTOML(passwd, "mppd.test"), testharness.MaildirTOML(filepath.Join(dir, "maildir")))

	const forged = "10.9.9.9"
	logins := []struct {
		user, password string
		want           int // reply code to PASS
	}{
		{"alice", "wrong-password", 530},
		{"bob", "whatever-1", 530},
		{`x"client=` + forged + `"event=auth-failed`, "whatever-2", 530},
		{"alice", "right-password-4711", 250},
	}
	for _, l := range logins {
		c := d.Dial(t)
		c.Cmd("USER "+l.user, 250)
		c.Cmd("PASS "+l.password, l.want)
		c.Cmd("QUIT", 221)
	}
	// A user past a sending limit is not the client address's fault:
	// the refusal's warning must not match.
	c := d.Dial(t)
	c.Login("alice", "right-password-4711")
	c.Post("To: rcpt@mppd.test\n\none\n", 250)
	c.Post("To: rcpt@mppd.test\n\ntwo\n", 451)
	c.Cmd("QUIT", 221)
	d.WaitLog("event=send-limit ")
	// The failures are logged before the 530 is written, so the log is
	// complete now.
	logFile := filepath.Join(dir, "mppd.log")
	writeFile(t, logFile, d.Log())
	if n := strings.Count(d.Log(), "event=auth-failed"); n < 3 {
		t.Fatalf("mppd logged %d auth-failed lines, want 3:\n%s", n, d.Log())
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
		t.Fatalf("fail2ban-regex: want 3 matched lines:\n%s\nlog:\n%s", text, d.Log())
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

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
