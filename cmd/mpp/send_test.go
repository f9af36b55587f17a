package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/mppclient/mpptest"
	"github.com/mppd/mppd/internal/testharness"
)

// testCLI is a cli with a fake environment and no terminal.
type testCLI struct {
	cli
	stdout, stderr strings.Builder
	env            map[string]string
	prompts        []string
}

func newTestCLI(stdin string, env map[string]string) *testCLI {
	tc := &testCLI{env: env}
	tc.cli = cli{
		stdin:  strings.NewReader(stdin),
		stdout: &tc.stdout,
		stderr: &tc.stderr,
		getenv: func(k string) string { return tc.env[k] },
		readPassword: func(prompt string) (string, error) {
			tc.prompts = append(tc.prompts, prompt)
			if pw, ok := tc.env["test-prompt-answer"]; ok {
				return pw, nil
			}
			return "", errNoTerminal
		},
	}
	return tc
}

func fakeServer(t *testing.T, replies map[string]string) *mpptest.Server {
	t.Helper()
	srv, err := mpptest.Listen(replies)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestSendFromStdin(t *testing.T) {
	srv := fakeServer(t, nil)
	tc := newTestCLI("To: bob\n\n.\nhi\n", map[string]string{
		"MPP_SERVER": srv.Addr(), "USER": "alice", "MPP_PASSWORD": "pw",
	})
	if st := tc.run([]string{"send"}); st != exOK {
		t.Fatalf("status %d, stderr %q", st, tc.stderr.String())
	}
	if tc.stderr.Len() != 0 || tc.stdout.Len() != 0 {
		t.Errorf("output on success: stdout %q stderr %q", tc.stdout.String(), tc.stderr.String())
	}
	srv.Close()
	ss := srv.Sessions()
	if len(ss) != 1 {
		t.Fatalf("%d sessions", len(ss))
	}
	if got := strings.Join(ss[0].Commands, "|"); got != "USER alice|PASS pw|DATA|QUIT" {
		t.Errorf("commands %q", got)
	}
	if got := string(ss[0].Texts[0]); got != "To: bob\r\n\r\n..\r\nhi\r\n" {
		t.Errorf("text %q", got)
	}
	if len(tc.prompts) != 0 {
		t.Errorf("prompted although MPP_PASSWORD was set: %q", tc.prompts)
	}
}

// Flags win over the environment; FILE wins over stdin; a missing
// password is asked for.
func TestSendFileFlagsAndPrompt(t *testing.T) {
	srv := fakeServer(t, nil)
	file := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(file, []byte("To: bob\r\n\r\nfrom a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	tc := newTestCLI("stdin must not be read", map[string]string{
		"MPP_SERVER": "192.0.2.1:1", "MPP_USER": "mallory", "USER": "eve",
		"test-prompt-answer": "typed pw",
	})
	if st := tc.run([]string{"send", "-s", srv.Addr(), "-u", "carol", file}); st != exOK {
		t.Fatalf("status %d, stderr %q", st, tc.stderr.String())
	}
	if want := []string{"Password for carol at " + srv.Addr() + ": "}; strings.Join(tc.prompts, "|") != want[0] {
		t.Errorf("prompts %q, want %q", tc.prompts, want)
	}
	srv.Close()
	ss := srv.Sessions()
	if got := strings.Join(ss[0].Commands, "|"); got != "USER carol|PASS typed pw|DATA|QUIT" {
		t.Errorf("commands %q", got)
	}
	if got := string(ss[0].Texts[0]); got != "To: bob\r\n\r\nfrom a file\r\n" {
		t.Errorf("text %q", got)
	}
}

func TestSendUserFromEnv(t *testing.T) {
	srv := fakeServer(t, nil)
	tc := newTestCLI("To: bob\n\nx\n", map[string]string{
		"MPP_SERVER": srv.Addr(), "MPP_USER": "dave", "USER": "eve", "MPP_PASSWORD": "pw",
	})
	if st := tc.run([]string{"send"}); st != exOK {
		t.Fatalf("status %d, stderr %q", st, tc.stderr.String())
	}
	srv.Close()
	if got := srv.Sessions()[0].Commands[0]; got != "USER dave" {
		t.Errorf("first command %q", got)
	}
}

// Each way the server can say no ends in one line naming its reply and
// the sysexits.h status a caller can act on, the same in mpp send and in
// sendmail mode (with the queue off).
func TestServerFailures(t *testing.T) {
	cases := []struct {
		name    string
		replies map[string]string
		status  int
		line    string // "" for the hang-up, checked by its start
	}{
		{"bad password", map[string]string{"PASS": "530 Authentication Failure."}, exNoPerm,
			"mpp: server refused the password: 530 Authentication Failure."},
		{"auth backend down", map[string]string{"PASS": "451 Local error encountered."}, exTempFail,
			"mpp: server refused the password: 451 Local error encountered."},
		{"try later", map[string]string{"PASS": "451 Authentication service unavailable, try again later."}, exTempFail,
			"mpp: server refused the password: 451 Authentication service unavailable, try again later."},
		{"bad user name", map[string]string{"USER": "501 Argument syntax error."}, exNoUser,
			"mpp: server refused the user name: 501 Argument syntax error."},
		{"password syntax", map[string]string{"PASS": "501 Argument syntax error."}, exNoPerm,
			"mpp: server refused the password: 501 Argument syntax error."},
		{"message refused", map[string]string{"message": "550 Error."}, exDataErr,
			"mpp: server refused the message: 550 Error."},
		{"message refused by the mail system", map[string]string{"message": "550 Message refused by the mail system."}, exDataErr,
			"mpp: server refused the message: 550 Message refused by the mail system."},
		{"recipient refused", map[string]string{"message": "550 To: recipient bob@x refused: no such domain"}, exNoUser,
			"mpp: server refused the message: 550 To: recipient bob@x refused: no such domain"},
		{"message not queued", map[string]string{"message": "451 Local error encountered."}, exTempFail,
			"mpp: server refused the message: 451 Local error encountered."},
		{"not queued, try later", map[string]string{"message": "451 Message not queued, try again later."}, exTempFail,
			"mpp: server refused the message: 451 Message not queued, try again later."},
		{"overloaded", map[string]string{"greeting": "451 Too busy, try later."}, exTempFail,
			"mpp: server refused the connection: 451 Too busy, try later."},
		{"DATA out of sequence", map[string]string{"DATA": "503 Illegal command sequence."}, exProtocol,
			"mpp: server refused to take a message: 503 Illegal command sequence."},
		{"not an MPP server", map[string]string{"greeting": "SSH-2.0-OpenSSH_9.2"}, exProtocol,
			`mpp: malformed reply from the server to greeting: "SSH-2.0-OpenSSH_9.2"`},
		{"hangs up", map[string]string{"PASS": mpptest.Close}, exUnavailable, ""},
	}
	modes := []struct {
		name string
		run  func(t *testing.T, addr string) (*testCLI, int)
	}{
		{"send", func(t *testing.T, addr string) (*testCLI, int) {
			c := newTestCLI("To: bob\n\nhi\n", map[string]string{"USER": "alice", "MPP_PASSWORD": "pw"})
			return c, c.run([]string{"send", "-s", addr})
		}},
		{"sendmail", func(t *testing.T, addr string) (*testCLI, int) {
			return sendmailCLI(t, addr, "To: bob@x.test\n\nhi\n", map[string]string{"MPP_QUEUE": "off"}, "-t")
		}},
	}
	for _, m := range modes {
		for _, tc := range cases {
			t.Run(m.name+"/"+tc.name, func(t *testing.T) {
				srv := fakeServer(t, tc.replies)
				c, st := m.run(t, srv.Addr())
				if st != tc.status {
					t.Errorf("status %d, want %d (stderr %q)", st, tc.status, c.stderr.String())
				}
				stderr := c.stderr.String()
				if tc.line != "" && stderr != tc.line+"\n" {
					t.Errorf("stderr %q, want the one line %q", stderr, tc.line)
				}
				if tc.line == "" && (strings.Count(stderr, "\n") != 1 ||
					!strings.HasPrefix(stderr, "mpp: connection to "+srv.Addr()+" closed by the server during PASS")) {
					t.Errorf("stderr %q", stderr)
				}
			})
		}
	}
}

// With no server to reach, both modes say so in one line, EX_UNAVAILABLE.
func TestConnectionRefused(t *testing.T) {
	addr := testharness.ClosedAddr(t)
	want := "mpp: cannot connect to " + addr + ": connect: connection refused\n"
	c := newTestCLI("To: bob\n\nhi\n", map[string]string{"USER": "alice", "MPP_PASSWORD": "pw"})
	if st := c.run([]string{"send", "-s", addr}); st != exUnavailable || c.stderr.String() != want {
		t.Errorf("send: status %d stderr %q, want %d %q", st, c.stderr.String(), exUnavailable, want)
	}
	c, st := sendmailCLI(t, addr, "To: bob@x.test\n\nhi\n", nil, "--no-queue", "-t")
	if st != exUnavailable || c.stderr.String() != want {
		t.Errorf("sendmail: status %d stderr %q, want %d %q", st, c.stderr.String(), exUnavailable, want)
	}
}

func TestSendUsageErrors(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		status int
		line   string
	}{
		{"no command", nil, nil, exUsage, "usage: mpp send"},
		{"unknown command", []string{"post"}, nil, exUsage, `mpp: unknown command "post"`},
		{"bad flag", []string{"send", "-x"}, nil, exUsage, "flag provided but not defined: -x"},
		{"two files", []string{"send", "a", "b"}, nil, exUsage, "mpp: send takes at most one FILE, got 2 arguments"},
		{"no user", []string{"send"}, map[string]string{}, exUsage, "mpp: no user name: use -u, or set MPP_USER"},
		{"no password, no terminal", []string{"send", "-u", "alice"}, map[string]string{}, exUsage,
			"mpp: no password: set MPP_PASSWORD, --password-file, --password-command or the config file, or run mpp on a terminal"},
		{"missing file", []string{"send", "-u", "alice", "/nonexistent/msg"}, map[string]string{"MPP_PASSWORD": "pw"},
			exNoInput, "mpp: open /nonexistent/msg: no such file or directory"},
		{"password with newline", []string{"send", "-s", "127.0.0.1:1", "-u", "alice"},
			map[string]string{"MPP_PASSWORD": "pw\nDATA"}, exUsage, "mpp: password contains CR, LF or NUL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCLI("", tc.env)
			if st := c.run(tc.args); st != tc.status {
				t.Errorf("status %d, want %d", st, tc.status)
			}
			if !strings.HasPrefix(c.stderr.String(), tc.line) {
				t.Errorf("stderr %q, want it to start with %q", c.stderr.String(), tc.line)
			}
		})
	}
}

func TestVerboseMasksPassword(t *testing.T) {
	srv := fakeServer(t, nil)
	c := newTestCLI("To: bob\n\nbody text\n", map[string]string{
		"MPP_SERVER": srv.Addr(), "USER": "alice", "MPP_PASSWORD": "hunter2",
	})
	if st := c.run([]string{"send", "-v"}); st != exOK {
		t.Fatalf("status %d, stderr %q", st, c.stderr.String())
	}
	out := c.stderr.String()
	if !strings.Contains(out, "C: PASS ********\n") || !strings.Contains(out, "S: 221 ") {
		t.Errorf("trace:\n%s", out)
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "body text") {
		t.Errorf("trace shows the password or the body:\n%s", out)
	}
}

func TestVersionAndHelp(t *testing.T) {
	c := newTestCLI("", nil)
	if st := c.run([]string{"version"}); st != exOK || c.stdout.String() != "mpp "+version+"\n" {
		t.Errorf("version: %d %q", st, c.stdout.String())
	}
	// -h and --help on mpp and every command: the usage on standard
	// output, status 0, nothing on standard error.
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"},
		{"send", "-h"}, {"send", "--help"}, {"sendmail", "-h"}, {"sendmail", "--help"},
		{"flush", "-h"}, {"flush", "--help"}, {"queue", "-h"}, {"queue", "--help"},
		{"bench", "-h"}, {"bench", "--help"}, {"version", "-h"}, {"version", "--help"},
	} {
		c := newTestCLI("", nil)
		if st := c.run(args); st != exOK || !strings.HasPrefix(c.stdout.String(), "usage: mpp") || c.stderr.Len() != 0 {
			t.Errorf("%q: status %d, stdout %q, stderr %q", args, st, c.stdout.String(), c.stderr.String())
		}
	}
	c = newTestCLI("", nil)
	if st := c.main([]string{"/usr/sbin/sendmail", "-h"}); st != exOK || !strings.Contains(c.stdout.String(), "-bp") {
		t.Errorf("sendmail -h: %d %q", st, c.stdout.String())
	}
	c = newTestCLI("", nil)
	if st := c.run([]string{"send", "-h"}); !strings.Contains(c.stdout.String(), "MPP_PASSWORD") || !strings.Contains(c.stdout.String(), "-password-command") {
		t.Errorf("send -h: %d %q", st, c.stdout.String())
	}
	// A bad flag: the error and usage on standard error, EX_USAGE.
	c = newTestCLI("", nil)
	if st := c.run([]string{"flush", "--bogus"}); st != exUsage || !strings.Contains(c.stderr.String(), "bogus") || c.stdout.Len() != 0 {
		t.Errorf("flush --bogus: %d %q %q", st, c.stdout.String(), c.stderr.String())
	}
}
