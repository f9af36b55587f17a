package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mppd/mppd/internal/mppqueue"
	"github.com/mppd/mppd/internal/testharness"
)

// queueEnv is the environment of a sendmail run with its own queue.
func queueEnv(t *testing.T, addr string) map[string]string {
	t.Helper()
	return map[string]string{"MPP_SERVER": addr, "MPP_USER": realUser, "MPP_PASSWORD": realPassword,
		"MPP_QUEUE_DIR": filepath.Join(t.TempDir(), "queue")}
}

// runCLI runs "mpp args...", or with a path first, the program of that
// name ("/usr/sbin/sendmail").
func runCLI(env map[string]string, stdin string, args ...string) (*testCLI, int) {
	c := newTestCLI(stdin, env)
	if strings.HasPrefix(args[0], "/") {
		return c, c.main(args)
	}
	return c, c.run(args)
}

func queued(t *testing.T, dir string, failed bool) []mppqueue.Entry {
	t.Helper()
	q, err := mppqueue.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	list, err := q.List(failed)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// With the server down, sendmail queues (status 0, one line saying so),
// mpp queue and sendmail -bp list the message with its recipients, and
// mpp flush delivers it once a server is there: to the recipients given,
// the Bcc stripped, the sender the user who logged in, the Message-ID
// given at queueing kept. The queue then is empty, and held no password.
func TestQueueWhileServerDown(t *testing.T) {
	d := "@" + realDomain
	env := queueEnv(t, testharness.ClosedAddr(t))
	c, st := runCLI(env, "To: q1"+d+"\nSubject: down\n\nbody\n", "sendmail", "-oi", "q1"+d, "hidden"+d)
	if st != exOK || !strings.HasPrefix(c.stderr.String(), "mpp: queued ") || !strings.Contains(c.stderr.String(), "mpp flush will post it") {
		t.Fatalf("server down: status %d, stderr %q", st, c.stderr.String())
	}
	list := queued(t, env["MPP_QUEUE_DIR"], true)
	if len(list) != 1 || strings.Join(list[0].Meta.Recipients, " ") != "q1"+d+" hidden"+d || list[0].Meta.User != realUser {
		t.Fatalf("queue: %+v", list)
	}
	files, _ := filepath.Glob(filepath.Join(env["MPP_QUEUE_DIR"], "*"))
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), realPassword) {
			t.Errorf("%s holds the password", f)
		}
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", f, st.Mode().Perm())
		}
	}
	for _, argv := range [][]string{{"queue"}, {"/usr/sbin/sendmail", "-bp"}} {
		c, st := runCLI(env, "", argv...)
		if st != exOK || !strings.Contains(c.stdout.String(), "1 queued, 0 failed") || !strings.Contains(c.stdout.String(), "to: q1"+d+", hidden"+d) {
			t.Errorf("%q: %d %q", argv, st, c.stdout.String())
		}
	}
	// Still down: flush keeps it, says so, EX_UNAVAILABLE.
	if c, st := runCLI(env, "", "flush"); st != exUnavailable || !strings.Contains(c.stderr.String(), "1 message(s) stay queued") {
		t.Errorf("flush, server down: %d %q", st, c.stderr.String())
	}
	if c, st := runCLI(env, "", "flush", "-q"); st != exUnavailable || c.stderr.Len() != 0 {
		t.Errorf("flush -q, server down: %d %q", st, c.stderr.String())
	}

	addr, root := realServer(t, nil)
	env["MPP_SERVER"] = addr
	if c, st := runCLI(env, "", "flush", "-v"); st != exOK || !strings.Contains(c.stderr.String(), "mpp: posted ") {
		t.Fatalf("flush: %d %q", st, c.stderr.String())
	}
	var ids []string
	for _, r := range []string{"q1" + d, "hidden" + d} {
		header, body := delivered(t, root, r)
		if body != "body\n" || strings.Contains(strings.ToLower(header), "bcc") || !strings.Contains(header, "\nFrom: "+realUser+d+"\n") {
			t.Errorf("%s got:\n%s\n\n%s", r, header, body)
		}
		for _, l := range strings.Split(header, "\n") {
			if strings.HasPrefix(l, "Message-ID: ") {
				ids = append(ids, l)
			}
		}
	}
	if len(ids) != 2 || ids[0] != ids[1] {
		t.Errorf("Message-IDs %q: want the one given at queueing, once each", ids)
	}
	if list := queued(t, env["MPP_QUEUE_DIR"], true); len(list) != 0 {
		t.Errorf("queue after flush: %+v", list)
	}
	// Nothing queued: flush asks for no password and says nothing.
	delete(env, "MPP_PASSWORD")
	if c, st := runCLI(env, "", "flush"); st != exOK || c.stderr.Len() != 0 || len(c.prompts) != 0 {
		t.Errorf("empty flush: %d %q %q", st, c.stderr.String(), c.prompts)
	}
	if c, st := runCLI(env, "", "queue"); st != exOK || !strings.Contains(c.stdout.String(), "is empty") {
		t.Errorf("empty queue: %d %q", st, c.stdout.String())
	}
}

// The server up: sendmail posts at once and leaves nothing queued.
func TestQueueServerUp(t *testing.T) {
	addr, root := realServer(t, nil)
	env := queueEnv(t, addr)
	if c, st := runCLI(env, "hi\n", "sendmail", "up@"+realDomain); st != exOK || c.stderr.Len() != 0 {
		t.Fatalf("%d %q", st, c.stderr.String())
	}
	if _, body := delivered(t, root, "up@"+realDomain); body != "hi\n" {
		t.Errorf("body %q", body)
	}
	if list := queued(t, env["MPP_QUEUE_DIR"], true); len(list) != 0 {
		t.Errorf("left queued: %+v", list)
	}
}

// A 451 to the message: queued with a retry time, which plain flush
// respects and flush -a does not; a 550: moved aside, reported, and put
// back by mpp queue --requeue; a 530 to the login in flush: every due
// message aside, EX_NOPERM. Refusals at sendmail time go to the caller
// and leave nothing queued.
func TestQueueServerReplies(t *testing.T) {
	env := queueEnv(t, "")
	dir := env["MPP_QUEUE_DIR"]
	msg := "To: bob@x.test\n\nhi\n"

	env["MPP_SERVER"] = fakeServer(t, map[string]string{"message": "451 Message not queued, try again later."}).Addr()
	if c, st := runCLI(env, msg, "sendmail", "-t"); st != exOK || !strings.Contains(c.stderr.String(), "451 Message not queued") {
		t.Fatalf("451: %d %q", st, c.stderr.String())
	}
	list := queued(t, dir, false)
	if len(list) != 1 || list[0].State.Attempts != 1 || list[0].State.NextTry.IsZero() {
		t.Fatalf("after 451: %+v", list)
	}
	ok := fakeServer(t, nil)
	env["MPP_SERVER"] = ok.Addr()
	if c, st := runCLI(env, "", "flush"); st != exOK || len(ok.Sessions()) != 0 {
		t.Errorf("flush before the retry time posted: %d %q %d sessions", st, c.stderr.String(), len(ok.Sessions()))
	}
	if c, st := runCLI(env, "", "flush", "-a"); st != exOK || len(queued(t, dir, true)) != 0 {
		t.Errorf("flush -a: %d %q", st, c.stderr.String())
	}
	ok.Close()
	if n := len(ok.Sessions()); n != 1 || string(ok.Sessions()[0].Texts[0])[:len("To: bob@x.test\r\nMessage-ID: <")] != "To: bob@x.test\r\nMessage-ID: <" {
		t.Errorf("posted %d sessions: %+v", n, ok.Sessions())
	}

	// Refused at sendmail time: the caller hears it, nothing stays.
	env["MPP_SERVER"] = fakeServer(t, map[string]string{"message": "550 Message refused by the mail system."}).Addr()
	if c, st := runCLI(env, msg, "sendmail", "-t"); st != exDataErr || c.stderr.String() != "mpp: server refused the message: 550 Message refused by the mail system.\n" {
		t.Errorf("550 at sendmail time: %d %q", st, c.stderr.String())
	}
	if list := queued(t, dir, true); len(list) != 0 {
		t.Errorf("left after 550: %+v", list)
	}

	// Refused at flush time: moved aside, listed as failed, requeued.
	env["MPP_SERVER"] = testharness.ClosedAddr(t)
	for range 2 {
		runCLI(env, msg, "sendmail", "-t")
	}
	env["MPP_SERVER"] = fakeServer(t, map[string]string{"message": "550 Message refused by the mail system."}).Addr()
	c, st := runCLI(env, "", "flush")
	if st != exDataErr || strings.Count(c.stderr.String(), "refused for good, moved to "+filepath.Join(dir, "failed")) != 2 {
		t.Errorf("flush with 550: %d %q", st, c.stderr.String())
	}
	if c, _ := runCLI(env, "", "/usr/sbin/sendmail", "-bp"); !strings.Contains(c.stdout.String(), "0 queued, 2 failed") ||
		!strings.Contains(c.stdout.String(), "FAILED after 1 attempt(s): server refused the message: 550 ") {
		t.Errorf("-bp after 550: %q", c.stdout.String())
	}
	if c, st := runCLI(env, "", "queue", "--requeue", "all"); st != exOK || !strings.Contains(c.stdout.String(), "2 message(s) back") {
		t.Errorf("requeue: %d %q", st, c.stdout.String())
	}
	env["MPP_SERVER"] = fakeServer(t, map[string]string{"PASS": "530 Authentication Failure."}).Addr()
	if c, st := runCLI(env, "", "flush"); st != exNoPerm || !strings.Contains(c.stderr.String(), "2 message(s) moved to") {
		t.Errorf("flush with 530: %d %q", st, c.stderr.String())
	}
	if list := queued(t, dir, true); len(list) != 2 || !list[0].Failed || !list[1].Failed {
		t.Errorf("after 530: %+v", list)
	}
}

// A queue that cannot be written fails loudly: EX_CANTCREAT, nothing
// posted.
func TestQueueCannotBeWritten(t *testing.T) {
	srv := fakeServer(t, nil)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	env := queueEnv(t, srv.Addr())
	env["MPP_QUEUE_DIR"] = filepath.Join(file, "queue")
	if c, st := runCLI(env, "hi\n", "sendmail", "a@x.test"); st != exCantCreat || !strings.HasPrefix(c.stderr.String(), "mpp: cannot queue in ") {
		t.Errorf("%d %q", st, c.stderr.String())
	}
	delete(env, "MPP_QUEUE_DIR") // and no HOME either
	if c, st := runCLI(env, "hi\n", "sendmail", "a@x.test"); st != exCantCreat || !strings.Contains(c.stderr.String(), "no queue directory") {
		t.Errorf("no directory: %d %q", st, c.stderr.String())
	}
	// mpp flush cannot work without one either; for mpp queue the
	// caller has to say where it is.
	if c, st := runCLI(env, "", "flush"); st != exCantCreat || !strings.Contains(c.stderr.String(), "no queue directory") {
		t.Errorf("flush, no directory: %d %q", st, c.stderr.String())
	}
	if c, st := runCLI(env, "", "queue"); st != exUsage || !strings.Contains(c.stderr.String(), "no queue directory") {
		t.Errorf("queue, no directory: %d %q", st, c.stderr.String())
	}
	srv.Close()
	if n := len(srv.Sessions()); n != 0 {
		t.Errorf("%d sessions", n)
	}
}

// Two flushes at once never post a message twice.
func TestConcurrentFlushes(t *testing.T) {
	env := queueEnv(t, testharness.ClosedAddr(t))
	const n = 12
	for i := range n {
		if _, st := runCLI(env, "x\n", "sendmail", "c"+string(rune('a'+i))+"@"+realDomain); st != exOK {
			t.Fatal(st)
		}
	}
	addr, root := realServer(t, nil)
	env["MPP_SERVER"] = addr
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c, st := runCLI(env, "", "flush"); st != exOK {
				t.Errorf("flush: %d %q", st, c.stderr.String())
			}
		}()
	}
	wg.Wait()
	for i := range n {
		delivered(t, root, "c"+string(rune('a'+i))+"@"+realDomain) // exactly one each
	}
}

// A message queued by one user is not posted by another.
func TestFlushOtherUser(t *testing.T) {
	env := queueEnv(t, testharness.ClosedAddr(t))
	runCLI(env, "x\n", "sendmail", "o@"+realDomain)
	srv := fakeServer(t, nil)
	env["MPP_SERVER"], env["MPP_USER"] = srv.Addr(), "bob"
	if c, st := runCLI(env, "", "flush"); st != exTempFail || !strings.Contains(c.stderr.String(), "queued by user alice") {
		t.Errorf("%d %q", st, c.stderr.String())
	}
	srv.Close()
	if len(srv.Sessions()) != 0 {
		t.Error("posted as another user")
	}
}
