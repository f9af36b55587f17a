//go:build integration

// These tests switch credentials (they need root) and submit through the
// real Postfix that test/setup.d/40-postfix.sh installs, as its test users
// mppd-mta1 and mppd-mta2. Under CI a missing piece fails them.

package sendmail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testenv"
)

func mustAccount(t *testing.T, name string) account {
	t.Helper()
	a, err := lookupNSS(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newBackend(t *testing.T, cfg config.Sendmail) (*Backend, *testenv.LogBuffer) {
	t.Helper()
	lb := &testenv.LogBuffer{}
	b, err := New(cfg, slog.New(slog.NewTextHandler(lb, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b, lb
}

// recorderBackend is a backend whose sendmail is the recording stand-in,
// in a fresh directory the test users can write (readRecord's dir).
func recorderBackend(t *testing.T) (b *Backend, logs *testenv.LogBuffer, dir string) {
	t.Helper()
	dir = testenv.OpenTempDir(t)
	cfg := config.DefaultSendmail()
	cfg.Path = installRecorder(t, dir)
	b, logs = newBackend(t, cfg)
	return b, logs, dir
}

func userEnvelope(acct, sender string, rcpts ...string) delivery.Envelope {
	return delivery.Envelope{
		Sender:     sender,
		Recipients: rcpts,
		Login:      acct,
		Account:    acct,
		Session:    "it",
	}
}

// TestIntegrationChildCredentials: the child runs as the account's uid,
// primary gid and exactly its NSS groups, with the fixed environment, in
// "/", with fds 0-2 only, in its own process group, without core dumps.
func TestIntegrationChildCredentials(t *testing.T) {
	testenv.NeedPostfix(t)
	b, _, dir := recorderBackend(t)
	// mppd's main sets it (cmd/mppd); the child must inherit it.
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
		t.Fatal(err)
	}
	acct := mustAccount(t, "mppd-mta1")
	env := testEnvelope()
	env.Account = "mppd-mta1"
	if err := b.Deliver(context.Background(), env, strings.NewReader(testMessage)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	r := readRecord(t, dir)
	if r == nil {
		t.Fatal("the stand-in did not run")
	}
	checkRecord(t, r, filepath.Join(dir, recorderName), acct)
	if r.UID != int(acct.UID) || r.EUID != int(acct.UID) || r.GID != int(acct.GID) || r.EGID != int(acct.GID) {
		t.Errorf("uid/euid/gid/egid = %d/%d/%d/%d, want %d/%d", r.UID, r.EUID, r.GID, r.EGID, acct.UID, acct.GID)
	}
	var want []int
	for _, g := range acct.Groups {
		want = append(want, int(g))
	}
	slices.Sort(want)
	got := slices.Clone(r.Groups)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("groups = %v, want the NSS groups %v", got, want)
	}
	if slices.Contains(got, 0) {
		t.Error("the child kept root's group 0")
	}
	grp := mustGroup(t, "mppd-mtagrp")
	if !slices.Contains(got, grp) {
		t.Errorf("supplementary group mppd-mtagrp (%d) missing from %v", grp, got)
	}
	// Started as root (which holds CAP_SETPCAP): nothing at all, the
	// bounding set included.
	for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd"} {
		if v := r.Caps[c]; v != "0000000000000000" {
			t.Errorf("the child's %s is %q, want all zero", c, v)
		}
	}
}

func mustGroup(t *testing.T, name string) int {
	t.Helper()
	out, err := exec.Command("getent", "group", name).Output()
	if err != nil {
		t.Fatalf("getent group %s: %v", name, err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	gid, err := strconv.Atoi(f[2])
	if err != nil {
		t.Fatal(err)
	}
	return gid
}

// TestIntegrationFaultsAsUser runs the fault stand-ins (exit codes, signal,
// hang with a grandchild, stderr flood) as mppd-mta1 with credentials
// switched, so killing the process group works across the uid change.
func TestIntegrationFaultsAsUser(t *testing.T) {
	testenv.NeedPostfix(t)
	dir := testenv.OpenTempDir(t)
	b, logs := newBackend(t, config.DefaultSendmail())
	runFaultCases(t, b, logs, dir, userEnvelope("mppd-mta1", "mppd-mta1@mppd.test", "mppd-mta2@localhost"))
}

// TestIntegrationRefusedAccounts: uid 0, system accounts, nobody and
// users with no local account are refused before anything runs.
func TestIntegrationRefusedAccounts(t *testing.T) {
	testenv.NeedPostfix(t)
	b, logs, dir := recorderBackend(t)
	for acct, reason := range map[string]string{
		"root": "uid-zero", "daemon": "uid-below-min", "nobody": "uid-overflow",
		"": "no-account", "mppd-no-such-user": "no-account",
	} {
		env := userEnvelope(acct, "x@mppd.test", "mppd-mta1@localhost")
		err := b.Deliver(context.Background(), env, strings.NewReader(testMessage))
		if !delivery.IsPermanent(err) || delivery.Reason(err) != reason {
			t.Errorf("account %q: Deliver = %v, want permanent %s", acct, err, reason)
		}
		if !strings.Contains(logs.String(), "reason="+reason) {
			t.Errorf("account %q: no log line with reason=%s", acct, reason)
		}
	}
	if r := readRecord(t, dir); r != nil {
		t.Fatalf("the stand-in ran as uid %d", r.UID)
	}
	for _, fb := range []string{"root", "daemon", "nobody", "mppd-no-such-user"} {
		cfg := config.DefaultSendmail()
		cfg.FallbackAccount = fb
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "fallback_account") {
			t.Errorf("New(fallback_account = %q) = %v, want an error", fb, err)
		}
	}
}

// TestIntegrationPrivilegedGroups: accounts of test/setup.d/20-pam.sh that
// are supplementary members of root and of shadow, resolved through the
// real NSS, are refused before anything runs, as the fallback account too.
func TestIntegrationPrivilegedGroups(t *testing.T) {
	testenv.NeedPostfix(t)
	testenv.NeedUsers(t, "20-pam.sh", "mppd-pam-wheel", "mppd-pam-shadow")
	dir := testenv.OpenTempDir(t)
	cfg := config.DefaultSendmail()
	cfg.Path = installRecorder(t, dir)
	b, logs := newBackend(t, cfg)
	for _, acct := range []string{"mppd-pam-wheel", "mppd-pam-shadow"} {
		env := userEnvelope(acct, acct+"@mppd.test", "mppd-mta1@localhost")
		err := b.Deliver(context.Background(), env, strings.NewReader(testMessage))
		if !delivery.IsPermanent(err) || delivery.Reason(err) != "privileged-group" {
			t.Errorf("account %q: Deliver = %v, want permanent privileged-group", acct, err)
		}
	}
	if n := strings.Count(logs.String(), "reason=privileged-group"); n != 2 {
		t.Errorf("%d log lines with reason=privileged-group, want 2:\n%s", n, logs)
	}
	if r := readRecord(t, dir); r != nil {
		t.Fatalf("the stand-in ran as uid %d", r.UID)
	}
	// An ordinary account still submits.
	env := userEnvelope("mppd-mta2", "mppd-mta2@mppd.test", "mppd-mta1@localhost")
	if err := b.Deliver(context.Background(), env, strings.NewReader(testMessage)); err != nil {
		t.Fatalf("mppd-mta2: Deliver: %v", err)
	}
	if r := readRecord(t, dir); r == nil || uint32(r.UID) != mustAccount(t, "mppd-mta2").UID {
		t.Fatalf("mppd-mta2: the stand-in ran as %+v", r)
	}
	// The list is configurable: without shadow on it, its member submits.
	os.Remove(filepath.Join(dir, "record.json")) // mppd-mta2's, not writable by the next
	cfg.PrivilegedGroups = []string{"root"}
	b, _ = newBackend(t, cfg)
	env = userEnvelope("mppd-pam-shadow", "mppd-pam-shadow@mppd.test", "mppd-mta1@localhost")
	if err := b.Deliver(context.Background(), env, strings.NewReader(testMessage)); err != nil {
		t.Fatalf("privileged_groups = [\"root\"], mppd-pam-shadow: Deliver: %v", err)
	}
	if r := readRecord(t, dir); r == nil || uint32(r.UID) != mustAccount(t, "mppd-pam-shadow").UID {
		t.Fatalf("mppd-pam-shadow: the stand-in ran as %+v", r)
	}
	// Such an account cannot be the fallback either.
	cfg = config.DefaultSendmail()
	cfg.FallbackAccount = "mppd-pam-wheel"
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "privileged-group") && !strings.Contains(err.Error(), "fallback_account") {
		t.Errorf("New(fallback_account = mppd-pam-wheel) = %v, want an error", err)
	}
}

// TestIntegrationBadAddressesNoProcess: with credential switching on, a
// hostile address still never gets near a process.
func TestIntegrationBadAddressesNoProcess(t *testing.T) {
	testenv.NeedPostfix(t)
	b, _, dir := recorderBackend(t)
	for _, bad := range []string{"-oQ/tmp/q", "-bv", "a b@localhost", "mppd-mta2@localhost\n-X/tmp/x", "mppd-mta2@localhost\r", `"-C/tmp/x"@localhost`} {
		err := b.Deliver(context.Background(), userEnvelope("mppd-mta1", "mppd-mta1@mppd.test", "mppd-mta2@localhost", bad), strings.NewReader(testMessage))
		if !delivery.IsPermanent(err) {
			t.Errorf("%q: Deliver = %v, want permanent", bad, err)
		}
	}
	if r := readRecord(t, dir); r != nil {
		t.Fatalf("the stand-in ran with %q", r.Args)
	}
}

func TestIntegrationMissingSendmail(t *testing.T) {
	testenv.NeedPostfix(t)
	cfg := config.DefaultSendmail()
	cfg.Path = "/nonexistent/sendmail"
	b, logs := newBackend(t, cfg)
	env := userEnvelope("mppd-mta1", "mppd-mta1@mppd.test", "mppd-mta2@localhost")
	err := b.Deliver(context.Background(), env, strings.NewReader(testMessage))
	if outcome(err) != "temp:exec" {
		t.Errorf("Deliver = %v, want temporary exec", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("no error log line:\n%s", logs)
	}
}

// token returns a random marker for finding a test's message.
func token(t *testing.T) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "mppd-it-" + hex.EncodeToString(b[:])
}

// body returns what follows the header block.
func body(msg string) string {
	_, b, _ := strings.Cut(msg, "\n\n")
	return b
}

var receivedUID = regexp.MustCompile(`\(Postfix, from userid (\d+)\)`)

// checkTrace checks Postfix's own trace: the submitting uid and the
// Return-Path (the envelope sender).
func checkTrace(t *testing.T, msg string, uid uint32, sender string) {
	t.Helper()
	m := receivedUID.FindStringSubmatch(msg)
	if m == nil {
		t.Errorf("no Postfix 'from userid' trace in:\n%s", msg)
	} else if m[1] != strconv.Itoa(int(uid)) {
		t.Errorf("Postfix saw userid %s, want %d", m[1], uid)
	}
	if !strings.HasPrefix(msg, "Return-Path: <"+sender+">\n") {
		t.Errorf("Return-Path is not <%s>:\n%.300s", sender, msg)
	}
}

// TestIntegrationPostfix submits through the real Postfix as mppd-mta1 to
// both test users and checks what lands in their Maildirs.
func TestIntegrationPostfix(t *testing.T) {
	testenv.NeedPostfix(t)
	b, _ := newBackend(t, config.DefaultSendmail())
	tok := token(t)
	text := "line one\n.\n..\n.hidden\n...\nQUIT\n\n" + strings.Repeat("0123456789", 200) + "\nlast line\n"
	msg := "From: mppd-mta1@mppd.test\nTo: mppd-mta1@localhost, mppd-mta2@localhost\nSubject: " + tok +
		"\nMessage-ID: <" + tok + "@mppd.test>\n\n" + text
	env := userEnvelope("mppd-mta1", "mppd-mta1@mppd.test", "mppd-mta1@localhost", "mppd-mta2@localhost")
	start := time.Now()
	if err := b.Deliver(context.Background(), env, strings.NewReader(msg)); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	t.Logf("Deliver (sendmail exit 0) took %s", time.Since(start))
	uid := mustAccount(t, "mppd-mta1").UID
	for _, u := range []string{"mppd-mta1", "mppd-mta2"} {
		got := testenv.WaitPostfixMessage(t, u, tok)
		if body(got) != text {
			t.Errorf("%s: body changed:\ngot  %q\nwant %q", u, body(got), text)
		}
		checkTrace(t, got, uid, "mppd-mta1@mppd.test")
	}
	t.Logf("delivered to both Maildirs %s after the start of Deliver", time.Since(start))
}

// TestIntegrationFallbackAccount: a user with no local account submits as
// the fallback account; the envelope sender stays the user's address.
func TestIntegrationFallbackAccount(t *testing.T) {
	testenv.NeedPostfix(t)
	cfg := config.DefaultSendmail()
	cfg.FallbackAccount = "mppd-mta2"
	b, _ := newBackend(t, cfg)
	for _, acct := range []string{"", "mppd-no-such-user"} {
		tok := token(t)
		msg := "From: dir.user@mppd.test\nTo: mppd-mta1@localhost\nSubject: " + tok + "\n\nhello\n"
		env := userEnvelope(acct, "dir.user@mppd.test", "mppd-mta1@localhost")
		if err := b.Deliver(context.Background(), env, strings.NewReader(msg)); err != nil {
			t.Fatalf("account %q: Deliver: %v", acct, err)
		}
		got := testenv.WaitPostfixMessage(t, "mppd-mta1", tok)
		checkTrace(t, got, mustAccount(t, "mppd-mta2").UID, "dir.user@mppd.test")
	}
}

// TestIntegrationLargeMessageFromFile: a spilled (file) message of a few
// MB goes to Postfix unchanged.
func TestIntegrationLargeMessageFromFile(t *testing.T) {
	testenv.NeedPostfix(t)
	b, _ := newBackend(t, config.DefaultSendmail())
	tok := token(t)
	var sb strings.Builder
	for i := 0; sb.Len() < 3<<20; i++ {
		fmt.Fprintf(&sb, "%08d %s\n", i, strings.Repeat("x", 70))
	}
	text := sb.String()
	f, err := os.CreateTemp(t.TempDir(), "msg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("From: mppd-mta1@mppd.test\nTo: mppd-mta2@localhost\nSubject: " + tok + "\n\n" + text)
	f.Seek(0, 0)
	os.Remove(f.Name())
	env := userEnvelope("mppd-mta1", "mppd-mta1@mppd.test", "mppd-mta2@localhost")
	if err := b.Deliver(context.Background(), env, f); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got := testenv.WaitPostfixMessage(t, "mppd-mta2", tok); body(got) != text {
		t.Errorf("body of %d bytes changed (got %d bytes)", len(text), len(body(got)))
	}
}

// TestIntegrationSubmissionTime reports the time per submission through
// real Postfix (sendmail's run, as the user).
func TestIntegrationSubmissionTime(t *testing.T) {
	testenv.NeedPostfix(t)
	b, _ := newBackend(t, config.DefaultSendmail())
	const n = 20
	env := userEnvelope("mppd-mta1", "mppd-mta1@mppd.test", "mppd-mta2@localhost")
	tok := token(t)
	start := time.Now()
	for i := range n {
		msg := fmt.Sprintf("From: mppd-mta1@mppd.test\nTo: mppd-mta2@localhost\nSubject: %s-%d\n\nbody %d\n", tok, i, i)
		if err := b.Deliver(context.Background(), env, strings.NewReader(msg)); err != nil {
			t.Fatalf("Deliver %d: %v", i, err)
		}
	}
	per := time.Since(start) / n
	testenv.WaitPostfixMessage(t, "mppd-mta2", fmt.Sprintf("%s-%d", tok, n-1))
	t.Logf("%d sequential submissions: %s each (sendmail -i as mppd-mta1 until exit 0)", n, per)
}

// TestIntegrationStartRefusedWithoutPrivilege: mppd running as an ordinary
// user (no CAP_SETUID/CAP_SETGID) with switch_user on refuses to start and
// says why. The test binary plays mppd, run as mppd-mta1.
func TestIntegrationStartRefusedWithoutPrivilege(t *testing.T) {
	testenv.NeedPostfix(t)
	dir := testenv.OpenTempDir(t)
	bin := testenv.InstallTestBinary(t, dir, privcheckName)
	acct := mustAccount(t, "mppd-mta1")
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + childPath}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: acct.UID, Gid: acct.GID, Groups: acct.Groups}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("New succeeded as uid %d without privileges: %s", acct.UID, out)
	}
	for _, want := range []string{"switch_user", "CAP_SETUID", "CAP_SETGID"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("refusal %q does not mention %s", out, want)
		}
	}
}

// TestIntegrationNonRoot: mppd's non-root mode, an ordinary user with
// ambient CAP_SETUID, CAP_SETGID and CAP_KILL. The sendmail it runs as
// another user holds no capability at all (a plain exec would have passed
// the ambient ones on, and the child could setuid(0)), and a child that
// hangs is killed at the timeout across the uid change.
func TestIntegrationNonRoot(t *testing.T) {
	testenv.NeedPostfix(t)
	dir := testenv.OpenTempDir(t)
	installRecorder(t, dir)
	helper := testenv.InstallTestBinary(t, dir, nonrootName)
	writeScript(t, dir, "hang.sh", "echo $$ >"+dir+"/hang.pid\nexec sleep 3600")
	cmd := exec.Command(helper)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}},
		AmbientCaps: []uintptr{capSetUID, capSetGID, capKill},
	}
	out, err := cmd.CombinedOutput()
	t.Logf("helper:\n%s", out)
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	if !strings.Contains(string(out), "record: ok") {
		t.Fatal("the delivery through the recorder failed")
	}
	r := readRecord(t, dir)
	if r == nil {
		t.Fatal("the recorder did not run")
	}
	if acct := mustAccount(t, "mppd-mta1"); r.UID != int(acct.UID) || r.EUID != int(acct.UID) {
		t.Errorf("the child ran as uid %d/%d, want mppd-mta1 (%d)", r.UID, r.EUID, acct.UID)
	}
	for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		if v := r.Caps[c]; v != "0000000000000000" {
			t.Errorf("the child's %s is %q, want all zero", c, v)
		}
	}
	if !regexp.MustCompile(`hang: temp:timeout [0-9.]+s`).Match(out) {
		t.Error("the hung child was not stopped at the timeout")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "hang.pid")); err != nil {
		t.Errorf("hang.sh did not run: %v", err)
	} else {
		checkGone(t, strings.TrimSpace(string(b)))
	}
}
