// Package adversarial plays the hostile-input catalogue
// (shared/notes/limits-and-bad-input.md, section d) against the built mppd
// over real TCP on loopback: the dialogues in testdata/*.dlg (exact bytes
// in, expected replies out; see internal/dialogue for the format), the
// throttle, and the resource cases (RSS and goroutines back to baseline).
//
// Cases that cannot be automated here, and why, are listed in
// catalogue_test.go. Slow parts carry the integration build tag.
package adversarial

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/mppd/mppd/authn/passwdfile"
	"github.com/mppd/mppd/internal/testenv"
)

// mppdBin is the binary TestMain built.
var mppdBin string

// Generous timeouts so that a loaded machine does not make tests flaky;
// bounded so that a hung daemon cannot hang the run.
const (
	startTimeout = 15 * time.Second
	ioTimeout    = 15 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mppd-adversarial-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	mppdBin = filepath.Join(dir, "mppd")
	build := exec.Command("go", "build", "-o", mppdBin, "github.com/mppd/mppd/cmd/mppd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "adversarial: building mppd:", err)
		return 1
	}
	return m.Run()
}

// The users every daemon knows (password file, argon2id).
var users = map[string]string{"alice": "alice-adv-pw", "bob": "bob-adv-pw"}

// passwdFile is written once per test binary: hashing is slow on purpose.
var passwdFile = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mppd-adversarial-passwd-")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, u := range []string{"alice", "bob"} {
		h, err := passwdfile.HashPassword(users[u])
		if err != nil {
			return "", err
		}
		b.WriteString(u + ":" + h + "\n")
	}
	path := filepath.Join(dir, "passwd")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
})

// daemon is one running mppd.
type daemon struct {
	t       testing.TB
	addr    string
	maildir string
	cmd     *exec.Cmd
	log     *testenv.LogBuffer
	done    chan struct{}
}

// merge merges src into dst, tables recursively.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				merge(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

// startDaemon starts the built mppd on a free loopback port with the
// password file, a maildir, debug logs, no failure floor, and extra (TOML)
// over that; it is stopped in t.Cleanup.
func startDaemon(t testing.TB, extra string) *daemon {
	t.Helper()
	pw, err := passwdFile()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	d := &daemon{t: t, addr: addr, maildir: filepath.Join(dir, "maildir"), log: &testenv.LogBuffer{}, done: make(chan struct{})}
	cfg := map[string]any{
		"hostname":      "mppd.test",
		"listen":        []any{addr},
		"drain_timeout": "5s",
		"log":           map[string]any{"level": "debug", "format": "text"},
		"session":       map[string]any{"auth_failure_delay": "0s"},
		"authn": map[string]any{"backend": "passwdfile",
			"passwdfile": map[string]any{"path": pw, "mail_domain": "example.test"}},
		"delivery": map[string]any{"backend": "maildir", "maildir": map[string]any{"root": d.maildir}},
	}
	var x map[string]any
	if err := toml.Unmarshal([]byte(extra), &x); err != nil {
		t.Fatalf("extra config: %v\n%s", err, extra)
	}
	merge(cfg, x)
	b, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mppd.toml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(mppdBin, "--config", path)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
			t.Errorf("mppd did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("mppd log (tail):\n%s", tail(d.log.String(), 60))
		}
	})
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(d.log.String(), "msg=listening") {
		select {
		case <-d.done:
			t.Fatalf("mppd exited before listening:\n%s", d.log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mppd did not listen:\n%s", d.log.String())
		}
	}
	return d
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pid is the daemon's process id.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// waitLog waits until the log, from offset on, contains substr n times.
func (d *daemon) waitLog(offset int, substr string, n int) {
	d.t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for strings.Count(d.log.String()[offset:], substr) < n {
		if time.Now().After(deadline) {
			d.t.Fatalf("log never showed %q %d times; tail:\n%s", substr, n, tail(d.log.String(), 40))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deliveredFiles lists every delivered message file under the maildir.
func (d *daemon) deliveredFiles() map[string]bool {
	files := map[string]bool{}
	matches, _ := filepath.Glob(filepath.Join(d.maildir, "*", "new", "*"))
	for _, m := range matches {
		files[m] = true
	}
	return files
}

// conn is one client connection.
type conn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func (d *daemon) dial(t testing.TB) *conn {
	t.Helper()
	return dialFrom(t, d.addr, "")
}

// dialFrom connects from a chosen loopback source address ("" for any).
func dialFrom(t testing.TB, addr, from string) *conn {
	t.Helper()
	dl := net.Dialer{Timeout: ioTimeout}
	if from != "" {
		dl.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := dl.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, r: bufio.NewReader(c)}
}

// reply reads one reply line; it checks the form "NNN text\r\n".
func (c *conn) reply() (string, error) {
	c.c.SetReadDeadline(time.Now().Add(ioTimeout))
	l, err := c.r.ReadString('\n')
	if err != nil {
		return l, err
	}
	if len(l) < 6 || !strings.HasSuffix(l, "\r\n") || l[3] != ' ' || l[0] < '2' || l[0] > '5' ||
		l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9' || strings.ContainsAny(l[:len(l)-2], "\r\n") {
		return l, fmt.Errorf("malformed reply %q", l)
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

func (c *conn) expect(code int) string {
	c.t.Helper()
	l, err := c.reply()
	if err != nil {
		c.t.Fatalf("want %d: %v (%q)", code, err, l)
	}
	if l[:3] != fmt.Sprint(code) {
		c.t.Fatalf("got %q, want %d", l, code)
	}
	return l
}

func (c *conn) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// isClosed reports whether the server has closed: EOF or a reset, not a
// timeout.
func (c *conn) isClosed() bool {
	c.c.SetReadDeadline(time.Now().Add(ioTimeout))
	_, err := c.r.ReadByte()
	if err == nil {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}
