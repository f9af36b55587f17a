// Package sendmail delivers by running the host's sendmail-compatible
// program (Postfix, Exim, OpenSMTPD and Sendmail all provide
// /usr/sbin/sendmail) as the authenticated user's local account, so the
// MTA's queue, logs and trace headers name the real sender (RFC 1204 §1:
// MPP exists to stop forgery).
//
// One submission is:
//
//	/usr/sbin/sendmail -i -f <authenticated address> -- <rcpt>...
//
// run with no shell, as the account's uid, primary gid and supplementary
// groups, in its own process group, in "/", with an environment built from
// scratch, with the fully staged message on stdin, and killed (the whole
// group) when it outlives the timeout. Only exit status 0 is success.
package sendmail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/address"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/privdrop"
)

// Backend runs sendmail for each message. It is safe for concurrent use.
type Backend struct {
	cfg      config.Sendmail
	log      *slog.Logger
	lookup   lookupFunc
	fallback *account // resolved at New; nil when not configured
	// privileged are the gids of privileged_groups (and 0), resolved at
	// New; an account holding one is refused.
	privileged map[uint32]bool

	// waitDelay bounds how long Wait waits for sendmail's output pipes to
	// close after the process has exited or been killed: a grandchild that
	// inherited them cannot hang a session. Tests shorten it.
	waitDelay time.Duration
	// spoolDirs are checked before each run (readOnlySpool); tests
	// change them.
	spoolDirs []string
	// noCredential runs the child as this process's own user without
	// touching credentials; only tests that run without root set it.
	noCredential bool
	// starter forks every sendmail from one thread whose capability
	// state was reduced once (privdrop.Starter).
	starter *privdrop.Starter

	recentMu sync.Mutex
	recent   map[string]recentAccount // accounts resolved at login, by name
}

var (
	_ delivery.Deliverer      = (*Backend)(nil)
	_ delivery.AccountChecker = (*Backend)(nil)
)

// outputLimit is how much of sendmail's stdout and stderr (together) is
// kept for the log; the rest is read and dropped so that the child never
// blocks on a full pipe.
const outputLimit = 4 << 10

// defaultWaitDelay is exec.Cmd.WaitDelay for every run.
const defaultWaitDelay = 5 * time.Second

// childPath is the whole PATH the child gets.
const childPath = "/usr/sbin:/usr/bin:/sbin:/bin"

// New checks cfg, resolves the fallback account, and, when switch_user is
// on, checks that this process may switch users (CheckPrivileges). Every
// child inherits mppd's core-file limit, which mppd's main sets to 0. A
// missing sendmail program is only a warning here: it may be
// installed later, and until then every message gets 451.
func New(cfg config.Sendmail, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.SwitchUser {
		if err := CheckPrivileges(); err != nil {
			return nil, err
		}
	} else if os.Geteuid() == 0 {
		return nil, errors.New("delivery.sendmail.switch_user: false is not allowed while mppd runs as root: every message would be submitted as root")
	}
	privileged, err := privilegedGIDs(cfg.PrivilegedGroups)
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: cfg, log: log, lookup: lookupNSS, privileged: privileged, waitDelay: defaultWaitDelay, spoolDirs: spoolDirs,
		starter: privdrop.NewStarter(privdrop.Options{})}
	if cfg.FallbackAccount != "" {
		acct, err := b.lookup(cfg.FallbackAccount)
		if err != nil {
			return nil, fmt.Errorf("delivery.sendmail.fallback_account: %q: %w", cfg.FallbackAccount, err)
		}
		acct, err = b.checkPolicy(acct)
		if err != nil {
			return nil, fmt.Errorf("delivery.sendmail.fallback_account: %q cannot be used: %w", cfg.FallbackAccount, err)
		}
		b.fallback = &acct
	}
	if err := checkExecutable(cfg.Path); err != nil {
		log.Warn("sendmail program not usable yet; messages will get 451 until it is", logkey.Backend, "sendmail", "path", cfg.Path, logkey.Err, err)
	}
	return b, nil
}

// String describes the backend for the start-up log.
func (b *Backend) String() string {
	as := "each user's account"
	if !b.cfg.SwitchUser {
		as = fmt.Sprintf("mppd's own uid %d", os.Geteuid())
	}
	fb := "none"
	if b.fallback != nil {
		fb = fmt.Sprintf("%s (uid %d)", b.fallback.Name, b.fallback.UID)
	}
	return fmt.Sprintf("sendmail %s as %s, min_uid %d, fallback_account %s, timeout %s",
		b.cfg.Path, as, b.cfg.MinUID, fb, b.cfg.Timeout)
}

// checkExecutable reports whether path names an executable regular file.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// Deliver submits msg to sendmail for env.Recipients with env.Sender as the
// envelope sender, as the local account env.Account. It returns nil
// only after sendmail exited 0.
func (b *Backend) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) error {
	start := time.Now()
	log := b.log.With(logkey.Backend, "sendmail", logkey.Session, env.Session, logkey.Login, env.Login)

	argv, err := b.checkedArgv(env)
	if err != nil {
		log.Warn("message refused before sendmail", logkey.Reason, delivery.Reason(err), logkey.Err, err)
		return err
	}
	acct, err := b.resolveForDelivery(env.Account)
	if err != nil {
		log.Warn("no account to submit as", logkey.Reason, delivery.Reason(err), logkey.Account, env.Account, logkey.Err, err)
		return err
	}
	log = log.With(logkey.Account, acct.Name, "uid", acct.UID)

	if dir := readOnlySpool(b.spoolDirs); dir != "" {
		err := delivery.Temporary("spool-read-only", fmt.Errorf("the MTA's queue directory %s is read-only to mppd: it did not exist when mppd started (an MTA installed since); restart mppd (systemctl restart mppd)", dir))
		log.Error("cannot submit: restart mppd", logkey.Reason, "spool-read-only", "dir", dir, logkey.Err, err)
		return err
	}
	stdin, cleanup, err := stageStdin(msg)
	if err != nil {
		err = delivery.Temporary("staging", err)
		log.Error("cannot stage the message for sendmail", logkey.Reason, "staging", logkey.Err, err)
		return err
	}
	defer cleanup()

	out, err := b.run(ctx, argv, acct, stdin)
	attrs := []any{logkey.Reason, delivery.Reason(err), "rcpts", len(env.Recipients), logkey.Duration, time.Since(start).Round(time.Millisecond)}
	if s := out.String(); s != "" {
		attrs = append(attrs, "output", s)
	}
	switch {
	case err == nil:
		log.Info("submitted to sendmail", attrs[2:]...)
	case delivery.Reason(err) == "exec":
		log.Error("cannot run sendmail", append([]any{logkey.Err, err}, attrs...)...)
	default:
		log.Warn("sendmail failed", append([]any{logkey.Err, err}, attrs...)...)
	}
	return err
}

// checkedArgv checks the sender and every recipient with the address
// grammar, then builds argv (which checks once more, on its own terms).
func (b *Backend) checkedArgv(env delivery.Envelope) ([]string, error) {
	if err := address.Valid(env.Sender); err != nil {
		return nil, delivery.Permanent("bad-sender", err)
	}
	if len(env.Recipients) == 0 {
		return nil, delivery.Permanent("no-recipients", nil)
	}
	for _, r := range env.Recipients {
		if err := address.Valid(r); err != nil {
			return nil, delivery.Permanent("bad-recipient", err)
		}
	}
	argv, err := buildArgv(b.cfg.Path, env.Sender, env.Recipients)
	if err != nil {
		return nil, delivery.Permanent("bad-address", err)
	}
	return argv, nil
}

// stageStdin returns a file holding the complete message for sendmail's
// stdin. In mppd the message always is one: the engine's unlinked staging
// file in staging_dir, passed by the monitor, which sendmail reads as it
// is, from its current offset, so the message is never copied again. Any
// other reader (a caller that holds the message in memory) is copied into
// an anonymous memory file (memfd_create), never into the system's
// temporary directory. Either way sendmail never reads from a pipe mppd
// is still feeding: if mppd dies mid-message, a pipe would give sendmail
// an early EOF, which sendmail -i takes for the end of a complete message
// and queues (docs/hostile-inputs.md, case 69); a file it reads to its
// real end.
func stageStdin(msg io.Reader) (*os.File, func(), error) {
	if f, ok := msg.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return f, func() {}, nil
		}
	}
	fd, err := unix.MemfdCreate("mppd-message", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "mppd-message")
	if _, err := io.Copy(f, msg); err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// run starts sendmail and waits for it. out holds the first outputLimit
// bytes of its stdout and stderr.
func (b *Backend) run(ctx context.Context, argv []string, acct account, stdin *os.File) (*capped, error) {
	out := &capped{limit: outputLimit}
	if err := ctx.Err(); err != nil {
		return out, delivery.Temporary("cancelled", err)
	}

	cmd := exec.Command(argv[0])
	cmd.Args = argv
	cmd.Dir = "/"
	cmd.Env = []string{
		"PATH=" + childPath,
		"HOME=" + acct.Home,
		"USER=" + acct.Name,
		"LOGNAME=" + acct.Name,
	}
	cmd.Stdin = stdin
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so a timeout kills sendmail and
		// everything it started (postdrop, a stuck helper) at once.
		Setpgid: true,
	}
	if !b.noCredential {
		cmd.SysProcAttr.Credential = &syscall.Credential{
			Uid:    acct.UID,
			Gid:    acct.GID,
			Groups: acct.Groups,
		}
	}
	// Once sendmail has exited (or been killed), Wait gives its output
	// pipes waitDelay to close.
	cmd.WaitDelay = b.waitDelay

	// Inherited descriptors: os/exec gives the child fds 0, 1 and 2, and
	// every descriptor Go opens is close-on-exec, but descriptors mppd
	// inherited from whatever started it, or that C code (a PAM or NSS
	// module) opened, may not be; they would leak into sendmail. Mark
	// them all close-on-exec first (TestRecordedChild checks the child
	// sees exactly 0, 1 and 2).
	if err := closeOnExecFrom3(); err != nil {
		b.log.Warn("cannot mark descriptors close-on-exec", logkey.Backend, "sendmail", logkey.Err, err)
	}
	// Started from a thread whose ambient and inheritable capability
	// sets are cleared (and bounding set emptied when mppd may): the
	// child holds no capability whatever mppd holds, even in the
	// non-root mode with ambient CAP_SETUID and CAP_SETGID. Not
	// no_new_privs: postdrop is set-group-ID. One such thread serves
	// every message, rather than a new one each time.
	if _, err := b.starter.Start(cmd); err != nil {
		return out, delivery.Temporary("exec", err)
	}
	pgid := cmd.Process.Pid
	// On timeout or cancellation kill the whole group, not just the
	// leader. A timer and a context callback do it, rather than
	// exec.CommandContext, which keeps a goroutine waiting for every
	// run. killed is set under mu, and no kill is sent once sendmail is
	// known to have exited, so its process group id, free again once
	// Wait reaps it, is never signalled after.
	var (
		mu     sync.Mutex
		killed string // "timeout" or "cancelled"
		exited bool
	)
	kill := func(why string) {
		mu.Lock()
		defer mu.Unlock()
		if exited || killed != "" {
			return
		}
		killed = why
		_ = b.killGroup(pgid, why)
	}
	timer := time.AfterFunc(time.Duration(b.cfg.Timeout), func() { kill("timeout") })
	stopCtx := context.AfterFunc(ctx, func() { kill("cancelled") })
	ended := awaitExit(pgid)
	mu.Lock()
	exited = ended
	mu.Unlock()
	err := cmd.Wait()
	timer.Stop()
	stopCtx()
	mu.Lock()
	exited = true
	why := killed
	mu.Unlock()

	if isExitZero(cmd) {
		// Exit 0: the MTA has the message, whatever else went wrong
		// after (a kill on timeout that lost the race, or output pipes
		// still held open).
		if errors.Is(err, exec.ErrWaitDelay) {
			// Something sendmail started still holds its output open;
			// stop it. The group still has that member, so its id
			// cannot have been reused.
			_ = b.killGroup(pgid, "output-held")
			b.log.Warn("sendmail exited 0 but left a process holding its output; killed its process group", logkey.Backend, "sendmail", "pgid", pgid)
		}
		return out, nil
	}
	// The submission failed: stop anything it left behind in its process
	// group (after a non-zero exit nothing there is doing useful work).
	// After exit 0 the group is left alone unless it held the pipes: an
	// MTA may leave a background delivery process running (Exim -odb).
	_ = b.killGroup(pgid, "failed")
	switch why {
	case "timeout":
		return out, delivery.Temporary("timeout", fmt.Errorf("sendmail ran longer than %s and was killed", b.cfg.Timeout))
	case "cancelled":
		return out, delivery.Temporary("cancelled", context.Cause(ctx))
	}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		ws, ok := exitErr.Sys().(syscall.WaitStatus)
		if ok && ws.Signaled() {
			return out, delivery.Temporary("signal", fmt.Errorf("sendmail was killed by signal %d (%s)", ws.Signal(), ws.Signal()))
		}
		return out, mapExit(exitErr.ExitCode(), fmt.Errorf("sendmail exited with status %d", exitErr.ExitCode()))
	default:
		return out, delivery.Temporary("wait", err)
	}
}

// awaitExit returns once the child pid has ended, so that cmd.Wait, called
// next, reaps it at once, and reports whether it saw it end. It waits in
// the runtime's network poller on a pidfd, which becomes readable when the
// process ends, rather than in a blocking waitid(2) as cmd.Wait does: a
// goroutine blocked in a system call for all of sendmail's run ties up an
// OS thread and keeps the Go scheduler's monitor thread waking every 20 µs
// to look at it, which was the largest part of mppd's own CPU time per
// message. When a pidfd cannot be had or polled, it returns false at once
// and cmd.Wait blocks as before.
func awaitExit(pid int) bool {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ended := false
	err = rc.Read(func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		if err != nil {
			return true // cannot tell: let Wait block
		}
		ended = n > 0
		return ended
	})
	return err == nil && ended
}

// killGroup sends SIGKILL to the process group pgid. A group that is
// already gone is no matter; any other failure (EPERM: no CAP_KILL for
// another user's processes) is logged as an error, since it leaves a
// sendmail running that should not be.
func (b *Backend) killGroup(pgid int, why string) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ESRCH):
		return os.ErrProcessDone
	}
	b.log.Error("cannot kill sendmail's process group", logkey.Backend, "sendmail", "pgid", pgid, "why", why, logkey.Err, err)
	return err
}

// sysCloseRange is close_range(2)'s number on every Linux architecture
// (new system calls share one number since Linux 5.1).
const sysCloseRange = 436

// closeRangeCloexec is CLOSE_RANGE_CLOEXEC of linux/close_range.h.
const closeRangeCloexec = 1 << 2

// closeOnExecFrom3 sets FD_CLOEXEC on every descriptor from 3 up: one
// close_range(2) call on Linux 5.11 and later, a walk of /proc/self/fd
// before that.
func closeOnExecFrom3() error {
	_, _, e := syscall.Syscall(sysCloseRange, 3, ^uintptr(0), closeRangeCloexec)
	if e == 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("close_range: %v; /proc/self/fd: %w", e, err)
	}
	for _, ent := range ents {
		var fd int
		if _, err := fmt.Sscan(ent.Name(), &fd); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}

func isExitZero(cmd *exec.Cmd) bool {
	return cmd.ProcessState != nil && cmd.ProcessState.Success()
}

// capped keeps the first limit bytes written to it and counts the rest.
// It is written from two goroutines when stdout and stderr differ; exec
// uses one pipe for both when they are the same writer, but the lock
// costs nothing.
type capped struct {
	mu      sync.Mutex
	limit   int
	buf     []byte
	dropped int64
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - len(c.buf)
	if room > len(p) {
		room = len(p)
	}
	if room > 0 {
		c.buf = append(c.buf, p[:room]...)
	}
	c.dropped += int64(len(p) - room)
	return len(p), nil
}

// ReadFrom reads r to its end into c with a small buffer. os/exec copies
// sendmail's output pipe into c with io.Copy, which uses this instead of
// allocating 32 KiB for every run.
func (c *capped) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 2048)
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			c.Write(buf[:m])
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// String returns the kept output with surrounding space trimmed, noting
// how much was dropped. slog quotes and escapes it in the log line.
func (c *capped) String() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSpace(string(c.buf))
	if c.dropped > 0 {
		s += fmt.Sprintf(" [%d more bytes dropped]", c.dropped)
	}
	return s
}
