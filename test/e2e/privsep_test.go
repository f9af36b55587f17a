//go:build pam && integration

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/privdrop"
	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// The privilege split as it runs: mppd started as root starts its engine
// as the system account mppd (test/setup.d/15-engine-user.sh), holding
// nothing.

func needEngineUser(t *testing.T) (uid, gid int) {
	t.Helper()
	testenv.NeedRoot(t)
	u, err := user.Lookup("mppd")
	if err != nil {
		testenv.Missing(t, "the system account mppd", "run `sudo bash test/setup.d/15-engine-user.sh`")
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

var engineStarted = regexp.MustCompile(`msg="engine started" pid=(\d+)`)

// TestEngineHoldsNothing: /proc/PID/status of the engine shows the mppd
// uid and gid, no supplementary group, every capability set empty,
// no_new_privs and a seccomp filter; as that uid, /etc/shadow, the
// password file and a directory secret cannot be read; and the engine
// serves.
func TestEngineHoldsNothing(t *testing.T) {
	uid, gid := needEngineUser(t)
	// Secrets in directories anyone may enter, so that only the files'
	// own modes (0600, root's) keep the engine out, as in /etc/mppd.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := serviceSecret(t, dir, "s3cret")
	extra, root := devBackends(t, alice)
	passwd := regexp.MustCompile(`path = "([^"]+/passwd)"`).FindStringSubmatch(extra)[1]
	if err := os.Chmod(filepath.Dir(passwd), 0o755); err != nil {
		t.Fatal(err)
	}
	m := testharness.Start(t, extra)
	pid := m.EnginePid()

	st, err := privdrop.ReadStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := privdrop.CheckStatus(st, privdrop.Expect{UID: uid, GID: gid, NoGroups: true, Bounding: true}); err != nil {
		t.Errorf("engine %d: %v", pid, err)
	}
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if !regexp.MustCompile(`(?m)^Seccomp:\s+2$`).Match(raw) {
		t.Errorf("the engine has no seccomp filter:\n%s", raw)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.Contains(string(cmdline), "\x00engine\x00") {
		t.Errorf("pid %d is not the engine: %q", pid, cmdline)
	}

	for _, f := range []string{"/etc/shadow", passwd, secret} {
		cat := exec.Command("/bin/cat", f)
		cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
		if out, err := cat.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Errorf("as the engine's uid, cat %s: %v %q", f, err, out)
		}
	}

	c := login(t, m, alice)
	c.Post("To: bob@example.test\nSubject: through the engine\n\nsplit\n", 250)
	c.Cmd("QUIT", 221)
	waitDelivered(t, root, "bob@example.test", 1)
}

// TestAccountPolicyAtPASS: with a PAM stack that lets everyone in, the
// account policy of the sendmail backend alone refuses root and a system
// account at PASS with 530 (not after the upload), and says why in the
// log; an ordinary account gets 250.
func TestAccountPolicyAtPASS(t *testing.T) {
	needPAMSetup(t)
	testenv.NeedPostfix(t)
	testenv.NeedPAMService(t, "mppd-test-permit")
	m := testharness.Start(t, fmt.Sprintf(`
[authn]
backend = "pam"

[authn.pam]
service = "mppd-test-permit"
mail_domain = %q

[delivery]
backend = "sendmail"
`, testMailDomain))
	for _, tc := range []struct {
		user   string
		code   int
		reason string
	}{
		{"root", 530, "uid-zero"},
		{"daemon", 530, "uid-below-min"},
		{pamOK.name, 250, ""},
	} {
		c := m.Dial(t)
		c.Cmd("USER "+tc.user, 250)
		c.Cmd("PASS anything-at-all", tc.code)
		c.Cmd("QUIT", 221)
		if tc.reason != "" {
			m.WaitLog("event=account-refused")
			m.WaitLog("reason=" + tc.reason)
		}
	}
}

// TestSIGTERMEitherProcess: a stop works whichever process gets the signal
// first, and when both get one (KillMode=control-group, a terminal's ^C):
// the engine drains, a session under way is told 451, and both exit 0.
func TestSIGTERMEitherProcess(t *testing.T) {
	needEngineUser(t)
	for _, target := range []string{"engine", "both"} {
		t.Run(target, func(t *testing.T) {
			extra, _ := devBackends(t, alice)
			m := testharness.Start(t, extra)
			pid := m.EnginePid()
			c := login(t, m, alice)
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if target == "both" {
				m.Cmd.Process.Signal(syscall.SIGTERM)
			}
			c.Expect(451)
			if code := m.WaitExit(testharness.StopTimeout); code != 0 {
				t.Errorf("exit status %d, want 0; log:\n%s", code, m.Log())
			}
		})
	}
}

// listenInode is the socket inode of the TCP listener on addr, from
// /proc/net/tcp.
func listenInode(t *testing.T, addr string) string {
	t.Helper()
	_, portText, _ := strings.Cut(addr, ":")
	port, _ := strconv.Atoi(portText)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) && f[3] == "0A" {
			return f[9]
		}
	}
	t.Fatalf("no listener on %s in /proc/net/tcp", addr)
	return ""
}

// holdsSocket reports whether process pid has socket inode open.
func holdsSocket(t *testing.T, pid int, inode string) bool {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); l == "socket:["+inode+"]" {
			return true
		}
	}
	return false
}

// TestMonitorClosesListeners: once the engine runs, only the engine holds
// the listening socket; the monitor has closed its copy.
func TestMonitorClosesListeners(t *testing.T) {
	needEngineUser(t)
	extra, _ := devBackends(t, alice)
	m := testharness.Start(t, extra)
	pid := m.EnginePid()
	inode := listenInode(t, m.Addr())
	if !holdsSocket(t, pid, inode) {
		t.Error("the engine does not hold the listener")
	}
	if holdsSocket(t, m.Pid(), inode) {
		t.Error("the monitor still holds the listener")
	}
}

// TestEngineExitsWithoutMonitor: when the monitor dies, the engine stops
// accepting and exits by itself.
func TestEngineExitsWithoutMonitor(t *testing.T) {
	needEngineUser(t)
	extra, _ := devBackends(t, alice)
	log := &testenv.LogBuffer{}
	cmd := exec.Command(testharness.Binary(), "--config", testharness.WriteConfig(t, extra))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var pid int
	for deadline := time.Now().Add(testharness.StartTimeout); pid == 0; {
		if sm := engineStarted.FindStringSubmatch(log.String()); sm != nil && strings.Contains(log.String(), "msg=listening") {
			pid, _ = strconv.Atoi(sm[1])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mppd did not start:\n%s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	for deadline := time.Now().Add(testharness.StopTimeout); ; time.Sleep(20 * time.Millisecond) {
		// Gone, or a zombie waiting for whoever adopted it.
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the engine %d still runs %v after its monitor died; log:\n%s", pid, testharness.StopTimeout, log)
		}
	}
	if !strings.Contains(log.String(), "the monitor is gone") {
		t.Errorf("the engine did not say why it stopped:\n%s", log)
	}
}
