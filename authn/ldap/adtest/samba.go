// Package adtest runs a Samba Active Directory domain controller for tests,
// on loopback only. test/setup.d/35-samba.sh installs Samba and provisions
// the domain once (under Root); Start copies that domain afresh, starts
// `samba` on the copy and stops it by its pid file when the test ends, so
// that lockouts and bad-password counts never carry over from one test to
// the next. When Samba or the provisioned domain is missing, Start stops the
// test through testenv.Missing (a failure under CI, a skip elsewhere).
//
// Samba's LDAP server has fixed ports (389 with StartTLS, 636), so one DC
// runs at a time on the machine: Start holds a lock file until the test
// ends, and a second test (another package's, run in parallel) waits.
package adtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/mppd/mppd/internal/testenv"
)

// Root is where test/setup.d/35-samba.sh keeps the domain: golden/ as
// provisioned, run/ the copy a DC runs on, tls/ the test CA and the DC's
// certificate.
const Root = "/var/cache/mppd-test/samba"

// The domain, as 35-samba.sh makes it. Every fixture user's password is
// Password(name).
const (
	Realm     = "corp.mppd.test" // DNS name; the implicit UPN suffix
	NetBIOS   = "CORP"           // the down-level domain name
	BaseDN    = "DC=corp,DC=mppd,DC=test"
	UsersDN   = "CN=Users," + BaseDN
	AdminUPN  = "Administrator@" + Realm
	AdminPW   = "Admin-pw-1"
	ServiceDN = "CN=svc-mppd," + UsersDN
	ServicePW = "svc-mppd-pw"
	// GroupDN is the group mppd requires; mppd-nested is a member of it.
	GroupDN  = "CN=mppd-users," + UsersDN
	URI      = "ldap://127.0.0.1:389"
	LDAPSURI = "ldaps://127.0.0.1:636"
	// ServerName is a name in the DC certificate's SANs (besides
	// localhost and 127.0.0.1).
	ServerName = "dc." + Realm
	// LockoutThreshold is the domain's: the account locks at the third
	// bad password in a row.
	LockoutThreshold = 3
)

// The fixture users (CN and sAMAccountName alike; UPN name@Realm and mail
// name@Realm unless said otherwise).
const (
	Alice = "alice" // in mppd-users
	Bob   = "bob"   // not in mppd-users
	Carol = "carol" // in mppd-nested, a member of mppd-users
	Dave  = "dave"  // in mppd-users, disabled
	Erin  = "erin"  // in mppd-users, must change the password
	Frank = "frank" // in mppd-users, password expired
	Gina  = "gina"  // in mppd-users, account expired
	Hank  = "hank"  // in mppd-users, no mail
	Ivy   = "ivy"   // in mppd-users, UPN ivy@other.mppd.test
	Jack  = "jack"  // in mppd-users, no UPN
	Kate  = "kate"  // primary group mppd-users (so not in memberOf)
	Lena  = "lena"  // in mppd-users, for lockout tests
	Mike  = "mike"  // in mppd-users, for lockout tests
	Nina  = "nina"  // in mppd-users, locked and unlocked by tests
	Olga  = "olga"  // in mppd-users, spare
)

// Password is a fixture user's password.
func Password(user string) string { return user + "-pw" }

// UserDN is a fixture user's DN.
func UserDN(user string) string { return "CN=" + user + "," + UsersDN }

// DC is a running test domain controller.
type DC struct {
	t      testing.TB
	samba  string
	CAFile string // the PEM of the CA that signed the DC's certificate
	conf   string
	lock   *os.File
	proc   testenv.Process
}

// Start copies the provisioned domain, starts a DC on it and stops it when
// the test ends.
func Start(t testing.TB) *DC {
	t.Helper()
	samba := testenv.NeedSambaDomain(t, filepath.Join(Root, "golden", "mppd-fixture"))
	d := &DC{
		t:      t,
		samba:  samba,
		CAFile: filepath.Join(Root, "tls", "ca.pem"),
		conf:   filepath.Join(Root, "run", "etc", "smb.conf"),
	}
	d.lock = takeLock(t)
	t.Cleanup(func() {
		d.Stop()
		d.lock.Close() // releases the flock
		if t.Failed() {
			t.Logf("samba's log:\n%s", d.Log())
		}
	})
	killStale(t)
	run := filepath.Join(Root, "run")
	if err := os.RemoveAll(run); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(Root, "golden"), run).CombinedOutput(); err != nil {
		t.Fatalf("copying the provisioned domain: %v\n%s", err, out)
	}
	d.Start()
	return d
}

// takeLock waits (at most 10 minutes) for the machine's one DC slot.
func takeLock(t testing.TB) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(Root, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("adtest: waiting for the DC lock: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pidFile is where samba writes its pid (pid directory in smb.conf).
func pidFile() string { return filepath.Join(Root, "run", "pid", "samba.pid") }

// killStale stops a DC that a crashed test left running (its pid file is
// in the run copy, and we hold the lock, so it is no live test's).
func killStale(t testing.TB) {
	b, err := os.ReadFile(pidFile())
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || syscall.Kill(pid, 0) != nil {
		return
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); !strings.HasPrefix(string(comm), "samba") {
		return
	}
	t.Logf("adtest: stopping a DC left running (pid %d)", pid)
	syscall.Kill(-pid, syscall.SIGCONT)
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
}

// Start (re)starts samba on the current copy, after Stop, and waits until
// its LDAP server answers over TLS.
func (d *DC) Start() {
	d.t.Helper()
	// -F: in the foreground, as the leader of a new process group (so
	// that Hang reaches every child); --debug-stdout: its log for Log.
	cmd := exec.Command(d.samba, "-F", "--debug-stdout", "-s", d.conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done, err := d.proc.Start(cmd)
	if err != nil {
		d.t.Fatalf("starting samba: %v", err)
	}

	roots, err := testenv.CertPool(d.CAFile)
	if err != nil {
		d.t.Fatalf("reading the test CA: %v", err)
	}
	for i := 0; i < 600; i++ {
		select {
		case <-done:
			d.t.Fatalf("samba exited at start:\n%s", d.Log())
		default:
		}
		c, err := goldap.DialURL(LDAPSURI, goldap.DialWithTLSConfig(&tls.Config{RootCAs: roots, ServerName: ServerName}))
		if err == nil {
			_, err = c.Search(goldap.NewSearchRequest("", goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 5, false, "(objectClass=*)", []string{"dnsHostName"}, nil))
			c.Close()
			if err == nil {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.t.Fatalf("samba does not serve %s after 60 s:\n%s", LDAPSURI, d.Log())
}

// Stop stops samba by its pid file (SIGTERM; the samba root process ends
// its children) and waits for the LDAP ports to close.
func (d *DC) Stop() {
	cmd, done := d.proc.Take()
	if cmd == nil {
		return
	}
	pid := cmd.Process.Pid
	if b, err := os.ReadFile(pidFile()); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p == pid {
			pid = p
		}
	}
	syscall.Kill(-pid, syscall.SIGCONT) // a hung DC must hear the TERM
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
	// The children may outlive the root process by a moment.
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:636", time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
}

// Hang stops every samba process (SIGSTOP to its process group): the DC
// keeps its connections and ports open but answers nothing, like a server
// that hangs. Resume undoes it; Stop does too.
func (d *DC) Hang() { d.signalGroup(syscall.SIGSTOP) }

// Resume lets a hung DC run again.
func (d *DC) Resume() { d.signalGroup(syscall.SIGCONT) }

func (d *DC) signalGroup(sig syscall.Signal) {
	cmd := d.proc.Running()
	if cmd == nil {
		d.t.Fatal("adtest: the DC is not running")
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		d.t.Fatalf("adtest: signal %v to samba's process group: %v", sig, err)
	}
}

// Log returns samba's log so far.
func (d *DC) Log() string { return d.proc.Log.String() }

// TLSConfig is a client configuration that trusts the DC's certificate.
func (d *DC) TLSConfig() *tls.Config {
	roots, _ := testenv.CertPool(d.CAFile) // Start has read it
	return &tls.Config{RootCAs: roots, ServerName: ServerName}
}

// Admin returns a connection bound as the domain administrator; the caller
// closes it.
func (d *DC) Admin() *goldap.Conn {
	d.t.Helper()
	c, err := goldap.DialURL(LDAPSURI, goldap.DialWithTLSConfig(d.TLSConfig()))
	if err != nil {
		d.t.Fatal(err)
	}
	if err := c.Bind(AdminUPN, AdminPW); err != nil {
		c.Close()
		d.t.Fatal(err)
	}
	return c
}

// attr reads one attribute of a fixture user's entry as the administrator.
func (d *DC) attr(user, name string) string {
	d.t.Helper()
	c := d.Admin()
	defer c.Close()
	res, err := c.Search(goldap.NewSearchRequest(UserDN(user), goldap.ScopeBaseObject, goldap.NeverDerefAliases,
		0, 10, false, "(objectClass=*)", []string{name}, nil))
	if err != nil || len(res.Entries) != 1 {
		d.t.Fatalf("adtest: reading %s of %s: %v", name, user, err)
	}
	return res.Entries[0].GetAttributeValue(name)
}

// BadPwdCount is the user's count of bad passwords since the last good
// one (AD's badPwdCount): how many wrong passwords reached the DC.
func (d *DC) BadPwdCount(user string) int {
	d.t.Helper()
	n, _ := strconv.Atoi(d.attr(user, "badPwdCount"))
	return n
}

// Locked reports whether the account is locked out (lockoutTime set).
func (d *DC) Locked(user string) bool {
	d.t.Helper()
	v := d.attr(user, "lockoutTime")
	return v != "" && v != "0"
}

// Unlock unlocks the account as a helpdesk would (lockoutTime 0).
func (d *DC) Unlock(user string) {
	d.t.Helper()
	d.modify(user, "lockoutTime", "0")
}

// SetPassword sets the user's password as the administrator (unicodePwd,
// which AD only takes over an encrypted connection).
func (d *DC) SetPassword(user, pw string) {
	d.t.Helper()
	quoted := "\"" + pw + "\""
	utf16 := make([]byte, 0, 2*len(quoted))
	for _, r := range quoted {
		utf16 = append(utf16, byte(r), byte(r>>8))
	}
	d.modify(user, "unicodePwd", string(utf16))
}

func (d *DC) modify(user, attr, value string) {
	d.t.Helper()
	c := d.Admin()
	defer c.Close()
	m := goldap.NewModifyRequest(UserDN(user), nil)
	m.Replace(attr, []string{value})
	if err := c.Modify(m); err != nil {
		d.t.Fatalf("adtest: setting %s of %s: %v", attr, user, err)
	}
}
