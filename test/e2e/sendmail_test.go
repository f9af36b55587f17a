//go:build integration

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// End-to-end through the real Postfix of test/setup.d/40-postfix.sh:
// [delivery] backend = "sendmail" with the password-file authn. The
// password file has no notion of local accounts (Identity.Account is
// empty), so the daemon submits as fallback_account = "mppd-mta1", with the
// authenticated address as the envelope sender; mppd itself runs as root
// (the test does), which switch_user needs.

// sendmailBackends is extraTOML for the password file with users and the
// sendmail backend running path as fallback account mppd-mta1.
func sendmailBackends(t *testing.T, path string, users ...testUser) string {
	return testharness.PasswdfileTOML(writePasswd(t, users...), testMailDomain) + fmt.Sprintf(`
[delivery]
backend = "sendmail"

[delivery.sendmail]
path = %q
fallback_account = "mppd-mta1"
timeout = "20s"
`, path)
}

func randomToken(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "mppd-e2e-" + hex.EncodeToString(b[:])
}

var postfixUserid = regexp.MustCompile(`\(Postfix, from userid (\d+)\)`)

// TestSendmailPostfix: a post through mppd lands in each recipient's
// Maildir via Postfix, body intact, Bcc absent, submitted as the fallback
// account's uid with the authenticated address as Return-Path.
func TestSendmailPostfix(t *testing.T) {
	testenv.NeedPostfix(t)
	m := testharness.Start(t, sendmailBackends(t, "/usr/sbin/sendmail", alice))
	if !strings.Contains(m.Log(), "sendmail /usr/sbin/sendmail") {
		t.Errorf("start-up log does not describe the sendmail backend:\n%s", m.Log())
	}
	tok := randomToken(t)
	body := "Hello,\n.\n..two dots\n.one dot\nQUIT\n\n-- \nalice " + tok + "\n"
	msg := "From: alice@" + testMailDomain + "\n" +
		"To: mppd-mta2@localhost\n" +
		"Bcc: mppd-mta1@localhost\n" +
		"Subject: " + tok + "\n" +
		"\n" + body
	c := login(t, m, alice)
	start := time.Now()
	c.Post(msg, 250)
	t.Logf("DATA to 250 through Postfix: %s", time.Since(start))
	c.Cmd("QUIT", 221)

	mta1, err := user.Lookup("mppd-mta1")
	if err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{"mppd-mta1", "mppd-mta2"} {
		got := testenv.WaitPostfixMessage(t, rcpt, tok)
		header, gotBody := headerBody(t, got)
		if gotBody != body {
			t.Errorf("%s: body\n%q\nwant\n%q", rcpt, gotBody, body)
		}
		if hasHeader(header, "Bcc") {
			t.Errorf("%s: delivered copy has a Bcc header:\n%s", rcpt, header)
		}
		if want := "Return-Path: <alice@" + testMailDomain + ">\n"; !strings.HasPrefix(got, want) {
			t.Errorf("%s: Return-Path is not alice's address:\n%s", rcpt, header)
		}
		if sm := postfixUserid.FindStringSubmatch(header); sm == nil || sm[1] != mta1.Uid {
			t.Errorf("%s: Postfix trace %v, want from userid %s:\n%s", rcpt, sm, mta1.Uid, header)
		}
	}
	noPasswordLogged(t, m, alice.password)
}

// TestSendmailTempfail: a sendmail that exits 75 gives 451 with no copy
// delivered, the session still answers (NOOP, QUIT; RFC 1204 §2.3: after a
// failed message nothing else), and once the fault is gone the next session
// delivers. A hostile recipient never reaches the program.
func TestSendmailTempfail(t *testing.T) {
	testenv.NeedPostfix(t)
	// The stand-in runs as mppd-mta1: its directory must be open to it.
	dir := testenv.OpenTempDir(t)
	flag := filepath.Join(dir, "tempfail")
	runs := filepath.Join(dir, "runs")
	script := filepath.Join(dir, "sendmail")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(`#!/bin/sh
echo "$*" >>%s
if [ -e %s ]; then
	cat >/dev/null
	echo "postdrop: warning: simulated queue trouble" >&2
	exit 75
fi
exec /usr/sbin/sendmail "$@"
`, runs, flag)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := testharness.Start(t, sendmailBackends(t, script, alice))

	tok := randomToken(t)
	msg := "To: mppd-mta2@localhost\nSubject: " + tok + "\n\nretry me\n"
	c := login(t, m, alice)
	c.Post(msg, 451)
	// The connection stays up; NOOP reports the local error (RFC 1204
	// §2.3 lists 451 for NOOP), a second DATA is out of sequence.
	c.Cmd("NOOP", 451)
	c.Cmd("DATA", 503)
	c.Cmd("QUIT", 221)
	m.WaitLog("reason=\"exit 75 (EX_TEMPFAIL)\"")
	if !strings.Contains(m.Log(), "simulated queue trouble") {
		t.Errorf("sendmail's stderr is not in the log:\n%s", m.Log())
	}

	// A hostile recipient: refused, and the program does not run.
	before, _ := os.ReadFile(runs)
	c = login(t, m, alice)
	c.Post("To: -oQ/tmp/q@localhost, mppd-mta2@localhost\nSubject: x\n\nx\n", 550)
	c.Cmd("QUIT", 221)
	if after, _ := os.ReadFile(runs); string(after) != string(before) {
		t.Errorf("the program ran for a hostile recipient: %q", strings.TrimPrefix(string(after), string(before)))
	}

	os.Remove(flag)
	c = login(t, m, alice)
	c.Post(msg, 250)
	c.Cmd("QUIT", 221)
	got := testenv.WaitPostfixMessage(t, "mppd-mta2", tok)
	if n := strings.Count(got, tok); n != 1 {
		t.Errorf("token appears %d times", n)
	}
	runLog, _ := os.ReadFile(runs)
	if want := "-i -f alice@" + testMailDomain + " -- mppd-mta2@localhost\n"; !strings.HasSuffix(string(runLog), want) {
		t.Errorf("argv log %q, want it to end with %q", runLog, want)
	}
}

// TestSendmailMissing: no program at the path is 451 and an error log
// line; the daemon keeps serving.
func TestSendmailMissing(t *testing.T) {
	testenv.NeedPostfix(t)
	m := testharness.Start(t, sendmailBackends(t, "/nonexistent/sendmail", alice))
	c := login(t, m, alice)
	c.Post("To: mppd-mta2@localhost\nSubject: nowhere\n\nx\n", 451)
	c.Cmd("QUIT", 221)
	m.WaitLog("reason=exec")
	c = login(t, m, alice)
	c.Cmd("QUIT", 221)
}
