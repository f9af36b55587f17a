//go:build integration

package main

// Real mail programs posting through mpp sendmail, each configured the
// way its documentation says to use another sendmail: git send-email
// (--sendmail-cmd), s-nail (mta=), mutt (sendmail=) and cron (MAILTO,
// with the mpp binary bind-mounted on /usr/sbin/sendmail in a private
// mount namespace, so the host's sendmail is untouched). Each message must
// reach exactly the recipients the program named, Bcc included and not
// shown, from the user who logged in. Then the same with no server: the
// program succeeds, the message is queued, and mpp flush delivers it once
// a server is there. test/setup.d/70-mailprograms.sh installs them.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// buildMpp builds cmd/mpp into dir and links it as dir/sendmail.
func buildMpp(t *testing.T, dir string) (mpp, sendmail string) {
	t.Helper()
	mpp = filepath.Join(dir, "mpp")
	if err := testharness.GoBuild(mpp, "github.com/mppd/mppd/cmd/mpp", testharness.Build{}); err != nil {
		t.Fatalf("go build: %v", err)
	}
	sendmail = filepath.Join(dir, "sendmail")
	if err := os.Symlink(mpp, sendmail); err != nil {
		t.Fatal(err)
	}
	return mpp, sendmail
}

// programEnv is the environment of a mail program run by a test: its own
// HOME, mpp's settings, no terminal.
type programEnv struct {
	home, queue string
	vars        map[string]string
}

func newProgramEnv(t *testing.T, server string) *programEnv {
	home := t.TempDir()
	e := &programEnv{home: home, queue: filepath.Join(home, "queue")}
	e.vars = map[string]string{
		"HOME": home, "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C",
		"MPP_SERVER": server, "MPP_USER": realUser, "MPP_PASSWORD": realPassword,
		"MPP_FROM": realUser + "@" + realDomain, "MPP_QUEUE_DIR": e.queue,
		"GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": realUser + "@" + realDomain,
		"GIT_COMMITTER_NAME": "Alice", "GIT_COMMITTER_EMAIL": realUser + "@" + realDomain,
	}
	return e
}

func (e *programEnv) run(t *testing.T, stdin string, dir string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// checkDelivered checks that each of rcpts got one message with the
// subject, from the authenticated user (From:, and Return-Path:), with no
// Bcc field, and that no one else got anything.
func checkDelivered(t *testing.T, root, subject string, rcpts ...string) {
	t.Helper()
	for _, r := range rcpts {
		header, body := delivered(t, root, r)
		if !strings.Contains(headerField(header, "Subject"), subject) {
			t.Errorf("%s: subject %q missing:\n%s", r, subject, header)
		}
		from := headerField(header, "From")
		if !strings.Contains(from, realUser+"@"+realDomain) || headerField(header, "Return-Path") != "<"+realUser+"@"+realDomain+">" {
			t.Errorf("%s: From: %q, Return-Path: %q, want the user who logged in", r, from, headerField(header, "Return-Path"))
		}
		if strings.Contains(strings.ToLower(header), "\nbcc:") {
			t.Errorf("%s: a Bcc field was delivered:\n%s", r, header)
		}
		if body == "" {
			t.Errorf("%s: empty body", r)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "*"))
	if len(dirs) != len(rcpts) {
		t.Errorf("delivered to %q, want exactly %q", dirs, rcpts)
	}
}

func headerField(header, name string) string {
	for _, l := range strings.Split(header, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// queuedCount is the number of messages in a queue directory.
func queuedCount(t *testing.T, dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.mppq"))
	return len(files)
}

// flushTo runs the built mpp flush against addr.
func (e *programEnv) flushTo(t *testing.T, mpp, addr string) {
	t.Helper()
	e.vars["MPP_SERVER"] = addr
	e.run(t, "", e.home, mpp, "flush", "-v")
	if n := queuedCount(t, e.queue); n != 0 {
		t.Errorf("%d messages still queued after mpp flush", n)
	}
}

// program is one mail program: send posts a message with the subject to
// to, cc and bcc.
type program struct {
	name, binary string
	send         func(t *testing.T, e *programEnv, sendmail, subject, to, cc, bcc string)
}

var programs = []program{
	{"git send-email", "git", func(t *testing.T, e *programEnv, sendmail, subject, to, cc, bcc string) {
		repo := filepath.Join(e.home, "repo-"+strings.ReplaceAll(subject, " ", "-"))
		e.run(t, "", e.home, "git", "init", "-q", repo)
		if err := os.WriteFile(filepath.Join(repo, "file"), []byte(subject+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		e.run(t, "", repo, "git", "add", "file")
		e.run(t, "", repo, "git", "commit", "-q", "-m", subject)
		patch := strings.TrimSpace(e.run(t, "", repo, "git", "format-patch", "-1", "-o", filepath.Join(repo, "out")))
		e.run(t, "", repo, "git", "send-email", "--sendmail-cmd="+sendmail, "--confirm=never", "--suppress-cc=all",
			"--from=Alice <"+realUser+"@"+realDomain+">", "--to="+to, "--cc="+cc, "--bcc="+bcc, patch)
	}},
	{"s-nail", "s-nail", func(t *testing.T, e *programEnv, sendmail, subject, to, cc, bcc string) {
		e.run(t, "body of "+subject+"\n", e.home, "s-nail", "-:/", "-Smta="+sendmail, "-r", realUser+"@"+realDomain,
			"-s", subject, "-c", cc, "-b", bcc, to)
	}},
	{"mutt", "mutt", func(t *testing.T, e *programEnv, sendmail, subject, to, cc, bcc string) {
		e.run(t, "body of "+subject+"\n", e.home, "mutt", "-n", "-F", "/dev/null",
			"-e", `set sendmail="`+sendmail+`"; set from=`+realUser+"@"+realDomain+`; set use_from=yes; set record=""; set folder=`+e.home+`; set spoolfile=""`,
			"-s", subject, "-c", cc, "-b", bcc, "--", to)
	}},
}

func TestMailPrograms(t *testing.T) {
	dir := t.TempDir()
	mpp, sendmail := buildMpp(t, dir)
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			testenv.NeedCommand(t, p.binary)
			if p.binary == "git" {
				if out, err := exec.Command("git", "send-email", "-h").CombinedOutput(); !strings.Contains(string(out), "sendmail-cmd") {
					testenv.Missing(t, "git send-email", fmt.Sprintf("install git-email (sudo test/setup.sh): %v %s", err, out))
				}
			}
			slug := strings.ReplaceAll(p.name, " ", "")
			rcpt := func(role string) string { return slug + "-" + role + "@" + realDomain }

			// Server up: delivered at once, nothing queued.
			addr, root := realServer(t, nil)
			e := newProgramEnv(t, addr)
			p.send(t, e, sendmail, "up "+p.name, rcpt("to"), rcpt("cc"), rcpt("bcc"))
			checkDelivered(t, root, "up "+p.name, rcpt("to"), rcpt("cc"), rcpt("bcc"))
			if n := queuedCount(t, e.queue); n != 0 {
				t.Errorf("server up: %d messages left queued", n)
			}

			// Server down: the program succeeds, the message waits in
			// the queue, and mpp flush delivers it.
			e = newProgramEnv(t, testharness.ClosedAddr(t))
			p.send(t, e, sendmail, "down "+p.name, rcpt("to"), rcpt("cc"), rcpt("bcc"))
			if n := queuedCount(t, e.queue); n != 1 {
				t.Fatalf("server down: %d messages queued, want 1", n)
			}
			addr, root = realServer(t, nil)
			e.flushTo(t, mpp, addr)
			checkDelivered(t, root, "down "+p.name, rcpt("to"), rcpt("cc"), rcpt("bcc"))
		})
	}
}

// cron mails a job's output to MAILTO through /usr/sbin/sendmail, which
// it cannot be told to replace. So cron runs in a private mount namespace
// where mpp is bind-mounted on /usr/sbin/sendmail, with its own crontab,
// an empty /etc/cron.d and /var/spool, and a /root holding mpp's config:
// the host's sendmail, crontabs and spool are not touched. cron runs the
// job as root, so mpp uses the system queue, /var/spool/mpp/queue, bound
// to a directory of the test. Cron starts jobs on the minute: the test
// takes up to three minutes.
func TestCronMail(t *testing.T) {
	testenv.NeedRoot(t)
	cron := testenv.NeedCommand(t, "cron")
	unshare := testenv.NeedCommand(t, "unshare")
	testenv.NeedFile(t, "/usr/sbin/sendmail") // the mount point
	if testing.Short() {
		t.Skip("waits for cron's minutes")
	}
	dir := t.TempDir()
	mpp, _ := buildMpp(t, dir)
	root := filepath.Join(dir, "root")
	spool := filepath.Join(dir, "spool-mpp")
	for _, d := range []string{filepath.Join(root, ".config", "mpp"), spool} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	config := filepath.Join(root, ".config", "mpp", "config")
	writeConfig := func(addr string) {
		host, port, _ := strings.Cut(addr, ":")
		text := "server " + host + "\nport " + port + "\nuser " + realUser + "\npassword " + realPassword + "\n"
		if err := os.WriteFile(config+".new", []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(config+".new", config); err != nil {
			t.Fatal(err)
		}
	}
	rcpt := "cron-mailto@" + realDomain
	crontab := filepath.Join(dir, "crontab")
	if err := os.WriteFile(crontab, []byte("SHELL=/bin/sh\nPATH=/usr/bin:/bin\nMAILTO="+rcpt+"\n* * * * * root echo cron-job-output\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"set -e",
		"mount --bind " + mpp + " /usr/sbin/sendmail",
		"mount --bind " + crontab + " /etc/crontab",
		"mount -t tmpfs none /etc/cron.d",
		"mount -t tmpfs none /var/spool",
		"mkdir -p /var/spool/cron/crontabs /var/spool/mpp",
		"mount --bind " + spool + " /var/spool/mpp",
		"mount --bind " + root + " /root",
		"mount -t tmpfs none /run",
		"exec " + cron + " -f -L 15",
	}, "\n")

	addr, maildir := realServer(t, nil)
	writeConfig(addr)
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "--fork", "--kill-child", "sh", "-c", script)
	var out testenv.LogBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitFor := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(75 * time.Second); !done(); time.Sleep(500 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s after 75 s; cron said:\n%s", what, out.String())
			}
		}
	}
	mailOf := func(root string) []string {
		files, _ := filepath.Glob(filepath.Join(root, rcpt, "new", "*"))
		return files
	}
	waitFor("mail from cron", func() bool { return len(mailOf(maildir)) > 0 })
	data, err := os.ReadFile(mailOf(maildir)[0])
	if err != nil {
		t.Fatal(err)
	}
	header, body, _ := strings.Cut(string(data), "\n\n")
	// cron writes "From: root (Cron Daemon)"; the server keeps it and
	// names the user who logged in in Sender: and Return-Path:.
	me := realUser + "@" + realDomain
	if body != "cron-job-output\n" || headerField(header, "Sender") != me || headerField(header, "Return-Path") != "<"+me+">" {
		t.Errorf("cron's mail:\n%s", data)
	}
	dirs, _ := filepath.Glob(filepath.Join(maildir, "*"))
	if len(dirs) != 1 {
		t.Errorf("delivered to %q, want only %s", dirs, rcpt)
	}

	// The server goes away: the next job's mail is queued in root's
	// queue.
	queue := filepath.Join(spool, "queue")
	writeConfig(testharness.ClosedAddr(t))
	waitFor("queued mail", func() bool { return queuedCount(t, queue) > 0 })
	cmd.Process.Kill()
	cmd.Wait()
	n := queuedCount(t, queue)

	// A server again: mpp flush (as root, with root's config) delivers.
	addr, maildir = realServer(t, nil)
	writeConfig(addr)
	flush := exec.Command(mpp, "flush", "-v")
	flush.Env = []string{"MPP_CONFIG=" + config, "MPP_QUEUE_DIR=" + queue, "PATH=/usr/bin:/bin"}
	if b, err := flush.CombinedOutput(); err != nil {
		t.Fatalf("mpp flush: %v\n%s", err, b)
	}
	if got := len(mailOf(maildir)); got != n || queuedCount(t, queue) != 0 {
		t.Errorf("flush delivered %d of %d queued; %d left", got, n, queuedCount(t, queue))
	}
}
