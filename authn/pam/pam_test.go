//go:build pam

package pam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
	"weak"

	libpam "github.com/msteinert/pam/v2"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testenv"
)

// The unit tests run the real libpam with stacks written to a temporary
// directory (pam_start_confdir, no root needed). Besides the stock modules
// (pam_permit, pam_deny) they use pam_mppdtest, a small module built here
// from testdata/pam_mppdtest.c, which can prompt, check a password, report
// PAM_RHOST and its thread, rewrite PAM_USER, sleep and return any code.

const helperEnv = "MPPD_PAM_TEST_HELPER"

var (
	moduleOnce sync.Once
	modulePath string
	moduleErr  error
	moduleDir  string
)

// helperMain, when set (by the integration tests) and the environment asks
// for it, runs instead of the tests: the test binary re-executed as another
// user.
var helperMain func()

func TestMain(m *testing.M) {
	if helperMain != nil && os.Getenv(helperEnv) != "" {
		helperMain()
		os.Exit(0)
	}
	code := m.Run()
	if moduleDir != "" {
		os.RemoveAll(moduleDir)
	}
	os.Exit(code)
}

// testModule returns the path of the built pam_mppdtest.so.
func testModule(t *testing.T) string {
	t.Helper()
	moduleOnce.Do(func() {
		cc, err := exec.LookPath("gcc")
		if err != nil {
			moduleErr = err
			return
		}
		moduleDir, moduleErr = os.MkdirTemp("", "mppd-pamtest-")
		if moduleErr != nil {
			return
		}
		modulePath = filepath.Join(moduleDir, "pam_mppdtest.so")
		out, err := exec.Command(cc, "-Wall", "-shared", "-fPIC", "-o", modulePath,
			"testdata/pam_mppdtest.c", "-lpam").CombinedOutput()
		if err != nil {
			moduleErr = fmt.Errorf("building pam_mppdtest: %v\n%s", err, out)
		}
	})
	if moduleErr != nil {
		if errors.Is(moduleErr, exec.ErrNotFound) {
			testenv.Missing(t, "gcc", "install gcc and libpam0g-dev (test/setup.d/20-pam.sh)")
		}
		t.Fatal(moduleErr)
	}
	return modulePath
}

// newUnit writes stack (with MOD standing for the test module's path) as
// the service "mppd-unit" in a temporary directory and returns a backend
// reading it. change may adjust the config.
func newUnit(t *testing.T, stack string, change func(*config.PAM)) (*Backend, *testenv.LogBuffer) {
	t.Helper()
	if !libpam.CheckPamHasStartConfdir() {
		testenv.Missing(t, "pam_start_confdir (Linux-PAM >= 1.4)", "use Debian 12 or later")
	}
	if strings.Contains(stack, "MOD") {
		stack = strings.ReplaceAll(stack, "MOD", testModule(t))
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mppd-unit"), []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultPAM()
	cfg.Service = "mppd-unit"
	cfg.MailDomain = "example.org"
	if change != nil {
		change(&cfg)
	}
	logs := &testenv.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := newBackend(cfg, log, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitIdle(t, b, 10*time.Second) })
	return b, logs
}

// eventually polls cond for up to 10 s (what ends at once on an idle
// machine may lag on a loaded one) and reports whether it came true.
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitIdle waits until no transaction holds a worker and checks that every
// started transaction ended.
func waitIdle(t *testing.T, b *Backend, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for b.Stats().InFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("transactions still running after %s: %+v", limit, b.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := b.Stats(); s.Started != s.Ended {
		t.Fatalf("leaked transactions: %+v", s)
	}
}

func login(b *Backend, user, password, client string) (authn.Identity, error) {
	return b.Authenticate(context.Background(), authn.Request{User: user, Password: password, Client: client, Session: testSession})
}

// testSession is the session id login passes; the backend's lines carry it.
const testSession = "5e5510n1d0"

// wantRejected checks err is bad credentials with reason.
func wantRejected(t *testing.T, err error, reason string) {
	t.Helper()
	if !authn.IsBadCredentials(err) || authn.Reason(err) != reason {
		t.Fatalf("err = %v (reason %q), want bad credentials %q", err, authn.Reason(err), reason)
	}
}

// wantUnavailable checks err is "unavailable" with reason.
func wantUnavailable(t *testing.T, err error, reason string) {
	t.Helper()
	var un *authn.UnavailableError
	if !errors.As(err, &un) || un.Reason != reason {
		t.Fatalf("err = %v (reason %q), want unavailable %q", err, authn.Reason(err), reason)
	}
}

const (
	permitStack = "auth required pam_permit.so\naccount required pam_permit.so\n"
	pwStack     = "auth required MOD expect=s3cret\naccount required pam_permit.so\n"
)

func TestPermitStack(t *testing.T) {
	b, _ := newUnit(t, permitStack, nil)
	id, err := login(b, "alice", "anything", "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	if id.Login != "alice" || id.Account != "alice" || len(id.Addresses) != 1 || id.Addresses[0] != "alice@example.org" {
		t.Fatalf("identity = %+v", id)
	}
}

func TestDenyStack(t *testing.T) {
	b, _ := newUnit(t, "auth requisite pam_deny.so\naccount required pam_permit.so\n", nil)
	_, err := login(b, "alice", "anything", "192.0.2.7")
	wantRejected(t, err, "bad-password")
	if !errors.Is(err, libpam.ErrAuth) {
		t.Errorf("err = %v does not wrap PAM_AUTH_ERR", err)
	}

	b, _ = newUnit(t, "auth required pam_permit.so\naccount required pam_deny.so\n", nil)
	_, err = login(b, "alice", "anything", "192.0.2.7")
	wantRejected(t, err, "account-refused")
}

func TestPassword(t *testing.T) {
	b, logs := newUnit(t, pwStack, nil)
	if _, err := login(b, "alice", "s3cret", "192.0.2.7"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	_, err := login(b, "alice", "wrong-Marker-7f3a", "192.0.2.7")
	wantRejected(t, err, "bad-password")
	if strings.Contains(logs.String(), "Marker-7f3a") || strings.Contains(logs.String(), "s3cret") {
		t.Fatalf("a password reached the log:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "reason=bad-password") {
		t.Errorf("refusal not logged:\n%s", logs)
	}
	// Every line about a login carries the engine's session id, and the
	// shared keys (client=, duration=, not ip= or took=).
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if !strings.Contains(line, "session="+testSession+" ") || !strings.Contains(line, " client=192.0.2.7") || !strings.Contains(line, " duration=") {
			t.Errorf("pam line without session=, client= or duration=: %s", line)
		}
	}
}

// The request never reaches C with a NUL (C.CString would cut it short)
// nor with an empty password.
func TestBadInputNeverReachesPAM(t *testing.T) {
	b, _ := newUnit(t, permitStack, nil)
	for _, tc := range []struct {
		req    authn.Request
		reason string
	}{
		{authn.Request{User: "al\x00ice", Password: "pw"}, "bad-user"},
		{authn.Request{User: "", Password: "pw"}, "bad-user"},
		{authn.Request{User: "alice", Password: ""}, "empty-password"},
		{authn.Request{User: "alice", Password: "pw\x00x"}, "bad-password-bytes"},
	} {
		_, err := b.Authenticate(context.Background(), tc.req)
		wantRejected(t, err, tc.reason)
	}
	_, err := b.Authenticate(context.Background(), authn.Request{User: "alice", Password: "pw", Client: "1\x002"})
	wantUnavailable(t, err, "bad-client")
	if s := b.Stats(); s.Started != 0 {
		t.Fatalf("PAM was called: %+v", s)
	}
}

func TestConversation(t *testing.T) {
	t.Run("visible prompt gets the user name", func(t *testing.T) {
		b, _ := newUnit(t, "auth required MOD echoon expect=pw\naccount required pam_permit.so\n", nil)
		if _, err := login(b, "alice", "pw", ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("second hidden prompt is refused", func(t *testing.T) {
		b, logs := newUnit(t, "auth required MOD prompts=2 expect=pw\naccount required pam_permit.so\n", nil)
		_, err := login(b, "alice", "pw", "")
		wantRejected(t, err, "unsupported-prompt")
		if !strings.Contains(err.Error(), "Verification code") {
			t.Errorf("the refused prompt is not named: %v", err)
		}
		if !strings.Contains(logs.String(), "unsupported-prompt") {
			t.Errorf("not logged:\n%s", logs)
		}
	})
	t.Run("a refused prompt does not hide a broken stack", func(t *testing.T) {
		// The optional OTP-like module's prompt is refused, but the stack
		// fails because a required module cannot reach its password
		// database: that is an outage (451), not bad credentials.
		b, _ := newUnit(t, "auth optional MOD prompts=2 expect=pw\nauth required MOD ret="+strconv.Itoa(int(libpam.ErrAuthinfoUnavail))+"\naccount required pam_permit.so\n", nil)
		_, err := login(b, "alice", "pw", "")
		wantUnavailable(t, err, "authinfo-unavailable")
		if !strings.Contains(err.Error(), "Verification code") {
			t.Errorf("the refused prompt is not named: %v", err)
		}
		// Where PAM's code says no more than "no", the refusal is the
		// reason.
		b, _ = newUnit(t, "auth optional MOD prompts=2 expect=pw\nauth required MOD ret="+strconv.Itoa(int(libpam.ErrAuth))+"\naccount required pam_permit.so\n", nil)
		_, err = login(b, "alice", "pw", "")
		wantRejected(t, err, "unsupported-prompt")
	})
	t.Run("info and error texts are logged", func(t *testing.T) {
		b, logs := newUnit(t, "auth required MOD info=hello-from-pam error=trouble-ahead expect=pw\naccount required pam_permit.so\n", nil)
		_, err := login(b, "alice", "nope", "")
		wantRejected(t, err, "bad-password")
		for _, want := range []string{"info: hello-from-pam", "error: trouble-ahead"} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs)
			}
		}
	})
}

// TestCodes drives every PAM result the backend distinguishes through the
// real libpam and checks the class (530 or 451) and the log reason.
func TestCodes(t *testing.T) {
	for _, tc := range []struct {
		stage  string // "auth" or "account"
		code   libpam.Error
		bad    bool // bad credentials (530) rather than unavailable (451)
		reason string
	}{
		{"auth", libpam.ErrAuth, true, "bad-password"},
		{"auth", libpam.ErrUserUnknown, true, "unknown-user"},
		{"auth", libpam.ErrMaxtries, true, "max-tries"},
		{"auth", libpam.ErrAuthinfoUnavail, false, "authinfo-unavailable"},
		{"auth", libpam.ErrCredInsufficient, false, "pam-error"},
		{"auth", libpam.ErrSystem, false, "pam-error"},
		{"auth", libpam.ErrBuf, false, "pam-error"},
		{"account", libpam.ErrAuth, true, "account-refused"},
		{"account", libpam.ErrUserUnknown, true, "unknown-user"},
		{"account", libpam.ErrAcctExpired, true, "account-expired"},
		{"account", libpam.ErrNewAuthtokReqd, true, "password-change-required"},
		{"account", libpam.ErrAuthtokExpired, true, "password-expired"},
		{"account", libpam.ErrPermDenied, true, "permission-denied"},
		{"account", libpam.ErrSystem, false, "pam-error"},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.stage, int(tc.code)), func(t *testing.T) {
			stack := "auth required pam_permit.so\naccount required MOD ret=" + strconv.Itoa(int(tc.code)) + "\n"
			if tc.stage == "auth" {
				stack = "auth required MOD ret=" + strconv.Itoa(int(tc.code)) + "\naccount required pam_permit.so\n"
			}
			b, _ := newUnit(t, stack, nil)
			_, err := login(b, "alice", "pw", "192.0.2.7")
			if tc.bad {
				wantRejected(t, err, tc.reason)
			} else {
				wantUnavailable(t, err, tc.reason)
			}
			if !errors.Is(err, tc.code) {
				t.Errorf("err = %v does not carry PAM code %d", err, int(tc.code))
			}
		})
	}
}

func TestMissingModuleIsUnavailable(t *testing.T) {
	b, _ := newUnit(t, "auth required /nonexistent/pam_nothere.so\naccount required pam_permit.so\n", nil)
	_, err := login(b, "alice", "pw", "")
	if authn.IsBadCredentials(err) || err == nil {
		t.Fatalf("missing module gave %v, want unavailable", err)
	}
	t.Logf("missing module: %v", err)
}

// With a confdir, libpam falls back to <confdir>/other; with none there
// either, pam_start or the first call fails: the backend must say
// unavailable, and warn at start-up.
func TestMissingServiceFile(t *testing.T) {
	dir := t.TempDir()
	cfg := config.DefaultPAM()
	cfg.Service = "mppd-unit"
	cfg.MailDomain = "example.org"
	logs := &testenv.LogBuffer{}
	b, err := newBackend(cfg, slog.New(slog.NewTextHandler(logs, nil)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "no policy file") || !strings.Contains(b.String(), "libpam uses \\\"other\\\"") && !strings.Contains(b.String(), `libpam uses "other"`) {
		t.Errorf("no warning at start-up: log %q, String %q", logs, b)
	}
	_, err = login(b, "alice", "pw", "")
	if err == nil || authn.IsBadCredentials(err) {
		t.Fatalf("no service file and no other: %v, want unavailable", err)
	}
	t.Logf("no service, no other: %v", err)

	// With an "other" that permits, that policy applies.
	if err := os.WriteFile(filepath.Join(dir, "other"), []byte(permitStack), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := login(b, "alice", "pw", ""); err != nil {
		t.Fatalf("fallback to other: %v", err)
	}
	waitIdle(t, b, 5*time.Second)
}

func TestPAMUserIsReadBack(t *testing.T) {
	b, logs := newUnit(t, "auth required MOD expect=pw setuser=bob\naccount required pam_permit.so\n", nil)
	id, err := login(b, "Bob", "pw", "")
	if err != nil {
		t.Fatal(err)
	}
	if id.Login != "bob" || id.Account != "bob" || id.Addresses[0] != "bob@example.org" {
		t.Fatalf("identity = %+v, want the PAM user bob", id)
	}
	if !strings.Contains(logs.String(), "pam_user=bob") {
		t.Errorf("rewrite not logged:\n%s", logs)
	}

	// A PAM user that cannot be a mail address (leading '-') is refused.
	b, _ = newUnit(t, "auth required MOD expect=pw setuser=-oQ/tmp/x\naccount required pam_permit.so\n", nil)
	_, err = login(b, "alice", "pw", "")
	wantRejected(t, err, "bad-pam-user")
}

func TestRhostReachesModule(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rhost")
	b, _ := newUnit(t, "auth required MOD rhost="+file+" expect=pw\naccount required MOD rhost="+file+"\n", nil)
	for _, client := range []string{"192.0.2.7", "2001:db8::1"} {
		if _, err := login(b, "alice", "pw", client); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(file)
	if want := "192.0.2.7\n192.0.2.7\n2001:db8::1\n2001:db8::1\n"; string(got) != want {
		t.Fatalf("PAM_RHOST seen by the module: %q, want %q", got, want)
	}
}

// Every transaction runs pam_authenticate and pam_acct_mgmt on the same OS
// thread, even when many run at once with few Ps (case 72).
func TestOneThreadPerTransaction(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	file := filepath.Join(t.TempDir(), "tid")
	b, _ := newUnit(t, "auth required MOD tid="+file+" expect=pw sleep=5\naccount required MOD tid="+file+"\n",
		func(c *config.PAM) { c.Workers = 8 })
	var n atomic.Int64
	testenv.Concurrently(t, 40, func() error {
		_, err := login(b, fmt.Sprintf("u%d", n.Add(1)), "pw", "")
		return err
	})()
	if t.Failed() {
		t.FailNow()
	}
	data, _ := os.ReadFile(file)
	tids := map[string]map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("bad line %q", line)
		}
		if tids[f[0]] == nil {
			tids[f[0]] = map[string]string{}
		}
		tids[f[0]][f[1]] = f[2]
	}
	if len(tids) != 40 {
		t.Fatalf("%d users recorded, want 40", len(tids))
	}
	for user, m := range tids {
		if m["auth"] == "" || m["auth"] != m["account"] {
			t.Errorf("%s: auth on thread %s, account on thread %s", user, m["auth"], m["account"])
		}
	}
}

// A transaction that outlives the timeout is answered at once; its worker
// stays busy until PAM returns, so with one worker the next login finds
// the pool full and gets "busy" after the queue timeout.
func TestTimeoutKeepsWorkerBusy(t *testing.T) {
	b, logs := newUnit(t, "auth required MOD expect=pw sleep=2500\naccount required pam_permit.so\n", func(c *config.PAM) {
		c.Workers = 1
		c.Timeout = config.Duration(100 * time.Millisecond)
		c.QueueTimeout = config.Duration(50 * time.Millisecond)
	})
	// Answered "at once" means before PAM returned: the transaction is
	// still running when the answer comes (no bound on wall-clock time,
	// which a loaded machine stretches).
	_, err := login(b, "alice", "pw", "")
	wantUnavailable(t, err, "timeout")
	if s := b.Stats(); s.InFlight != 1 || s.Ended != 0 {
		t.Fatalf("stats after timeout = %+v, want the worker still busy", s)
	}
	start := time.Now()
	_, err = login(b, "alice", "pw", "")
	wantUnavailable(t, err, "busy")
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("busy answered after %s, want the queue timeout (50ms)", d)
	}
	if s := b.Stats(); s.InFlight != 1 || s.Ended != 0 {
		t.Fatalf("stats after busy = %+v: the queue waited for the hung worker", s)
	}
	waitIdle(t, b, 5*time.Second)
	if !strings.Contains(logs.String(), "finished after its caller gave up") {
		t.Errorf("late completion not logged:\n%s", logs)
	}
}

func TestQueueWaitsForWorker(t *testing.T) {
	b, _ := newUnit(t, "auth required MOD expect=pw sleep=200\naccount required pam_permit.so\n", func(c *config.PAM) {
		c.Workers = 1
		c.QueueTimeout = config.Duration(5 * time.Second)
	})
	testenv.Concurrently(t, 3, func() error {
		_, err := login(b, "alice", "pw", "")
		return err
	})()
}

func TestCanceledContext(t *testing.T) {
	b, _ := newUnit(t, "auth required MOD expect=pw sleep=500\naccount required pam_permit.so\n", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Authenticate(ctx, authn.Request{User: "alice", Password: "pw"})
	wantUnavailable(t, err, "canceled")

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = b.Authenticate(ctx, authn.Request{User: "alice", Password: "pw"})
	wantUnavailable(t, err, "canceled")
}

// selfStatus returns the number in the field of /proc/self/status (its
// unit, if any, left off).
func selfStatus(t *testing.T, field string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no %s: line", field)
	return 0
}

// threads returns the process's OS thread count.
func threads(t *testing.T) int { return selfStatus(t, "Threads") }

// A flood of slow logins (case 52) never holds more threads than the pool,
// and everything is released afterwards.
func TestThreadsBounded(t *testing.T) {
	const workers = 8
	b, _ := newUnit(t, "auth required MOD expect=pw sleep=50\naccount required pam_permit.so\n", func(c *config.PAM) {
		c.Workers = workers
		c.QueueTimeout = config.Duration(30 * time.Second)
	})
	login(b, "warm", "pw", "") // let the runtime and libpam settle
	waitIdle(t, b, 5*time.Second)
	baseThreads, baseGoroutines := threads(t), runtime.NumGoroutine()

	stop := make(chan struct{})
	peak := make(chan int)
	go func() {
		max := 0
		for {
			select {
			case <-stop:
				peak <- max
				return
			case <-time.After(2 * time.Millisecond):
				if n := threads(t); n > max {
					max = n
				}
			}
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := login(b, fmt.Sprintf("u%d", i), "pw", ""); err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	maxThreads := <-peak
	if len(failed) > 0 {
		t.Fatalf("%d logins failed, first: %v", len(failed), failed[0])
	}
	waitIdle(t, b, 5*time.Second)
	// The pool's threads, plus a few the runtime may add for the callers
	// and the sampler.
	if maxThreads > baseThreads+workers+4 {
		t.Errorf("peak threads %d, baseline %d, workers %d", maxThreads, baseThreads, workers)
	}
	// A worker frees its slot just before its goroutine (and thread) ends.
	if !eventually(func() bool { return runtime.NumGoroutine() <= baseGoroutines+2 }) {
		t.Errorf("goroutines %d after the flood, %d before", runtime.NumGoroutine(), baseGoroutines)
	}
	t.Logf("threads: baseline %d, peak %d, after %d", baseThreads, maxThreads, threads(t))
}

func TestString(t *testing.T) {
	b, _ := newUnit(t, permitStack, nil)
	s := b.String()
	for _, want := range []string{`service="mppd-unit"`, "mail_domain=example.org", "workers=16", "timeout=10s"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q lacks %q", s, want)
		}
	}
}

func TestMapCodeIsTotal(t *testing.T) {
	// Every code not listed as bad credentials is unavailable: a PAM fault
	// must never look like a wrong password.
	bad := map[libpam.Error]bool{
		libpam.ErrAuth: true, libpam.ErrUserUnknown: true, libpam.ErrAcctExpired: true,
		libpam.ErrNewAuthtokReqd: true, libpam.ErrAuthtokExpired: true,
		libpam.ErrPermDenied: true, libpam.ErrMaxtries: true,
	}
	for code := libpam.Error(1); code <= libpam.ErrIncomplete; code++ {
		err := mapCode("authenticate", code, code)
		if authn.IsBadCredentials(err) != bad[code] {
			t.Errorf("code %d (%v): bad credentials = %v", int(code), code, authn.IsBadCredentials(err))
		}
	}
}

// rss returns the process's resident set size in kB.
func rss(t *testing.T) int { return selfStatus(t, "VmRSS") }

// Many transactions that succeed, fail in pam_authenticate, or fail in
// pam_start (case 58): every one is ended, and memory, descriptors and
// threads stay flat. pam_mppdtest's live= counts proves pam_end ran for each
// transaction a module saw. RSS is compared between two equal runs after a
// warm-up (glibc arenas, thread stacks and the Go heap settle during the
// first); a handle left open keeps about 4 kB, measured by skipping pam_end.
func TestNoLeakOverManyTransactions(t *testing.T) {
	const n = 1500
	for _, tc := range []struct {
		name, stack string
		service     bool // write the service file (else pam_start fails)
	}{
		{"success", "auth required MOD live=LIVE\naccount required pam_permit.so\n", true},
		{"missing module", "auth required MOD live=LIVE\nauth required /nonexistent/pam_nothere.so\naccount required pam_permit.so\n", true},
		{"conversation refused", "auth required MOD live=LIVE prompts=2 expect=pw\naccount required pam_permit.so\n", true},
		{"no service file", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b *Backend
			live := filepath.Join(t.TempDir(), "live")
			if tc.service {
				b, _ = newUnit(t, strings.ReplaceAll(tc.stack, "LIVE", live), nil)
			} else {
				cfg := config.DefaultPAM()
				cfg.Service = "mppd-unit"
				cfg.MailDomain = "example.org"
				var err error
				if b, err = newBackend(cfg, nil, t.TempDir()); err != nil {
					t.Fatal(err)
				}
			}
			run := func(k int) time.Duration {
				start := time.Now()
				for range k {
					login(b, "alice", "pw", "192.0.2.7")
				}
				waitIdle(t, b, 5*time.Second)
				runtime.GC()
				return time.Since(start)
			}
			run(n) // warm-up
			fds, thr := countFDs(t), threads(t)
			m1 := rss(t)
			took := run(n)
			m2 := rss(t)
			if !eventually(func() bool { return countFDs(t) <= fds }) {
				t.Errorf("file descriptors: %d before, %d after", fds, countFDs(t))
			}
			if !eventually(func() bool { return threads(t) <= thr+2 }) {
				t.Errorf("threads: %d before, %d after", thr, threads(t))
			}
			if m2 > m1+4096 && !raceEnabled {
				t.Errorf("RSS grew from %d kB to %d kB over %d transactions", m1, m2, n)
			}
			if s := b.Stats(); s.Started != s.Ended || s.Started != 2*n {
				t.Errorf("stats %+v, want %d started and ended", s, 2*n)
			}
			if tc.service {
				data, _ := os.ReadFile(live)
				opened, ended := strings.Count(string(data), "+"), strings.Count(string(data), "-")
				if opened != 2*n || ended != opened {
					t.Errorf("module saw %d transactions, %d ended by pam_end; want %d each", opened, ended, 2*n)
				}
			}
			t.Logf("%d transactions in %s (%s each); RSS %d -> %d kB", n, took, took/n, m1, m2)
		})
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// passwordRetained runs one login with a freshly allocated password and
// reports whether anything still holds that password once the login is
// over and the garbage collector has run.
func passwordRetained(b *Backend) bool {
	pw := strings.Repeat("p", 64) + strconv.Itoa(os.Getpid()) // a new allocation
	w := weak.Make(unsafe.StringData(pw))
	login(b, "alice", pw, "")
	for range 3 {
		runtime.GC()
	}
	return w.Value() != nil
}

// The library deletes its handle on the conversation only in End, which
// does nothing when pam_start failed without a handle (here: no service
// file and no "other"); the conversation then stays reachable for good.
// It must hold no password by then (case 33).
func TestFailedStartKeepsNoPassword(t *testing.T) {
	cfg := config.DefaultPAM()
	cfg.Service = "mppd-unit"
	cfg.MailDomain = "example.org"
	b, err := newBackend(cfg, nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if passwordRetained(b) {
		t.Fatal("the password of a login whose pam_start failed is still in memory")
	}
	waitIdle(t, b, 5*time.Second)
	ok, _ := newUnit(t, permitStack, nil)
	if passwordRetained(ok) {
		t.Fatal("the password of a finished login is still in memory")
	}
}
