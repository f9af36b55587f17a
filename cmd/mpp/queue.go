package main

// The local queue: mpp sendmail queues a message the server cannot take
// now (it cannot be reached, or answers 4yz), mpp flush posts what is
// queued, mpp queue lists it. The queue itself (files, lock, retry state)
// is package mppqueue; this file decides what each server reply means for
// a queued message.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mppd/mppd/internal/message"
	"github.com/mppd/mppd/internal/mppclient"
	"github.com/mppd/mppd/internal/mppqueue"
)

// sendmailLockWait bounds how long mpp sendmail waits for another mpp
// posting from the queue (a flush against a slow server) before it leaves
// its message to that one or to the next flush.
const sendmailLockWait = 10 * time.Second

// outcome is what one attempt to post means for a queued message.
type outcome int

const (
	posted  outcome = iota // 250: remove it
	retry                  // 4yz to the message: try it again later
	refused                // 550 to the message, 530/501 to the login: move it aside
	stopped                // no session (down, 4yz to the login, protocol error): keep all
)

// classify sorts the result of a session step for a queued message.
func classify(err error) outcome {
	var re *mppclient.ReplyError
	switch {
	case err == nil:
		return posted
	case errors.As(err, &re):
		code := re.Reply.Code
		switch {
		case code/100 == 4 && (re.Step == "message" || re.Step == "DATA"):
			return retry
		case code == 550 && re.Step == "message",
			code == 530, code == 501 && (re.Step == "USER" || re.Step == "PASS"):
			return refused
		}
	}
	return stopped
}

// openQueue opens the queue of s, or says why not with EX_CANTCREAT.
func (c *cli) openQueue(s *settings) (*mppqueue.Queue, int) {
	if s.queueDir == "" {
		return nil, c.errorf(exCantCreat, "cannot queue: no queue directory (set HOME, or %s, or queue_dir in the config file; or switch the queue off with %s=off)", envQueueDir, envQueue)
	}
	q, err := mppqueue.Open(s.queueDir)
	if err != nil {
		return nil, c.errorf(exCantCreat, "cannot queue in %s: %v", s.queueDir, err)
	}
	return q, exOK
}

// queueSettings resolves cf for mpp flush and mpp queue, which work on a
// queue that is there already: without a queue directory it says so and
// returns status noDir.
func (c *cli) queueSettings(cf *connFlags, noDir int) (*settings, int) {
	s, err := c.resolve(cf)
	if err != nil {
		return nil, c.errorf(exitStatusOf(err), "%v", err)
	}
	if s.queueDir == "" {
		return nil, c.errorf(noDir, "no queue directory (set HOME, or %s, or queue_dir in the config file)", envQueueDir)
	}
	return s, exOK
}

// queueAndPost writes the message to the queue, then posts it at once.
// What the server takes is removed again; what it cannot take now stays
// for mpp flush, and mpp exits 0 after saying so; what it refuses is
// removed and reported with the status mpp send would give, since the
// caller is there to hear it.
func (c *cli) queueAndPost(s *settings, password string, opt mppclient.Options, meta mppqueue.Meta, msg io.Reader) int {
	q, st := c.openQueue(s)
	if q == nil {
		return st
	}
	in := &message.SourceReader{R: msg}
	id, err := q.Add(meta, in)
	if in.Err != nil {
		return c.errorf(exIOErr, "reading the message: %v", in.Err)
	}
	if err != nil {
		return c.errorf(exCantCreat, "cannot queue in %s: %v", s.queueDir, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), sendmailLockWait)
	lock, err := q.Lock(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(c.stderr, "mpp: queued %s: another mpp is posting from the queue (%v); it or the next mpp flush posts this one\n", id, err)
		return exOK
	}
	defer lock.Unlock()
	_, text, err := q.Message(id)
	if errors.Is(err, mppqueue.ErrGone) {
		return exOK // a flush that ran while we waited posted it
	}
	if err != nil {
		return c.errorf(exCantCreat, "%v", err)
	}
	err = post(s, password, bytes.NewReader(text), opt)
	switch out := classify(err); {
	case out == posted:
		if err := q.Remove(id); err != nil {
			// Posted, but still queued: the next flush posts it again.
			// Loud, so the user can remove it (mpp queue shows it).
			return c.errorf(exCantCreat, "posted, but cannot remove %s from the queue: %v", id, err)
		}
		return exOK
	case out == retry || out == stopped && curedByWaiting(err):
		if out == retry {
			q.Retry(id, time.Now(), err.Error())
		}
		fmt.Fprintf(c.stderr, "mpp: queued %s (%v); mpp flush will post it\n", id, err)
		return exOK
	}
	q.Remove(id)
	return c.errorf(exitStatus(err), "%v", err)
}

// curedByWaiting reports whether a failure to post may go away by itself:
// no connection, or a temporary (4yz) reply.
func curedByWaiting(err error) bool {
	var re *mppclient.ReplyError
	if errors.As(err, &re) {
		return re.Temporary()
	}
	return errors.As(err, new(*mppclient.ConnError))
}

// newMessageID returns a Message-ID for a message mpp queues.
func newMessageID() string {
	var r [12]byte
	rand.Read(r[:])
	host, err := os.Hostname()
	if err != nil || !isDomainLike(host) {
		host = "mpp.invalid"
	}
	return "<" + time.Now().UTC().Format("20060102150405") + "." + hex.EncodeToString(r[:]) + "@" + host + ">"
}

// isDomainLike reports whether s may stand as the right side of a
// Message-ID: letters, digits, dots and hyphens only.
func isDomainLike(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}

type flushOptions struct {
	all   bool // also the messages whose retry time has not come
	quiet bool // say nothing about messages that only stay queued
}

const flushUsage = `usage: mpp flush [-a] [-q] [-v] [-s server] [-u user] [--tls] ...

Posts the queued messages, oldest first, in one session, and removes each
once the server has taken it (250). A message the server refuses for the
time being (4yz) is tried again later, after 5 minutes, then 10, doubling
up to 4 hours; one it refuses for good (550, or 530 to the login) is moved
to the failed/ directory of the queue and reported. Without a server, all
stay queued. Exits 0 when nothing is left to post now, 75 when messages
stay queued, or the status of a refusal (65, 67, 77). Takes the connection
options of mpp send; the password is asked for only when there is
something to post. See mpp(1).

`

func (c *cli) flush(args []string) int {
	fs := flag.NewFlagSet("mpp flush", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs)
	var o flushOptions
	fs.BoolVar(&o.all, "a", false, "post every queued message, also those whose retry time has not come")
	fs.BoolVar(&o.quiet, "q", false, "say nothing about messages that only stay queued (for cron)")
	if st, done := c.parseFlags(fs, flushUsage, args); done {
		return st
	}
	if fs.NArg() > 0 {
		return c.errorf(exUsage, "flush takes no arguments, got %q", fs.Args())
	}
	return c.flushQueue(&cf, o)
}

// flushQueue posts the queue of the settings cf leads to.
func (c *cli) flushQueue(cf *connFlags, o flushOptions) int {
	s, st := c.queueSettings(cf, exCantCreat)
	if s == nil {
		return st
	}
	if _, err := os.Stat(s.queueDir); errors.Is(err, os.ErrNotExist) {
		return exOK // nothing was ever queued
	}
	q, st := c.openQueue(s)
	if q == nil {
		return st
	}
	lock, err := q.Lock(context.Background())
	if err != nil {
		return c.errorf(exCantCreat, "locking the queue in %s: %v", s.queueDir, err)
	}
	defer lock.Unlock()
	now := time.Now()
	q.RemoveStale(now)
	entries, err := q.List(false)
	if err != nil {
		return c.errorf(exCantCreat, "reading the queue in %s: %v", s.queueDir, err)
	}
	var due []mppqueue.Entry
	status := exOK
	for _, e := range entries {
		switch {
		case e.Meta.User != "" && e.Meta.User != s.user:
			// Posting as another user would make it the sender.
			if !o.quiet {
				fmt.Fprintf(c.stderr, "mpp: %s stays queued: it was queued by user %s (flush as that user: -u %s)\n", e.ID, e.Meta.User, e.Meta.User)
			}
			status = exTempFail
		case o.all || e.Due(now):
			due = append(due, e)
		}
	}
	if len(due) == 0 {
		return status
	}

	// Only now, with something to post, the password.
	opt, err := c.sessionOptions(s, cf.verbose, "use -u, or set "+envUser)
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}
	password, err := c.getPassword(s)
	if err != nil {
		return c.errorf(exitStatusOf(err), "%v", err)
	}

	var cl *mppclient.Client
	defer func() {
		if cl != nil {
			cl.Quit()
		}
	}()
	worst := func(st int) {
		// A refusal outranks "stays queued", which outranks success.
		if status == exOK || status == exTempFail || status == exUnavailable {
			status = st
		}
	}
	for i, e := range due {
		meta, text, err := q.Message(e.ID)
		var damaged *mppqueue.DamagedError
		switch {
		case errors.Is(err, mppqueue.ErrGone):
			continue
		case errors.As(err, &damaged):
			q.MoveAside(e.ID, now, err.Error())
			fmt.Fprintf(c.stderr, "mpp: %v; moved to %s\n", err, failedDirOf(q))
			worst(exDataErr)
			continue
		case err != nil:
			return c.errorf(exCantCreat, "%v", err)
		}
		to := strings.Join(meta.Recipients, ", ")
		if cl == nil {
			cl, err = dialLogin(context.Background(), s, password, opt)
		}
		if err == nil {
			err = cl.Send(bytes.NewReader(text))
		}
		switch classify(err) {
		case posted:
			if cf.verbose {
				fmt.Fprintf(c.stderr, "mpp: posted %s to %s\n", e.ID, to)
			}
			if err := q.Remove(e.ID); err != nil {
				return c.errorf(exCantCreat, "posted, but cannot remove %s from the queue: %v", e.ID, err)
			}
		case retry:
			st, _ := q.Retry(e.ID, time.Now(), err.Error())
			if !o.quiet {
				fmt.Fprintf(c.stderr, "mpp: %s to %s stays queued until %s: %v\n", e.ID, to, st.NextTry.Local().Format(time.DateTime), err)
			}
			worst(exTempFail)
		case refused:
			if isLoginStep(err) {
				// The login, not this message, was refused: every
				// message of this run would be, so all go aside,
				// and no more wrong passwords are sent until the
				// user puts them back (mpp queue --requeue).
				for _, r := range due[i:] {
					q.MoveAside(r.ID, now, err.Error())
				}
				return c.errorf(exitStatus(err), "%v; %d message(s) moved to %s: fix the login, then mpp queue --requeue all", err, len(due)-i, failedDirOf(q))
			}
			q.MoveAside(e.ID, now, err.Error())
			fmt.Fprintf(c.stderr, "mpp: %s to %s refused for good, moved to %s: %v\n", e.ID, to, failedDirOf(q), err)
			worst(exitStatus(err))
		case stopped:
			if cl != nil {
				cl.Close()
				cl = nil
			}
			if !o.quiet {
				fmt.Fprintf(c.stderr, "mpp: %d message(s) stay queued: %v\n", len(due)-i, err)
			}
			worst(exitStatus(err))
			return status
		}
	}
	return status
}

func isLoginStep(err error) bool {
	var re *mppclient.ReplyError
	return errors.As(err, &re) && (re.Step == "USER" || re.Step == "PASS")
}

func failedDirOf(q *mppqueue.Queue) string {
	return q.Dir + string(os.PathSeparator) + "failed"
}

const queueUsage = `usage: mpp queue [--requeue ID|all]

Lists the queued messages, oldest first, then those the server refused for
good (in the failed/ directory of the queue), with their recipients and
retry state. --requeue puts failed messages back in the queue, to be
posted by the next mpp flush. See mpp(1).

`

func (c *cli) queue(args []string) int {
	fs := flag.NewFlagSet("mpp queue", flag.ContinueOnError)
	requeue := fs.String("requeue", "", "put the failed message `ID` (or all of them) back in the queue")
	config := fs.String("config", "", "config `file` (as for mpp send)")
	if st, done := c.parseFlags(fs, queueUsage, args); done {
		return st
	}
	if fs.NArg() > 0 {
		return c.errorf(exUsage, "queue takes no arguments, got %q", fs.Args())
	}
	return c.listQueue(&connFlags{config: *config}, *requeue)
}

// listQueue prints the queue (mpp queue, sendmail -bp), or first requeues
// failed messages.
func (c *cli) listQueue(cf *connFlags, requeue string) int {
	s, st := c.queueSettings(cf, exUsage)
	if s == nil {
		return st
	}
	if _, err := os.Stat(s.queueDir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(c.stdout, "The queue (%s) is empty.\n", s.queueDir)
		return exOK
	}
	q, st := c.openQueue(s)
	if q == nil {
		return st
	}
	entries, err := q.List(true)
	if err != nil {
		return c.errorf(exIOErr, "reading the queue in %s: %v", s.queueDir, err)
	}
	if requeue != "" {
		n := 0
		for _, e := range entries {
			if e.Failed && (requeue == "all" || requeue == e.ID) {
				if err := q.Requeue(e.ID); err != nil {
					return c.errorf(exCantCreat, "requeueing %s: %v", e.ID, err)
				}
				n++
			}
		}
		if n == 0 && requeue != "all" {
			return c.errorf(exUsage, "no failed message %s", requeue)
		}
		fmt.Fprintf(c.stdout, "%d message(s) back in the queue.\n", n)
		return exOK
	}
	queued, failed := 0, 0
	for _, e := range entries {
		if e.Failed {
			failed++
		} else {
			queued++
		}
	}
	if len(entries) == 0 {
		fmt.Fprintf(c.stdout, "The queue (%s) is empty.\n", s.queueDir)
		return exOK
	}
	fmt.Fprintf(c.stdout, "%d queued, %d failed, in %s\n", queued, failed, s.queueDir)
	for _, e := range entries {
		fmt.Fprintf(c.stdout, "\n%s  %d octets  queued %s  user %s\n", e.ID, e.Meta.Size,
			e.Meta.Created.Local().Format(time.DateTime), e.Meta.User)
		fmt.Fprintf(c.stdout, "  to: %s\n", strings.Join(e.Meta.Recipients, ", "))
		switch {
		case e.Failed:
			fmt.Fprintf(c.stdout, "  FAILED after %d attempt(s): %s\n", e.State.Attempts, e.State.Reason)
		case e.State.Attempts > 0:
			fmt.Fprintf(c.stdout, "  %d attempt(s), next not before %s: %s\n", e.State.Attempts,
				e.State.NextTry.Local().Format(time.DateTime), e.State.LastError)
		}
	}
	return exOK
}
