package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testharness"
)

// TestPost posts a message with To, Cc and Bcc recipients: each gets a copy
// in its maildir, the body arrives byte for byte (dot-unstuffed), the Bcc
// header is gone, and the password is nowhere in the log.
func TestPost(t *testing.T) {
	extra, root := devBackends(t, alice)
	m := testharness.Start(t, extra)
	c := login(t, m, alice)
	body := "Hello Bob,\n\n.a line that starts with a dot\n..two dots\n.\n trailing space \n\n-- \nalice\n"
	msg := "From: alice@example.test\n" +
		"To: bob@example.test\n" +
		"Cc: Carol <carol@example.test>\n" +
		"Bcc: dave@example.test\n" +
		"Subject: e2e post\n" +
		"\n" + body
	c.Post(msg, 250)
	c.Cmd("QUIT", 221)

	for _, rcpt := range []string{"bob@example.test", "carol@example.test", "dave@example.test"} {
		header := deliveredOne(t, root, rcpt, body)
		if hasHeader(header, "Bcc") {
			t.Errorf("%s: delivered header still has Bcc:\n%s", rcpt, header)
		}
		for _, h := range []string{"From", "To", "Cc", "Subject", "Received"} {
			if !hasHeader(header, h) {
				t.Errorf("%s: delivered header lacks %s:\n%s", rcpt, h, header)
			}
		}
	}
	noPasswordLogged(t, m, alice.password)
}

// TestWrongPassword: a wrong password and an unknown user both get 530,
// and after it only NOOP and QUIT are allowed (RFC 1204 §2.3).
func TestWrongPassword(t *testing.T) {
	extra, root := devBackends(t, alice)
	m := testharness.Start(t, extra)

	c := m.Dial(t)
	c.Cmd("USER alice", 250)
	c.Cmd("PASS not-alices-password", 530)
	c.Cmd("DATA", 503)
	c.Cmd("QUIT", 221)

	c = m.Dial(t)
	c.Cmd("USER nobody", 250)
	c.Cmd("PASS whatever", 530)
	c.Cmd("QUIT", 221)

	if got := delivered(t, root, "bob@example.test"); len(got) != 0 {
		t.Errorf("something was delivered: %q", got)
	}
}

// TestParallelSessions runs two sessions at once, interleaving their
// commands, each posting its own message.
func TestParallelSessions(t *testing.T) {
	bob := testUser{name: "bob", password: "bob-e2e-password"}
	extra, root := devBackends(t, alice, bob)
	m := testharness.Start(t, extra)

	a := m.Dial(t)
	b := m.Dial(t)
	a.Cmd("USER alice", 250)
	b.Cmd("USER bob", 250)
	b.Cmd("PASS "+bob.password, 250)
	a.Cmd("PASS "+alice.password, 250)
	a.Cmd("DATA", 354)
	b.Cmd("DATA", 354)
	b.Send(testharness.DotStuff("To: carol@example.test\nSubject: from bob\n\nbob's text\n"))
	a.Send(testharness.DotStuff("To: carol@example.test\nSubject: from alice\n\nalice's text\n"))
	a.Expect(250)
	b.Expect(250)
	a.Cmd("QUIT", 221)
	b.Cmd("QUIT", 221)

	msgs := waitDelivered(t, root, "carol@example.test", 2)
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"bob's text", "alice's text"} {
		if !strings.Contains(all, want) {
			t.Errorf("no message with %q delivered:\n%s", want, all)
		}
	}
}

// TestShutdownIdleSession: on SIGTERM an idle session is told 451 and
// closed, and mppd exits 0 without waiting for the drain timeout.
func TestShutdownIdleSession(t *testing.T) {
	extra, _ := devBackends(t, alice)
	m := testharness.Start(t, "drain_timeout = \"20s\"\n"+extra)
	c := m.Dial(t)
	c.Cmd("USER alice", 250)

	start := time.Now()
	if err := m.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.Expect(451)
	if !c.Closed() {
		t.Error("connection still open after 451")
	}
	if code := m.WaitExit(testharness.StopTimeout); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown took %v with only an idle session", d)
	}
	// New connections are refused once mppd has stopped listening.
	if c, err := net.DialTimeout("tcp", m.Addr(), testharness.IOTimeout); err == nil {
		c.Close()
		t.Error("mppd still accepts connections after exiting")
	}
}

// TestShutdownDuringMessage: a message whose text is being received when
// SIGTERM comes is read to its end, delivered and answered 250; then the
// session is closed with 451 and mppd exits 0.
func TestShutdownDuringMessage(t *testing.T) {
	extra, root := devBackends(t, alice)
	m := testharness.Start(t, extra)
	c := login(t, m, alice)
	c.Cmd("DATA", 354)
	c.Send("To: bob@example.test\r\nSubject: interrupted\r\n\r\nfirst half\r\n")
	time.Sleep(100 * time.Millisecond) // let the engine be inside the text
	if err := m.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	c.Send("second half\r\n.\r\n")
	c.Expect(250)
	c.Expect(451)
	if code := m.WaitExit(testharness.StopTimeout); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	msgs := waitDelivered(t, root, "bob@example.test", 1)
	if !strings.Contains(msgs[0], "first half\nsecond half\n") {
		t.Errorf("delivered message is not whole:\n%s", msgs[0])
	}
}

// TestPerClientCap: with max_sessions_per_client = 2 and no trusted
// networks, a third connection from 127.0.0.1 gets 451 and is closed, and
// the refusal is logged with the client's address.
func TestPerClientCap(t *testing.T) {
	extra, _ := devBackends(t, alice)
	m := testharness.Start(t, "max_sessions_per_client = 2\ntrusted_networks = []\n"+extra)
	m.Dial(t)
	m.Dial(t)
	third := m.DialRaw(t)
	third.Expect(451)
	if !third.Closed() {
		t.Error("refused connection left open")
	}
	m.WaitLog(`msg="session refused" client=127.0.0.1 reason=max-sessions-per-client`)
}

// TestTrustedNetworkExempt: loopback is trusted by default, so the
// per-client cap does not apply to it.
func TestTrustedNetworkExempt(t *testing.T) {
	extra, _ := devBackends(t, alice)
	m := testharness.Start(t, "max_sessions_per_client = 1\n"+extra)
	for i := 0; i < 3; i++ {
		m.Dial(t)
	}
}

// TestTotalCap: with max_sessions = 2 a third connection gets 451; once a
// session ends, a new connection is served again.
func TestTotalCap(t *testing.T) {
	extra, _ := devBackends(t, alice)
	m := testharness.Start(t, "max_sessions = 2\n"+extra)
	first := m.Dial(t)
	m.Dial(t)
	third := m.DialRaw(t)
	third.Expect(451)
	m.WaitLog(`reason=max-sessions `)

	first.Cmd("QUIT", 221)
	// The slot is freed when the session's goroutine ends, just after
	// the client sees the close; retry briefly.
	deadline := time.Now().Add(testharness.IOTimeout)
	for {
		c := m.DialRaw(t)
		code, line, err := c.ReadReply()
		if err == nil && code == 220 {
			break
		}
		if err == nil && code != 451 {
			t.Fatalf("unexpected reply %q", line)
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no session slot freed after QUIT")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBadConfig: a broken config file stops mppd with exit status 78 and a
// message naming the file, the line and the key, and nothing is served.
func TestBadConfig(t *testing.T) {
	// Load fails before any backend is built, so the backends' files
	// need not exist.
	const authnTOML = "\n[authn.passwdfile]\npath = \"passwd\"\nmail_domain = \"example.test\"\n"
	const deliveryTOML = "\n[delivery.maildir]\nroot = \"maildir\"\n"
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown key", "listen = [\"127.0.0.1:0\"]\nmax_sesions = 5\n" + authnTOML + deliveryTOML,
			":2: max_sesions: unknown key"},
		{"bad duration", "listen = [\"127.0.0.1:0\"]\n\n[session]\nidle_timeout = \"five minutes\"\n" + authnTOML + deliveryTOML,
			":4: session.idle_timeout: bad duration"},
		{"bad regexp", "listen = [\"127.0.0.1:0\"]\n[session]\nuser_pattern = '^(a$'\n" + authnTOML + deliveryTOML,
			":3: session.user_pattern:"},
		{"unknown backend", "listen = [\"127.0.0.1:0\"]\n[delivery]\nbackend = \"carrier-pigeon\"\n" + authnTOML,
			`:3: delivery.backend: unknown backend "carrier-pigeon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mppd.toml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"--config", path}, {"--check-config", "--config", path}} {
				out, code := testharness.Run(t, "", args...)
				if code != 78 {
					t.Errorf("mppd %v: exit status %d, want 78; output:\n%s", args, code, out)
				}
				if want := path + tc.want; !strings.Contains(out, want) {
					t.Errorf("mppd %v: output\n%s\ndoes not contain %q", args, out, want)
				}
				if strings.Contains(out, "listening") {
					t.Errorf("mppd %v listened with a bad config:\n%s", args, out)
				}
			}
		})
	}
}

// TestCheckConfigDev runs --check-config on dev/mppd.toml (copied with
// dev/passwd, so that the maildir root it creates stays out of the tree).
func TestCheckConfigDev(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"mppd.toml", "passwd"} {
		b, err := os.ReadFile(filepath.Join("../../dev", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, code := testharness.Run(t, "", "--check-config", "--config", filepath.Join(dir, "mppd.toml"))
	if code != 0 || !strings.Contains(out, "config OK") {
		t.Errorf("exit status %d, output:\n%s", code, out)
	}
}

// TestCheckConfigPackaged runs --check-config on packaging/mppd.toml.
// Its backends name files of an installed system (/etc/mppd/passwd), so
// here the check may fail at building a backend; what must hold is that
// the file itself loads: any failure is a backend's, not the config's.
// backendBuildError is how mppd reports a backend it cannot build:
// "mppd: FILE[:LINE]: authn.NAME..." or "delivery.NAME...".
var backendBuildError = regexp.MustCompile(`^mppd: .*?(:\d+)?: (authn|delivery)\.[a-z]+`)

func TestCheckConfigPackaged(t *testing.T) {
	path, err := filepath.Abs("../../packaging/mppd.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Fatalf("the packaged config does not load: %v", err)
	}
	out, code := testharness.Run(t, "", "--check-config", "--config", path)
	switch {
	case code == 0 && strings.Contains(out, "config OK"):
	case code == 78 && backendBuildError.MatchString(out) && strings.HasPrefix(out, "mppd: "+path+":"):
		t.Logf("config loads; a backend cannot be built on this machine: %s", strings.TrimSpace(out))
	default:
		t.Errorf("exit status %d, output:\n%s", code, out)
	}
}

// TestVersion: --version prints the version given at build time.
func TestVersion(t *testing.T) {
	out, code := testharness.Run(t, "", "--version")
	if code != 0 || strings.TrimSpace(out) != "mppd "+testVersion {
		t.Errorf("exit status %d, output %q", code, out)
	}
}

// TestUsageError: an unknown flag is exit status 78 with the usage.
func TestUsageError(t *testing.T) {
	out, code := testharness.Run(t, "", "--no-such-flag")
	if code != 78 || !strings.Contains(out, "usage: mppd") {
		t.Errorf("exit status %d, output:\n%s", code, out)
	}
}

// TestPasswdSubcommand: `mppd passwd` adds a user (password from standard
// input, addresses repeated and comma-listed) to the file the config
// names, and that user can then log in and post as the first address.
func TestPasswdSubcommand(t *testing.T) {
	extra, root := devBackends(t, alice)
	cfg := testharness.WriteConfig(t, extra)

	out, code := testharness.Run(t, "dave-e2e-password\n", "passwd", "--config", cfg,
		"--address", "dave@example.test,d@example.test", "--address", "postmaster@example.test", "dave")
	if code != 0 {
		t.Fatalf("mppd passwd: exit status %d:\n%s", code, out)
	}
	// --file instead of the config's path, on a file of its own.
	other := filepath.Join(t.TempDir(), "other-passwd")
	out, code = testharness.Run(t, "erin-e2e-password\n", "passwd", "--file", other, "erin")
	if code != 0 {
		t.Fatalf("mppd passwd --file: exit status %d:\n%s", code, out)
	}
	if b, err := os.ReadFile(other); err != nil || !strings.HasPrefix(string(b), "erin:$argon2id$") {
		t.Errorf("--file wrote %q (%v)", b, err)
	}

	m := testharness.StartConfig(t, cfg)
	dave := testUser{name: "dave", password: "dave-e2e-password"}
	c := login(t, m, dave)
	c.Post("To: bob@example.test\nSubject: from dave\n\nhi\n", 250)
	c.Cmd("QUIT", 221)
	msgs := waitDelivered(t, root, "bob@example.test", 1)
	header, _ := headerBody(t, msgs[0])
	if !strings.Contains(header, "dave@example.test") {
		t.Errorf("message not from dave's primary address:\n%s", header)
	}
	// alice is still there.
	login(t, m, alice).Cmd("QUIT", 221)
}

// TestSessionsConcurrentLoad opens a batch of sessions at once, each
// logging in and quitting, to show that the accept loop hands each its own
// goroutine and frees the slots.
func TestSessionsConcurrentLoad(t *testing.T) {
	extra, _ := devBackends(t, alice)
	m := testharness.Start(t, extra)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.DialTimeout("tcp", m.Addr(), testharness.IOTimeout)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer conn.Close()
			c := testharness.NewClient(t, conn)
			for _, step := range []struct {
				send string
				code int
			}{{"", 220}, {"USER alice\r\n", 250}, {"QUIT\r\n", 221}} {
				if step.send != "" {
					if _, err := conn.Write([]byte(step.send)); err != nil {
						errs <- err.Error()
						return
					}
				}
				code, line, err := c.ReadReply()
				if err != nil || code != step.code {
					errs <- fmt.Sprintf("want %d, got %q (%v)", step.code, line, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestJSONLogs: with log.format = "json" every line is a JSON object and
// the harness still finds the listening address.
func TestJSONLogs(t *testing.T) {
	extra, _ := devBackends(t, alice)
	m := testharness.Start(t, "[log]\nformat = \"json\"\n"+extra)
	login(t, m, alice).Cmd("QUIT", 221)
	m.Stop()
	for _, line := range strings.Split(strings.TrimSpace(m.Log()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q", line)
		}
	}
}
