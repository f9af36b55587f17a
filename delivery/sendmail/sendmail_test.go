package sendmail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/privdrop"
	"github.com/mppd/mppd/internal/testenv"
)

// recorderName is the file name under which the test binary, copied next
// to a test's files, plays a sendmail that records how it was started.
const recorderName = "sendmail-recorder"

// nonrootName is the file name under which the test binary plays the
// monitor of the non-root mode: started as an ordinary user with ambient
// CAP_SETUID, CAP_SETGID and CAP_KILL, it delivers through the recorder
// next to it and then through hang.sh, printing each outcome.
const nonrootName = "sendmail-nonroot"

// privcheckName is the file name under which the test binary only calls
// New with the default config and prints its error: an integration test
// runs it as an unprivileged user to see the start-up refusal.
const privcheckName = "sendmail-privcheck"

func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case recorderName:
		os.Exit(recorderMain())
	case nonrootName:
		os.Exit(nonrootMain())
	case privcheckName:
		if _, err := New(config.DefaultSendmail(), nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// nonrootMain is the test binary as nonrootName (see TestIntegrationNonRoot).
func nonrootMain() int {
	dir := filepath.Dir(os.Args[0])
	cfg := config.DefaultSendmail()
	cfg.Path = filepath.Join(dir, recorderName)
	cfg.Timeout = config.Duration(time.Second)
	b, err := New(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Println("new:", err)
		return 2
	}
	b.waitDelay = 500 * time.Millisecond
	env := delivery.Envelope{
		Sender:     "mppd-mta1@mppd.test",
		Recipients: []string{"mppd-mta2@localhost"},
		Login:      "mppd-mta1",
		Account:    "mppd-mta1",
		Session:    "it",
	}
	fmt.Println("record:", outcome(b.Deliver(context.Background(), env, strings.NewReader(testMessage))))
	b.cfg.Path = filepath.Join(dir, "hang.sh")
	start := time.Now()
	err = b.Deliver(context.Background(), env, strings.NewReader(testMessage))
	fmt.Println("hang:", outcome(err), time.Since(start).Round(100*time.Millisecond))
	return 0
}

// record is what the recording stand-in sees of its own start.
type record struct {
	Args       []string
	Env        []string
	UID, EUID  int
	GID, EGID  int
	Groups     []int
	Cwd        string
	FDs        []int // open descriptors, 0..1023, but the Go runtime's own
	Pid, Pgid  int
	RlimitCore uint64
	StdinLen   int64
	StdinSHA   string
	StdinDev   uint64 // what stdin is: device and inode
	StdinIno   uint64
	// Caps are the CapInh, CapPrm, CapEff, CapBnd and CapAmb lines of
	// /proc/self/status, in hex.
	Caps map[string]string
}

// recorderMain runs in the copied test binary started by Backend.run. It
// writes record.json next to itself. The descriptors are listed first,
// before this process opens anything of its own.
func recorderMain() int {
	var fds []int
	for fd := 0; fd < 1024; fd++ {
		if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); e != 0 {
			continue
		}
		// The Go runtime (1.25 and later) of this stand-in keeps its
		// cgroup CPU limit files open; those are its own, not inherited.
		if l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); fd > 2 && strings.HasPrefix(l, "/sys/fs/cgroup/") {
			continue
		}
		fds = append(fds, fd)
	}
	r := record{
		Args: os.Args, Env: os.Environ(),
		UID: os.Getuid(), EUID: os.Geteuid(), GID: os.Getgid(), EGID: os.Getegid(),
		Pid: os.Getpid(), Pgid: syscall.Getpgrp(), FDs: fds,
	}
	r.Groups, _ = os.Getgroups()
	r.Cwd, _ = os.Getwd()
	r.Caps = map[string]string{}
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(k, "Cap") {
				r.Caps[k] = strings.TrimSpace(v)
			}
		}
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_CORE, &rl) == nil {
		r.RlimitCore = rl.Cur
	}
	var st syscall.Stat_t
	if syscall.Fstat(0, &st) == nil {
		r.StdinDev, r.StdinIno = uint64(st.Dev), st.Ino
	}
	h := sha256.New()
	r.StdinLen, _ = io.Copy(h, os.Stdin)
	r.StdinSHA = hex.EncodeToString(h.Sum(nil))
	b, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(filepath.Dir(os.Args[0]), "record.json"), b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exTempFail
	}
	return 0
}

// installRecorder copies the test binary into dir as the recording
// stand-in and returns its path.
func installRecorder(t *testing.T, dir string) string {
	t.Helper()
	return testenv.InstallTestBinary(t, dir, recorderName)
}

// readRecord returns the stand-in's record, or nil when it never ran.
func readRecord(t *testing.T, dir string) *record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "record.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// writeScript writes an executable /bin/sh stand-in into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// testAccount is the account the fake lookup hands out in the tests that
// run without root: credentials are not switched there (noCredential), so
// the uid is only checked by the policy.
var testAccount = account{Name: "mppd-test", UID: 5000, GID: 5000, Groups: []uint32{5000}, Home: "/home/mppd-test"}

// newUnprivileged returns a Backend that runs path as this process's own
// user, so the exec, timeout and exit-status machinery can be tested
// without root. The account logic is tested on its own (TestResolve).
func newUnprivileged(t *testing.T, path string) (*Backend, *testenv.LogBuffer) {
	t.Helper()
	cfg := config.DefaultSendmail()
	cfg.Path = path
	cfg.Timeout = config.Duration(10 * time.Second)
	lb := &testenv.LogBuffer{}
	b := &Backend{
		cfg:          cfg,
		log:          slog.New(slog.NewTextHandler(lb, nil)),
		lookup:       func(string) (account, error) { return testAccount, nil },
		waitDelay:    defaultWaitDelay,
		noCredential: true,
		starter:      privdrop.NewStarter(privdrop.Options{}),
	}
	return b, lb
}

func testEnvelope() delivery.Envelope {
	return delivery.Envelope{
		Sender:     "alice@example.org",
		Recipients: []string{"bob@example.org", "carol@example.net"},
		Login:      "alice",
		Account:    "mppd-test",
		Session:    "s1",
	}
}

const testMessage = "From: alice@example.org\nTo: bob@example.org\nSubject: hi\n\nline one\n.\n..\nend\n"

func TestBuildArgv(t *testing.T) {
	const p = "/usr/sbin/sendmail"
	tests := []struct {
		sender string
		rcpts  []string
		want   []string // nil: refused
	}{
		{"a@x.org", []string{"b@y.org"}, []string{p, "-i", "-f", "a@x.org", "--", "b@y.org"}},
		{"a@x.org", []string{"b@y.org", "c@z.org"}, []string{p, "-i", "-f", "a@x.org", "--", "b@y.org", "c@z.org"}},
		{"a@x.org", nil, nil},
		{"", []string{"b@y.org"}, nil},
		{"-oQ/tmp/q", []string{"b@y.org"}, nil},
		{"a@x.org", []string{""}, nil},
		{"a@x.org", []string{"b@y.org", "-oQ/tmp/q"}, nil},
		{"a@x.org", []string{"-X/tmp/pwn.log"}, nil},
		{"a@x.org", []string{"-t@x"}, nil},
		{"a@x.org", []string{"-bh@example.com"}, nil},
		{"a@x.org", []string{`"-C/tmp/evil.cf"@example.com`}, []string{p, "-i", "-f", "a@x.org", "--", `"-C/tmp/evil.cf"@example.com`}}, // argv-safe; the address grammar refuses it (TestDeliverRefusesBadAddresses)
		{"a@x.org", []string{`"attacker\" -oQ/tmp/ -X/var/www/x.php some"@email.com`}, nil},
		{"a@x.org", []string{"b@y.org\n-oQ/tmp"}, nil},
		{"a@x.org", []string{"b@y.org\r"}, nil},
		{"a@x.org", []string{"b\x00@y.org"}, nil},
		{"a@x.org", []string{"b\t@y.org"}, nil},
		{"a@x.org", []string{"b\x7f@y.org"}, nil},
		{"a@x.org\n", []string{"b@y.org"}, nil},
		{"a b@x.org", []string{"b@y.org"}, nil},
	}
	for _, tt := range tests {
		got, err := buildArgv(p, tt.sender, tt.rcpts)
		if tt.want == nil {
			if err == nil {
				t.Errorf("buildArgv(%q, %q) = %q, want an error", tt.sender, tt.rcpts, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("buildArgv(%q, %q) = %q, %v; want %q", tt.sender, tt.rcpts, got, err, tt.want)
		}
	}
}

// FuzzArgv checks the argv builder's promise: whatever the addresses, a
// successful build is exactly path -i -f sender -- rcpts, nothing after
// "--" starts with '-', and no element holds CR, LF or NUL. Seeds are in
// testdata/fuzz/FuzzArgv.
func FuzzArgv(f *testing.F) {
	f.Add("alice@example.org", "bob@example.org", "")
	f.Add("alice@example.org", "-oQ/tmp/q", "-X/tmp/pwn.log")
	f.Fuzz(func(t *testing.T, sender, r1, r2 string) {
		rcpts := []string{r1}
		if r2 != "" {
			rcpts = append(rcpts, r2)
		}
		const p = "/usr/sbin/sendmail"
		argv, err := buildArgv(p, sender, rcpts)
		unsafe := func(s string) bool {
			return s == "" || s[0] == '-' || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
		}
		anyUnsafe := unsafe(sender) || slices.ContainsFunc(rcpts, unsafe)
		if err != nil {
			if !anyUnsafe {
				t.Fatalf("buildArgv(%q, %q) refused safe input: %v", sender, rcpts, err)
			}
			return
		}
		if anyUnsafe {
			t.Fatalf("buildArgv(%q, %q) accepted unsafe input: %q", sender, rcpts, argv)
		}
		if !slices.Equal(argv[:5], []string{p, "-i", "-f", sender, "--"}) || len(argv) != 5+len(rcpts) {
			t.Fatalf("argv %q has the wrong shape", argv)
		}
		for i, a := range argv {
			if strings.ContainsAny(a, "\r\n\x00") {
				t.Fatalf("argv[%d] = %q holds CR, LF or NUL", i, a)
			}
			if i > 4 && strings.HasPrefix(a, "-") {
				t.Fatalf("argv[%d] = %q after -- starts with '-'", i, a)
			}
		}
	})
}

func TestMapExit(t *testing.T) {
	permanent := []int{64, 65, 67, 68, 77}
	temporary := []int{69, 70, 71, 73, 74, 75, 78, 1, 2, 66, 72, 76, 127, 255}
	if err := mapExit(0, nil); err != nil {
		t.Errorf("mapExit(0) = %v, want nil", err)
	}
	for _, c := range permanent {
		err := mapExit(c, nil)
		var p *delivery.PermanentError
		if !errors.As(err, &p) {
			t.Errorf("mapExit(%d) = %v, want permanent", c, err)
		}
	}
	for _, c := range temporary {
		err := mapExit(c, nil)
		var tmp *delivery.TemporaryError
		if !errors.As(err, &tmp) {
			t.Errorf("mapExit(%d) = %v, want temporary", c, err)
		}
	}
	if got := delivery.Reason(mapExit(75, nil)); got != "exit 75 (EX_TEMPFAIL)" {
		t.Errorf("reason for 75 = %q", got)
	}
}

func TestResolve(t *testing.T) {
	users := map[string]account{
		"alice":  {Name: "alice", UID: 1001, GID: 1001, Groups: []uint32{1001, 27}},
		"root":   {Name: "root", UID: 0, GID: 0},
		"daemon": {Name: "daemon", UID: 1, GID: 1},
		"nobody": {Name: "nobody", UID: 65534, GID: 65534},
		"rootgr": {Name: "rootgr", UID: 1005, GID: 0},
		"wheel0": {Name: "wheel0", UID: 1006, GID: 1006, Groups: []uint32{1006, 0}},
		"submit": {Name: "submit", UID: 1500, GID: 1500},
		"shadow": {Name: "shadow", UID: 1007, GID: 1007, Groups: []uint32{1007, 42}},
		"shadw1": {Name: "shadw1", UID: 1008, GID: 42},
	}
	nssDown := errors.New("sssd: connection refused")
	lookup := func(name string) (account, error) {
		if name == "flaky" {
			return account{}, nssDown
		}
		if a, ok := users[name]; ok {
			return a, nil
		}
		return account{}, errNoSuchAccount
	}
	tests := []struct {
		account  string
		fallback string
		want     string // account name, or "perm:<reason>" / "temp:<reason>"
	}{
		{"alice", "", "alice"},
		{"alice", "submit", "alice"},
		{"root", "", "perm:uid-zero"},
		{"root", "submit", "perm:uid-zero"}, // a refused account never falls back
		{"daemon", "", "perm:uid-below-min"},
		{"nobody", "", "perm:uid-overflow"},
		{"rootgr", "", "perm:gid-zero"},
		{"wheel0", "", "perm:privileged-group"}, // supplementary group 0
		{"wheel0", "submit", "perm:privileged-group"},
		{"shadow", "", "perm:privileged-group"}, // supplementary gid 42
		{"shadw1", "", "perm:privileged-group"}, // primary gid 42
		{"", "", "perm:no-account"},
		{"", "submit", "submit"},
		{"ghost", "", "perm:no-account"},
		{"ghost", "submit", "submit"},
		{"flaky", "submit", "temp:account-lookup"},
		{"-root", "submit", "perm:bad-account"},
	}
	for _, tt := range tests {
		b := &Backend{cfg: config.DefaultSendmail(), lookup: lookup, privileged: map[uint32]bool{0: true, 42: true}}
		b.cfg.SwitchUser = true
		if tt.fallback != "" {
			fb := users[tt.fallback]
			b.fallback = &fb
		}
		acct, err := b.resolve(tt.account)
		var got string
		switch {
		case err == nil:
			got = acct.Name
		case delivery.IsPermanent(err):
			got = "perm:" + delivery.Reason(err)
		default:
			got = "temp:" + delivery.Reason(err)
		}
		if got != tt.want {
			t.Errorf("resolve(account %q, fallback %q) = %s (%v), want %s", tt.account, tt.fallback, got, err, tt.want)
		}
		// The policy at login says the same, with the same reason.
		cerr := b.CheckAccount("x", tt.account)
		if (cerr == nil) != (err == nil) || delivery.IsPermanent(cerr) != delivery.IsPermanent(err) ||
			delivery.Reason(cerr) != delivery.Reason(err) {
			t.Errorf("CheckAccount(%q, fallback %q) = %v, resolve said %v", tt.account, tt.fallback, cerr, err)
		}
	}
}

// TestLookupNSSSystemAccounts resolves real system accounts through NSS
// and checks the policy refuses them.
func TestLookupNSSSystemAccounts(t *testing.T) {
	for name, want := range map[string]string{"root": "uid-zero", "daemon": "uid-below-min"} {
		acct, err := lookupNSS(name)
		if err != nil {
			t.Fatalf("lookupNSS(%q): %v", name, err)
		}
		if got := policy(acct, 1000, nil); got != want {
			t.Errorf("policy(%s uid %d) = %q, want %q", name, acct.UID, got, want)
		}
	}
	if _, err := lookupNSS("mppd-no-such-user-x"); !errors.Is(err, errNoSuchAccount) {
		t.Errorf("lookupNSS(unknown) = %v, want errNoSuchAccount", err)
	}
}

func TestCheckPrivileges(t *testing.T) {
	err := CheckPrivileges()
	caps, capErr := effectiveCaps()
	if capErr != nil {
		t.Fatalf("effectiveCaps: %v", capErr)
	}
	need := uint64(1<<capSetUID | 1<<capSetGID | 1<<capKill)
	can := os.Geteuid() == 0 || caps&need == need
	if can && err != nil {
		t.Errorf("CheckPrivileges() = %v although the process may switch users", err)
	}
	if !can {
		if err == nil || !strings.Contains(err.Error(), "CAP_SETUID") {
			t.Errorf("CheckPrivileges() = %v, want an error naming CAP_SETUID", err)
		}
		if _, err := New(config.DefaultSendmail(), nil); err == nil {
			t.Error("New with switch_user = true started without the privilege to switch users")
		}
	}
}

func TestNewRefusesSwitchUserOffAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("this case is about running as root")
	}
	cfg := config.DefaultSendmail()
	cfg.SwitchUser = false
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "switch_user") {
		t.Errorf("New(switch_user = false) as root = %v, want an error", err)
	}
}

// TestRecordedChild checks the child's argv, environment, working
// directory, descriptors, process group, core limit and stdin, for a
// message in memory and one in an (unlinked) file.
func TestRecordedChild(t *testing.T) {
	t.Setenv("MAIL_CONFIG", "/tmp/evil")
	t.Setenv("NOTIFY_SOCKET", "/run/x")
	t.Setenv("LISTEN_FDS", "1")
	// A descriptor without close-on-exec, as a socket-activation fd or
	// one opened by a C library would be: it must not reach the child.
	leak, err := syscall.Open("/dev/null", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leak)
	for _, inFile := range []bool{false, true} {
		t.Run(fmt.Sprintf("file=%v", inFile), func(t *testing.T) {
			dir := t.TempDir()
			path := installRecorder(t, dir)
			b, _ := newUnprivileged(t, path)
			// The message never goes to the temporary directory: with
			// TMPDIR unusable delivery works just the same.
			t.Setenv("TMPDIR", "/nonexistent-mppd-tmpdir")
			// mppd's main sets it (cmd/mppd); the child inherits it.
			if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
				t.Fatal(err)
			}
			var msg io.Reader = strings.NewReader(testMessage)
			if inFile {
				f, err := os.CreateTemp(t.TempDir(), "msg")
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				f.WriteString(testMessage)
				f.Seek(0, io.SeekStart)
				os.Remove(f.Name())
				msg = f
			}
			if err := b.Deliver(context.Background(), testEnvelope(), msg); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			r := readRecord(t, dir)
			if r == nil {
				t.Fatal("the stand-in did not run")
			}
			if f, ok := msg.(*os.File); ok {
				// A staged file is sendmail's stdin itself, not a copy.
				var st syscall.Stat_t
				if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
					t.Fatal(err)
				}
				if r.StdinDev != uint64(st.Dev) || r.StdinIno != st.Ino {
					t.Errorf("stdin is %d:%d, not the staged file %d:%d", r.StdinDev, r.StdinIno, st.Dev, st.Ino)
				}
			}
			checkRecord(t, r, path, testAccount)
		})
	}
}

// checkRecord checks what every child must look like.
func checkRecord(t *testing.T, r *record, path string, acct account) {
	t.Helper()
	env := testEnvelope()
	wantArgs := append([]string{path, "-i", "-f", env.Sender, "--"}, env.Recipients...)
	if !slices.Equal(r.Args, wantArgs) {
		t.Errorf("argv = %q, want %q", r.Args, wantArgs)
	}
	wantEnv := []string{"PATH=" + childPath, "HOME=" + acct.Home, "USER=" + acct.Name, "LOGNAME=" + acct.Name}
	if !slices.Equal(r.Env, wantEnv) {
		t.Errorf("env = %q, want %q", r.Env, wantEnv)
	}
	if r.Cwd != "/" {
		t.Errorf("cwd = %q, want /", r.Cwd)
	}
	if !slices.Equal(r.FDs, []int{0, 1, 2}) {
		t.Errorf("open descriptors = %v, want [0 1 2]", r.FDs)
	}
	if r.Pgid != r.Pid {
		t.Errorf("pgid %d != pid %d: the child is not in its own process group", r.Pgid, r.Pid)
	}
	if r.RlimitCore != 0 {
		t.Errorf("RLIMIT_CORE = %d, want 0", r.RlimitCore)
	}
	sum := sha256.Sum256([]byte(testMessage))
	if r.StdinLen != int64(len(testMessage)) || r.StdinSHA != hex.EncodeToString(sum[:]) {
		t.Errorf("stdin: %d bytes sha %s, want the message (%d bytes)", r.StdinLen, r.StdinSHA, len(testMessage))
	}
}

// TestDeliverRefusesBadAddresses: hostile recipients and senders
// (docs/hostile-inputs.md, cases 34-36 and 39) get a permanent error and no
// process runs.
func TestDeliverRefusesBadAddresses(t *testing.T) {
	bad := []string{
		"-oQ/tmp/q", "-X/tmp/pwn.log", "-bh@example.com", "-t@x.org",
		`"-C/tmp/evil.cf"@example.com`,
		`"attacker\" -oQ/tmp/ -X/var/www/x.php some"@email.com`,
		"bob@example.org\n-oQ/tmp", "bob @example.org", "bob@example.org\r", "bo\x00b@example.org",
		";sleep 5;@x.org", "$(id)@x.org", "`id`@x.org", "|/bin/sh@x.org",
		"${run{/bin/id}}@example.com", "",
	}
	dir := t.TempDir()
	path := installRecorder(t, dir)
	b, logs := newUnprivileged(t, path)
	for _, rcpt := range bad {
		env := testEnvelope()
		env.Recipients = []string{"bob@example.org", rcpt}
		err := b.Deliver(context.Background(), env, strings.NewReader(testMessage))
		if !delivery.IsPermanent(err) {
			t.Errorf("recipient %q: Deliver = %v, want a permanent error", rcpt, err)
		}
		env = testEnvelope()
		env.Sender = rcpt
		if err := b.Deliver(context.Background(), env, strings.NewReader(testMessage)); !delivery.IsPermanent(err) {
			t.Errorf("sender %q: Deliver = %v, want a permanent error", rcpt, err)
		}
	}
	if r := readRecord(t, dir); r != nil {
		t.Fatalf("the stand-in ran with %q", r.Args)
	}
	if _, err := os.Stat("/tmp/pwn.log"); err == nil {
		t.Error("/tmp/pwn.log exists")
	}
	if !strings.Contains(logs.String(), `msg="message refused before sendmail"`) {
		t.Errorf("no refusal log line:\n%s", logs)
	}
}

// faultCase is one stand-in sendmail and what Deliver must make of it.
type faultCase struct {
	name   string
	script string
	want   string // "ok", "perm:<reason>" or "temp:<reason>"
}

func faultCases() []faultCase {
	cs := []faultCase{
		{"exit0", "cat >/dev/null; exit 0", "ok"},
		{"exit75", "cat >/dev/null; echo 'postdrop: warning: queue file write error' >&2; exit 75", "temp:exit 75 (EX_TEMPFAIL)"},
		{"exit67", "cat >/dev/null; echo 'unknown user' >&2; exit 67", "perm:exit 67 (EX_NOUSER)"},
		{"signal", "kill -KILL $$", "temp:signal"},
		{"unknown-status", "exit 3", "temp:exit 3"},
		// A stuck helper (a grandchild) also holding stdout: the timeout
		// kills the whole group and Wait does not hang on the pipe.
		{"hang", "(sleep 3600) & echo $! >grandchild.pid; sleep 3600", "temp:timeout"},
		// Exit 0 while a grandchild keeps stdout open: the MTA has the
		// message; WaitDelay frees the session.
		{"exit0-grandchild", "cat >/dev/null; (sleep 3600) & echo $! >grandchild.pid; exit 0", "ok"},
		// 8 MB on stderr (2000 times the cap): only the first 4 KiB is kept.
		{"stderr-flood", "head -c 8000000 /dev/zero | tr '\\000' x >&2; exit 75", "temp:exit 75 (EX_TEMPFAIL)"},
	}
	for _, c := range []int{64, 65, 68, 77} {
		cs = append(cs, faultCase{fmt.Sprintf("exit%d", c), fmt.Sprintf("exit %d", c), "perm:" + exitReason(c)})
	}
	for _, c := range []int{69, 70, 71, 73, 74, 78} {
		cs = append(cs, faultCase{fmt.Sprintf("exit%d", c), fmt.Sprintf("exit %d", c), "temp:" + exitReason(c)})
	}
	return cs
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case delivery.IsPermanent(err):
		return "perm:" + delivery.Reason(err)
	default:
		return "temp:" + delivery.Reason(err)
	}
}

// runFaultCases runs each stand-in through b (whose Path it sets) in dir,
// for env.
func runFaultCases(t *testing.T, b *Backend, logs *testenv.LogBuffer, dir string, env delivery.Envelope) {
	b.cfg.Timeout = config.Duration(time.Second)
	b.waitDelay = 500 * time.Millisecond
	for _, fc := range faultCases() {
		t.Run(fc.name, func(t *testing.T) {
			// The scripts run in "/" and write their pid files here.
			b.cfg.Path = writeScript(t, dir, fc.name, "cd "+dir+" || exit 71\n"+fc.script)
			pidFile := filepath.Join(dir, "grandchild.pid")
			os.Remove(pidFile)
			start := time.Now()
			err := b.Deliver(context.Background(), env, strings.NewReader(testMessage))
			took := time.Since(start)
			if got := outcome(err); got != fc.want {
				t.Errorf("Deliver = %s (%v), want %s", got, err, fc.want)
			}
			// Bounded: timeout (1 s) + WaitDelay (0.5 s), with room
			// for a loaded machine, and far below the stand-ins'
			// 3600 s, which an unbounded wait would take.
			if took > 15*time.Second {
				t.Errorf("Deliver took %s", took)
			}
			if b, err := os.ReadFile(pidFile); err == nil {
				checkGone(t, strings.TrimSpace(string(b)))
			}
		})
	}
	out := logs.String()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "output=") && len(line) > 2*outputLimit+1024 {
			t.Errorf("a log line holds %d bytes: the output cap did not hold", len(line))
		}
	}
	if !strings.Contains(out, "more bytes dropped") {
		t.Errorf("the stderr flood is not reported as truncated:\n%.2000s", out)
	}
	if !strings.Contains(out, "postdrop: warning: queue file write error") {
		t.Errorf("sendmail's stderr is not in the log")
	}
}

// checkGone waits (bounded) until process pid has exited: it no longer
// exists or is a zombie waiting for whoever adopted it.
func checkGone(t *testing.T, pid string) {
	t.Helper()
	for range 100 {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return
		}
		if _, rest, ok := strings.Cut(string(b), ") "); ok && strings.HasPrefix(rest, "Z") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("grandchild %s still runs: the process group was not killed", pid)
}

func TestFaults(t *testing.T) {
	dir := t.TempDir()
	b, logs := newUnprivileged(t, "/nonexistent")
	runFaultCases(t, b, logs, dir, testEnvelope())
}

// Cancelling the context kills sendmail's whole process group, like the
// timeout; a context done before the start starts nothing.
func TestCancelKillsGroup(t *testing.T) {
	dir := t.TempDir()
	b, _ := newUnprivileged(t, "/nonexistent")
	b.cfg.Timeout = config.Duration(time.Hour)
	b.waitDelay = 500 * time.Millisecond
	pidFile := filepath.Join(dir, "grandchild.pid")
	b.cfg.Path = writeScript(t, dir, "sendmail", "cd "+dir+" || exit 71\n(sleep 3600) & echo $! >grandchild.pid; sleep 3600")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Deliver(ctx, testEnvelope(), strings.NewReader(testMessage)); outcome(err) != "temp:cancelled" {
		t.Errorf("Deliver with a done context = %v, want temporary cancelled", err)
	}
	if _, err := os.Stat(pidFile); err == nil {
		t.Fatal("sendmail ran with a done context")
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		for range 500 {
			if _, err := os.Stat(pidFile); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	err := b.Deliver(ctx, testEnvelope(), strings.NewReader(testMessage))
	if outcome(err) != "temp:cancelled" {
		t.Errorf("Deliver cancelled while running = %v, want temporary cancelled", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("Deliver took %s", took)
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	checkGone(t, strings.TrimSpace(string(pid)))
}

func TestMissingSendmail(t *testing.T) {
	for _, path := range []string{"/nonexistent/sendmail", filepath.Join(t.TempDir(), "not-executable")} {
		os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o644)
		b, logs := newUnprivileged(t, path)
		err := b.Deliver(context.Background(), testEnvelope(), strings.NewReader(testMessage))
		if outcome(err) != "temp:exec" {
			t.Errorf("%s: Deliver = %v, want temporary exec", path, err)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "reason=exec") {
			t.Errorf("%s: no error log line:\n%s", path, logs)
		}
		// The backend keeps working once sendmail is there.
		b.cfg.Path = writeScript(t, t.TempDir(), "sendmail", "cat >/dev/null")
		if err := b.Deliver(context.Background(), testEnvelope(), strings.NewReader(testMessage)); err != nil {
			t.Errorf("after fixing the path: %v", err)
		}
	}
}

// TestStdinFromStagedCopy: a message that is not already a regular file is
// copied whole before sendmail starts, so a writer that stops half-way
// (mppd killed) can never be seen by sendmail as a short message: sendmail
// reads a file that is complete before it starts.
func TestStdinFromStagedCopy(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		pw.WriteString(testMessage)
		pw.Close()
	}()
	f, cleanup, err := stageStdin(pr)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if f == pr {
		t.Fatal("a pipe was passed to sendmail as is")
	}
	fi, _ := f.Stat()
	if !fi.Mode().IsRegular() || fi.Size() != int64(len(testMessage)) {
		t.Fatalf("staged copy: mode %v size %d", fi.Mode(), fi.Size())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink != 0 {
		t.Errorf("staged copy has %d links, want an unlinked file", st.Nlink)
	}
	// A failing reader: nothing is run.
	if _, _, err := stageStdin(io.MultiReader(strings.NewReader("From: a\n"), errReader{})); err == nil {
		t.Error("stageStdin ignored a read error")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("client gone") }

func TestCapped(t *testing.T) {
	c := &capped{limit: 10}
	c.Write([]byte("0123456"))
	c.Write([]byte("789abcdef"))
	if got := c.String(); got != "0123456789 [6 more bytes dropped]" {
		t.Errorf("capped = %q", got)
	}
	if reflect.ValueOf(c.buf).Cap() > 64 {
		t.Errorf("capped grew to %d", cap(c.buf))
	}
}

// io.Copy into capped (what os/exec does with sendmail's output pipe) goes
// through its ReadFrom: the whole input is counted, the cap holds, and a
// read error comes back.
func TestCappedReadFrom(t *testing.T) {
	c := &capped{limit: 10}
	n, err := io.Copy(c, iotest.HalfReader(strings.NewReader("0123456789abcdef")))
	if n != 16 || err != nil {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	if got := c.String(); got != "0123456789 [6 more bytes dropped]" {
		t.Errorf("capped = %q", got)
	}
	boom := errors.New("boom")
	if _, err := io.Copy(&capped{limit: 10}, iotest.ErrReader(boom)); err != boom {
		t.Errorf("io.Copy from a failing reader = %v", err)
	}
}

// The delivery right after a login uses the account CheckAccount resolved
// instead of asking NSS again; once that is recentTTL old, it asks again.
// A refused account is never remembered.
func TestDeliveryAfterLoginLooksUpOnce(t *testing.T) {
	dir := t.TempDir()
	b, _ := newUnprivileged(t, installRecorder(t, dir))
	b.cfg.MinUID = 1000
	lookups := 0
	b.lookup = func(name string) (account, error) {
		lookups++
		if name == "low" {
			return account{Name: "low", UID: 10, GID: 10}, nil
		}
		return testAccount, nil
	}
	env := testEnvelope()
	env.Account = testAccount.Name
	if err := b.CheckAccount("alice", env.Account); err != nil {
		t.Fatal(err)
	}
	if err := b.Deliver(context.Background(), env, strings.NewReader(testMessage)); err != nil {
		t.Fatal(err)
	}
	if lookups != 1 {
		t.Fatalf("%d lookups for a login and its delivery, want 1", lookups)
	}
	if err := b.CheckAccount("alice", env.Account); err != nil || lookups != 1 {
		t.Fatalf("a second login: CheckAccount = %v after %d lookups, want nil after 1", err, lookups)
	}
	if r := readRecord(t, dir); r == nil || r.StdinLen != int64(len(testMessage)) {
		t.Fatalf("the child's record: %+v", r)
	}
	b.recentMu.Lock()
	r := b.recent[env.Account]
	r.at = r.at.Add(-recentTTL)
	b.recent[env.Account] = r
	b.recentMu.Unlock()
	if err := b.Deliver(context.Background(), env, strings.NewReader(testMessage)); err != nil {
		t.Fatal(err)
	}
	if lookups != 2 {
		t.Fatalf("%d lookups after the remembered account expired, want 2", lookups)
	}
	b.recentMu.Lock()
	r = b.recent[env.Account]
	r.at = r.at.Add(-recentTTL)
	b.recent[env.Account] = r
	b.recentMu.Unlock()
	if err := b.CheckAccount("alice", env.Account); err != nil || lookups != 3 {
		t.Fatalf("a login after the remembered account expired: CheckAccount = %v after %d lookups, want nil after 3", err, lookups)
	}
	if err := b.CheckAccount("bob", "low"); !delivery.IsPermanent(err) {
		t.Fatalf("CheckAccount(low uid) = %v", err)
	}
	b.recentMu.Lock()
	_, kept := b.recent["low"]
	b.recentMu.Unlock()
	if kept {
		t.Fatal("a refused account was remembered")
	}
}
