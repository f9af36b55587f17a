//go:build pam && integration

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// End-to-end through the real PAM stack: the daemon built with -tags pam,
// [authn] backend = "pam" on the service mppd-test (pam_unix), the test
// accounts of test/setup.d/20-pam.sh, and the maildir delivery.

func init() { mppdBuildTags = append(mppdBuildTags, "pam") }

// The fixtures of test/setup.d/20-pam.sh.
var (
	pamOK      = testUser{name: "mppd-pam-ok", password: "Pam-ok-4711"}
	pamExpired = testUser{name: "mppd-pam-expired", password: "Pam-exp-4711"}
)

const pamRhostLog = "/run/mppd-test/rhost.log"

func needPAMSetup(t *testing.T) {
	t.Helper()
	testenv.NeedPAMService(t, "mppd-test", "mppd-test-rhost")
	testenv.NeedUsers(t, "20-pam.sh", pamOK.name, pamExpired.name)
}

// pamBackends is extraTOML for the PAM backend on service and a maildir
// under t.TempDir(); it returns the maildir root.
func pamBackends(t *testing.T, service string) (extraTOML, root string) {
	root = filepath.Join(t.TempDir(), "maildir")
	return fmt.Sprintf("[authn]\nbackend = \"pam\"\n[authn.pam]\nservice = %q\nmail_domain = %q\n", service, testMailDomain) +
		testharness.MaildirTOML(root), root
}

// A real system user logs in over TCP with the password in /etc/shadow and
// posts; the message is delivered as that user's address.
func TestPAMLoginAndPost(t *testing.T) {
	needPAMSetup(t)
	extra, root := pamBackends(t, "mppd-test")
	m := testharness.Start(t, extra)
	if !strings.Contains(m.Log(), `service=\"mppd-test\"`) && !strings.Contains(m.Log(), `service="mppd-test"`) {
		t.Errorf("start-up log does not describe the PAM backend:\n%s", m.Log())
	}

	c := login(t, m, pamOK)
	c.Post("To: bob@example.test\nSubject: posted through PAM\n\nhello from pam\n", 250)
	c.Cmd("QUIT", 221)

	header := deliveredOne(t, root, "bob@example.test", "hello from pam\n")
	if want := "From: " + pamOK.name + "@" + testMailDomain; !strings.Contains(header, want) {
		t.Errorf("header lacks %q:\n%s", want, header)
	}
	noPasswordLogged(t, m, pamOK.password)
}

// Refusals through PAM are 530 on the wire; the log says why.
func TestPAMRefused(t *testing.T) {
	needPAMSetup(t)
	extra, root := pamBackends(t, "mppd-test")
	m := testharness.Start(t, extra)

	for _, tc := range []struct {
		user, password, reason string
	}{
		{pamOK.name, "not-" + pamOK.password, "bad-password"},
		{pamExpired.name, pamExpired.password, "account-expired"},
		{"mppd-pam-nosuchuser", pamOK.password, "unknown-user"},
	} {
		c := m.Dial(t)
		c.Cmd("USER "+tc.user, 250)
		c.Cmd("PASS "+tc.password, 530)
		c.Cmd("DATA", 503)
		c.Cmd("QUIT", 221)
		m.WaitLog("reason=" + tc.reason)
	}
	if msgs := delivered(t, root, "bob@example.test"); len(msgs) != 0 {
		t.Fatalf("delivered after refusals: %v", msgs)
	}
	noPasswordLogged(t, m, pamExpired.password)
}

// The engine hands the TCP peer's address to PAM as PAM_RHOST: pam_exec in
// the mppd-test-rhost stack records it.
func TestPAMRhostIsTCPPeer(t *testing.T) {
	needPAMSetup(t)
	extra, _ := pamBackends(t, "mppd-test-rhost")
	m := testharness.Start(t, extra)
	var offset int64
	if st, err := os.Stat(pamRhostLog); err == nil {
		offset = st.Size()
	}
	c := login(t, m, pamOK)
	c.Cmd("QUIT", 221)
	data, err := os.ReadFile(pamRhostLog)
	if err != nil {
		t.Fatal(err)
	}
	added := string(data[min(offset, int64(len(data))):])
	if !strings.Contains(added, pamOK.name+" 127.0.0.1\n") {
		t.Fatalf("pam_exec did not see PAM_RHOST=127.0.0.1; recorded:\n%s", added)
	}
}

// A PAM user who is a supplementary member of a privileged group (root,
// shadow) is never submitted as: the sendmail backend's account policy
// refuses the login at PASS (530, reason privileged-group), while an
// ordinary PAM user's message goes through the same daemon to Postfix.
func TestPAMPrivilegedGroupRefused(t *testing.T) {
	needPAMSetup(t)
	testenv.NeedPostfix(t)
	wheel := testUser{name: "mppd-pam-wheel", password: "Pam-wheel-4711"}
	shadow := testUser{name: "mppd-pam-shadow", password: "Pam-shadow-4711"}
	testenv.NeedUsers(t, "20-pam.sh", wheel.name, shadow.name)
	m := testharness.Start(t, fmt.Sprintf("[authn]\nbackend = \"pam\"\n[authn.pam]\nservice = \"mppd-test\"\nmail_domain = %q\n", testMailDomain)+`
[delivery]
backend = "sendmail"

[delivery.sendmail]
timeout = "20s"
`)

	refused, ok := randomToken(t), randomToken(t)
	// The account policy answers at PASS, like a wrong password: the
	// message is never uploaded.
	for _, u := range []testUser{wheel, shadow} {
		c := m.Dial(t)
		c.Cmd("USER "+u.name, 250)
		c.Cmd("PASS "+u.password, 530)
		c.Cmd("QUIT", 221)
	}
	m.WaitLog("reason=privileged-group")
	if n := strings.Count(m.Log(), "reason=privileged-group"); n < 2 {
		t.Errorf("%d log lines with reason=privileged-group, want 2:\n%s", n, m.Log())
	}

	c := login(t, m, pamOK)
	c.Post("To: mppd-mta1@localhost\nSubject: "+ok+"\n\nfrom an ordinary user\n", 250)
	c.Cmd("QUIT", 221)
	testenv.WaitPostfixMessage(t, "mppd-mta1", ok)
	if testenv.PostfixMessage(t, "mppd-mta1", refused) != "" {
		t.Error("a message from a privileged-group account was delivered")
	}
}

// The failure padding cannot be emptied by the auth cache. pam_unix sleeps
// about 2 s (1.5 to 2.5 s) after a wrong password but not after the right
// password of an expired account, and mppd pads every failure to the
// slowest recent rejection so the quick one does not say "right password".
// Cache hits are answered in microseconds: many of them after one slow
// rejection must not make the padding forget it. With the real PAM stack
// and the cache on: one wrong password (slow), then many parallel repeats
// of it (cache hits), then the expired account's right password, which
// must still take at least pam_unix's shortest delay.
func TestPAMFailurePaddingSurvivesCacheHits(t *testing.T) {
	needPAMSetup(t)
	extra, _ := pamBackends(t, "mppd-test")
	m := testharness.Start(t, extra+`
[session]
auth_failure_delay = "1s"

[authn.cache]
enabled = true
`)
	const wrong = "Not-the-password-1"
	fail := func(user, password string) time.Duration {
		c := m.Dial(t)
		c.Cmd("USER "+user, 250)
		start := time.Now()
		c.Cmd("PASS "+password, 530)
		took := time.Since(start)
		c.Cmd("QUIT", 221)
		return took
	}
	slow := fail(pamOK.name, wrong)
	t.Logf("wrong password, from PAM: %v", slow)

	// The repeats: each a session of its own, all at once.
	const repeats = 40
	var wg sync.WaitGroup
	errs := make(chan error, repeats)
	for range repeats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- failRaw(m.Addr(), pamOK.name, wrong)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(m.Log(), "event=authn-cache-hit"); n < repeats/2 {
		t.Fatalf("only %d cache hits among %d repeats: the test does not test the cache", n, repeats)
	}

	const pamShortestDelay = 1500 * time.Millisecond
	for i := range 3 {
		took := fail(pamExpired.name, pamExpired.password)
		t.Logf("expired account, right password, after the repeats (%d): %v", i+1, took)
		if took < pamShortestDelay-50*time.Millisecond {
			t.Errorf("the expired account's right password was refused in %v, a wrong one in %v: "+
				"the timing tells them apart", took, slow)
		}
	}
}

// failRaw logs in as user with a wrong password on a connection of its
// own and expects 530; safe to call from any goroutine.
func failRaw(addr, user, password string) error {
	conn, err := net.DialTimeout("tcp", addr, testharness.IOTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(conn)
	for _, step := range []struct{ send, want string }{
		{"", "220"}, {"USER " + user + "\r\n", "250"}, {"PASS " + password + "\r\n", "530"}, {"QUIT\r\n", "221"},
	} {
		if step.send != "" {
			if _, err := io.WriteString(conn, step.send); err != nil {
				return err
			}
		}
		l, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("after %q: %v", step.send, err)
		}
		if !strings.HasPrefix(l, step.want) {
			return fmt.Errorf("after %q: %q, want %s", step.send, l, step.want)
		}
	}
	return nil
}
