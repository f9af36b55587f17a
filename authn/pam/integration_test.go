//go:build pam && integration

package pam

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testenv"
)

// These tests go through the host's real PAM stack, /etc/pam.d and
// /etc/shadow, as set up by test/setup.d/20-pam.sh (run as root).

// The fixtures of test/setup.d/20-pam.sh.
const (
	okUser      = "mppd-pam-ok"
	okPass      = "Pam-ok-4711"
	lockedUser  = "mppd-pam-locked"
	lockedPass  = "Pam-locked-4711"
	expiredUser = "mppd-pam-expired"
	expiredPass = "Pam-exp-4711"
	rhostLog    = "/run/mppd-test/rhost.log"
)

// needSystem stops t unless it runs as root on a machine prepared by the
// setup script.
func needSystem(t *testing.T) {
	t.Helper()
	testenv.NeedPAMService(t, "mppd-test", "mppd-test-deny", "mppd-test-rhost")
	testenv.NeedUsers(t, "20-pam.sh", okUser, lockedUser, expiredUser)
}

// newSystem returns a backend on the system's /etc/pam.d.
func newSystem(t *testing.T, service string, change func(*config.PAM)) (*Backend, *testenv.LogBuffer) {
	t.Helper()
	needSystem(t)
	cfg := config.DefaultPAM()
	cfg.Service = service
	cfg.MailDomain = "example.org"
	if change != nil {
		change(&cfg)
	}
	logs := &testenv.LogBuffer{}
	b, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitIdle(t, b, 30*time.Second) })
	return b, logs
}

func TestSystemRightPassword(t *testing.T) {
	b, _ := newSystem(t, "mppd-test", nil)
	start := time.Now()
	id, err := login(b, okUser, okPass, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("successful pam_unix login took %s", time.Since(start))
	if id.Login != okUser || id.Account != okUser || id.Addresses[0] != okUser+"@example.org" {
		t.Fatalf("identity = %+v", id)
	}
}

// Every refusal through pam_unix is bad credentials (530); the log reason
// says which. pam_unix cannot tell a locked account (its hash starts with
// '!') from a wrong password: both are PAM_AUTH_ERR from pam_authenticate.
func TestSystemRefusals(t *testing.T) {
	b, logs := newSystem(t, "mppd-test", nil)
	for _, tc := range []struct {
		name, user, pass, reason string
	}{
		{"wrong password", okUser, "not-" + okPass, "bad-password"},
		{"unknown user", "mppd-pam-nosuchuser", okPass, "unknown-user"},
		{"locked", lockedUser, lockedPass, "bad-password"},
		{"expired", expiredUser, expiredPass, "account-expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := login(b, tc.user, tc.pass, "127.0.0.1")
			wantRejected(t, err, tc.reason)
			t.Logf("%s: %v (took %s)", tc.name, err, time.Since(start))
		})
	}
	for _, pw := range []string{okPass, lockedPass, expiredPass} {
		if strings.Contains(logs.String(), pw) {
			t.Fatalf("a password reached the log:\n%s", logs)
		}
	}
}

func TestSystemDenyService(t *testing.T) {
	b, _ := newSystem(t, "mppd-test-deny", nil)
	_, err := login(b, okUser, okPass, "127.0.0.1")
	wantRejected(t, err, "bad-password")
}

// A service without a file: libpam applies /etc/pam.d/other. On Debian,
// "other" includes the common-auth/common-account policy, so the system's
// users log in exactly as through any other service; on RHEL and Fedora
// "other" is pam_deny and every login is refused. mppd warns at start-up.
func TestSystemMissingServiceFallsBackToOther(t *testing.T) {
	b, logs := newSystem(t, "mppd-test-missing", nil)
	if !strings.Contains(logs.String(), "no policy file") {
		t.Errorf("no start-up warning:\n%s", logs)
	}
	other, err := os.ReadFile("/etc/pam.d/other")
	if err != nil {
		t.Fatalf("no /etc/pam.d/other: %v", err)
	}
	_, err = login(b, okUser, okPass, "127.0.0.1")
	switch {
	case strings.Contains(string(other), "@include common-auth"): // Debian
		if err != nil {
			t.Fatalf("Debian's other should apply the common policy: %v", err)
		}
		_, err = login(b, okUser, "not-"+okPass, "127.0.0.1")
		wantRejected(t, err, "bad-password")
	case strings.Contains(string(other), "pam_deny"): // RHEL
		if !authn.IsBadCredentials(err) {
			t.Fatalf("RHEL's other should deny: %v", err)
		}
	default:
		t.Fatalf("unknown /etc/pam.d/other; result %v:\n%s", err, other)
	}
}

// pam_access refuses 192.0.2.66 by address: PAM_RHOST reached it.
func TestSystemRhostPamAccess(t *testing.T) {
	b, _ := newSystem(t, "mppd-test", nil)
	_, err := login(b, okUser, okPass, "192.0.2.66")
	wantRejected(t, err, "permission-denied")
	if _, err := login(b, okUser, okPass, "192.0.2.67"); err != nil {
		t.Fatalf("from another address: %v", err)
	}
}

// pam_exec sees the exact PAM_RHOST.
func TestSystemRhostPamExec(t *testing.T) {
	b, _ := newSystem(t, "mppd-test-rhost", nil)
	// Other tests (test/e2e) may append to the log at the same time: look
	// only at what was added, for lines naming these addresses.
	var offset int64
	if st, err := os.Stat(rhostLog); err == nil {
		offset = st.Size()
	}
	clients := []string{"198.51.100.23", "2001:db8::23"}
	for _, client := range clients {
		if _, err := login(b, okUser, okPass, client); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(rhostLog)
	if err != nil {
		t.Fatal(err)
	}
	added := string(data[min(offset, int64(len(data))):])
	for _, client := range clients {
		if !strings.Contains(added, okUser+" "+client+"\n") {
			t.Errorf("pam_exec did not record PAM_RHOST %s; it recorded:\n%s", client, added)
		}
	}
}

// statusField returns a field of /proc/self/status, such as VmHWM.
func statusField(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// 50 logins at once through pam_unix, more than the pool: all succeed, and
// afterwards every transaction has ended and no thread, goroutine or file
// descriptor is left behind.
func TestSystemConcurrentLogins(t *testing.T) {
	const n, workers = 50, 16
	b, _ := newSystem(t, "mppd-test", func(c *config.PAM) {
		c.Workers = workers
		// Generous bounds: this test is about the pool's bookkeeping, not
		// speed, and yescrypt on a loaded 2-core machine is slow.
		c.Timeout = config.Duration(60 * time.Second)
		c.QueueTimeout = config.Duration(120 * time.Second)
	})
	if _, err := login(b, okUser, okPass, "127.0.0.1"); err != nil { // warm up
		t.Fatal(err)
	}
	waitIdle(t, b, 10*time.Second)
	before := b.Stats()
	fds, goroutines, thr := countFDs(t), runtime.NumGoroutine(), threads(t)

	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = login(b, okUser, okPass, fmt.Sprintf("127.0.0.%d", i+1))
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("login %d: %v", i, err)
		}
	}
	waitIdle(t, b, 10*time.Second)
	after := b.Stats()
	if after.Started-before.Started != n || after.Ended-before.Ended != n || after.InFlight != 0 {
		t.Errorf("stats before %+v after %+v", before, after)
	}
	// Workers free their slots just before their goroutines and threads
	// end: poll rather than sleep a fixed time.
	if !eventually(func() bool { return countFDs(t) <= fds }) {
		t.Errorf("file descriptors: %d before, %d after", fds, countFDs(t))
	}
	if !eventually(func() bool { return runtime.NumGoroutine() <= goroutines+2 }) {
		t.Errorf("goroutines: %d before, %d after", goroutines, runtime.NumGoroutine())
	}
	if !eventually(func() bool { return threads(t) <= thr+2 }) {
		t.Errorf("threads: %d before, %d after", thr, threads(t))
	}
	t.Logf("%d concurrent pam_unix logins on %d workers: %s (%s per login, %.1f logins/s); peak RSS %s",
		n, workers, took, took/n, float64(n)/took.Seconds(), statusField(t, "VmHWM"))
}

// What mppd needs to check other users' passwords with pam_unix: the test
// binary runs itself as nobody, without and with the shadow group.
func TestSystemPrivilegeNeeded(t *testing.T) {
	needSystem(t)
	uid, gid := testenv.Nobody(t)
	shadow, err := user.LookupGroup("shadow")
	if err != nil {
		testenv.Missing(t, "group shadow", "Debian's passwd package creates it")
	}
	sgid, _ := strconv.Atoi(shadow.Gid)

	// A copy of the test binary that nobody can execute.
	bin := testenv.CopyTestBinary(t)

	run := func(groups ...uint32) string {
		cmd := exec.Command(bin)
		cmd.Dir = "/"
		cmd.Env = []string{helperEnv + "=1", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		testenv.AsUser(cmd, uid, gid, groups...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	plain := run()
	withShadow := run(uint32(sgid))
	t.Logf("as nobody: %s", plain)
	t.Logf("as nobody in group shadow: %s", withShadow)
	if !strings.HasPrefix(withShadow, "right=ok wrong=bad-password") {
		t.Errorf("in group shadow: %s, want the right password accepted and the wrong one refused", withShadow)
	}
	if strings.HasPrefix(plain, "right=ok") {
		t.Errorf("without root or shadow, pam_unix checked another user's password: %s", plain)
	}
	if !strings.Contains(plain, "cannot read /etc/shadow") {
		t.Errorf("no start-up warning without shadow access: %s", plain)
	}
}

func init() {
	// Run as the helper: one right and one wrong login for okUser through
	// mppd-test, printed as "right=<reason> wrong=<reason>", then the
	// start-up warnings.
	helperMain = func() {
		var warnings strings.Builder
		cfg := config.DefaultPAM()
		cfg.Service = "mppd-test"
		cfg.MailDomain = "example.org"
		cfg.Timeout = config.Duration(20 * time.Second)
		b, err := New(cfg, slog.New(slog.NewTextHandler(&warnings, nil)))
		if err != nil {
			fmt.Println("new:", err)
			return
		}
		_, right := b.Authenticate(context.Background(), authn.Request{User: okUser, Password: okPass, Client: "127.0.0.1"})
		_, wrong := b.Authenticate(context.Background(), authn.Request{User: okUser, Password: "not-" + okPass, Client: "127.0.0.1"})
		fmt.Printf("right=%s wrong=%s\n%v\n%v\n%s", reasonOf(right), reasonOf(wrong), right, wrong, warnings.String())
	}
}
