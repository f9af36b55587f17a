//go:build pam

package pam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	libpam "github.com/msteinert/pam/v2"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/address"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/slots"
)

// Backend authenticates through PAM. It is safe for concurrent use.
//
// Concurrency. At most cfg.Workers transactions run at once. A login takes
// a slot (waiting at most cfg.QueueTimeout, else 451 "busy"), then runs
// its whole transaction, pam_start to pam_end, in a fresh goroutine locked
// to its OS thread: PAM handles and modules are not promised to be
// thread-safe, some keep per-thread state between calls of one transaction
// (pam_modutil_drop_priv changes the thread's fsuid, for instance), and a
// blocking C call pins its thread anyway. The goroutine never unlocks the
// thread, so when it ends the Go runtime retires the thread with it: no
// state a module left behind on that thread is ever inherited by another
// goroutine, and the thread count falls back when the load does.
//
// Timeouts. A caller waits at most cfg.Timeout for its transaction and then
// gets 451 "timeout" at once. A C call cannot be interrupted, so the
// abandoned transaction keeps its slot and its thread until PAM returns (it
// is then ended and logged as late). This is deliberate: the slots bound the
// threads that a hung module can hold, and once every slot is held by hung
// calls further logins get 451 "busy" after cfg.QueueTimeout instead of
// piling up threads until the runtime's 10,000-thread limit kills mppd.
type Backend struct {
	cfg   config.PAM
	log   *slog.Logger
	slots *slots.Slots // one per running transaction

	inFlight atomic.Int64  // transactions between slot taken and pam_end done
	started  atomic.Uint64 // transactions begun
	ended    atomic.Uint64 // transactions whose pam_end has returned

	// confDir, when set, makes transactions read their stack from this
	// directory (pam_start_confdir) instead of /etc/pam.d; for tests.
	confDir string
	// serviceFile is the policy file found at New, "" when none was found
	// (libpam then uses the "other" service).
	serviceFile string
}

var _ authn.Authenticator = (*Backend)(nil)

// Stats counts transactions, for tests and diagnostics.
type Stats struct {
	InFlight int64  // holding a worker now (including abandoned ones)
	Started  uint64 // pam_start attempted
	Ended    uint64 // finished, pam_end called when pam_start succeeded
}

// Stats returns the current counters.
func (b *Backend) Stats() Stats {
	return Stats{InFlight: b.inFlight.Load(), Started: b.started.Load(), Ended: b.ended.Load()}
}

// New checks cfg and returns a Backend. It warns (it does not fail) when the
// service has no policy file, since libpam then silently applies the
// "other" service, and when mppd cannot read /etc/shadow, since pam_unix
// then cannot check other users' passwords.
func New(cfg config.PAM, log *slog.Logger) (*Backend, error) {
	return newBackend(cfg, log, "")
}

func newBackend(cfg config.PAM, log *slog.Logger, confDir string) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if confDir != "" && !libpam.CheckPamHasStartConfdir() {
		return nil, errors.New("pam: this libpam has no pam_start_confdir (Linux-PAM >= 1.4 needed)")
	}
	b := &Backend{
		cfg:     cfg,
		log:     log.With(logkey.Backend, "pam", "service", cfg.Service),
		slots:   slots.New(cfg.Workers, cfg.QueueTimeout.D()),
		confDir: confDir,
	}
	b.serviceFile = findServiceFile(confDir, cfg.Service)
	if b.serviceFile == "" {
		b.log.Warn("PAM service has no policy file; libpam will apply the \"other\" service instead (on Debian the system's common-* policy, on RHEL deny everything)",
			"looked_in", serviceDirs(confDir))
	}
	if confDir == "" && os.Geteuid() != 0 {
		if f, err := os.Open("/etc/shadow"); err == nil {
			f.Close()
		} else if !errors.Is(err, os.ErrNotExist) {
			b.log.Warn("cannot read /etc/shadow: pam_unix will refuse every user but mppd's own; run mppd as root or in group shadow",
				logkey.Err, err)
		}
	}
	return b, nil
}

// serviceDirs lists where libpam looks for a service's file: the confdir
// when one is given, else /etc/pam.d and the vendor directory
// /usr/lib/pam.d (Linux-PAM >= 1.4, when built with it).
func serviceDirs(confDir string) []string {
	if confDir != "" {
		return []string{confDir}
	}
	return []string{"/etc/pam.d", "/usr/lib/pam.d"}
}

func findServiceFile(confDir, service string) string {
	for _, d := range serviceDirs(confDir) {
		p := filepath.Join(d, service)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	if confDir == "" {
		// Without an /etc/pam.d directory libpam reads /etc/pam.conf.
		if _, err := os.Stat("/etc/pam.d"); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat("/etc/pam.conf"); err == nil {
				return "/etc/pam.conf"
			}
		}
	}
	return ""
}

// String describes the backend for the start-up log.
func (b *Backend) String() string {
	file := b.serviceFile
	if file == "" {
		file = "missing, libpam uses \"other\""
	}
	return fmt.Sprintf("pam service=%q (%s) mail_domain=%s workers=%d timeout=%s queue_timeout=%s",
		b.cfg.Service, file, b.cfg.MailDomain, b.cfg.Workers, b.cfg.Timeout, b.cfg.QueueTimeout)
}

// job is one login handed to a worker.
type job struct {
	req       authn.Request
	done      chan outcome // buffered: the worker never blocks on it
	abandoned atomic.Bool  // the caller stopped waiting
}

// outcome is what a transaction produced.
type outcome struct {
	id       authn.Identity
	err      error
	messages []string // PAM_TEXT_INFO and PAM_ERROR_MSG texts, for the log
	took     time.Duration
}

// Authenticate runs one PAM transaction for req. See Backend for how
// concurrency and timeouts work.
func (b *Backend) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	if err := checkRequest(req); err != nil {
		return authn.Identity{}, err
	}
	if err := ctx.Err(); err != nil {
		return authn.Identity{}, authn.Unavailable("canceled", err)
	}
	if err := b.acquire(ctx); err != nil {
		b.log.Warn("pam login not started", logkey.Session, req.Session, logkey.User, req.User, logkey.Client, req.Client,
			logkey.Reason, authn.Reason(err), logkey.Err, err)
		return authn.Identity{}, err
	}
	j := &job{req: req, done: make(chan outcome, 1)}
	b.inFlight.Add(1)
	go b.work(j)

	timer := time.NewTimer(b.cfg.Timeout.D())
	defer timer.Stop()
	select {
	case o := <-j.done:
		b.logOutcome(req, o)
		return o.id, o.err
	case <-timer.C:
		j.abandoned.Store(true)
		err := authn.Unavailable("timeout", fmt.Errorf("PAM service %q did not finish within %s", b.cfg.Service, b.cfg.Timeout))
		b.log.Warn("pam login timed out; its worker stays busy until PAM returns",
			logkey.Session, req.Session, logkey.User, req.User, logkey.Client, req.Client, "timeout", b.cfg.Timeout.D())
		return authn.Identity{}, err
	case <-ctx.Done():
		j.abandoned.Store(true)
		return authn.Identity{}, authn.Unavailable("canceled", ctx.Err())
	}
}

// checkRequest refuses what must never reach C: a NUL would silently cut
// the string short in C.CString (case 13), and an empty password is refused
// here as well as by PAM_DISALLOW_NULL_AUTHTOK (case 23).
func checkRequest(req authn.Request) error {
	switch {
	case req.User == "" || strings.ContainsRune(req.User, 0):
		return authn.Rejected("bad-user", nil)
	case req.Password == "":
		return authn.Rejected("empty-password", nil)
	case strings.ContainsRune(req.Password, 0):
		return authn.Rejected("bad-password-bytes", nil)
	case strings.ContainsRune(req.Client, 0):
		return authn.Unavailable("bad-client", errors.New("client address contains NUL"))
	}
	return nil
}

// acquire takes a worker slot, waiting at most QueueTimeout.
func (b *Backend) acquire(ctx context.Context) error {
	err := b.slots.Acquire(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, slots.ErrBusy):
		return authn.Unavailable("busy", fmt.Errorf("all %d PAM workers busy for %s", b.cfg.Workers, b.cfg.QueueTimeout))
	default:
		return authn.Unavailable("canceled", err)
	}
}

// work runs one job on a locked OS thread and gives the slot back. It
// deliberately returns without runtime.UnlockOSThread: the runtime then
// terminates the thread instead of reusing it (see Backend).
func (b *Backend) work(j *job) {
	runtime.LockOSThread()
	defer func() {
		b.ended.Add(1)
		b.inFlight.Add(-1)
		b.slots.Release()
	}()
	b.started.Add(1)
	start := time.Now()
	o := b.transact(j.req)
	o.took = time.Since(start)
	j.done <- o
	if j.abandoned.Load() {
		b.log.Warn("pam transaction finished after its caller gave up",
			logkey.Session, j.req.Session, logkey.User, j.req.User, logkey.Client, j.req.Client, logkey.Duration, o.took,
			logkey.Reason, reasonOf(o.err), "messages", o.messages)
	}
}

func reasonOf(err error) string {
	if err == nil {
		return "ok"
	}
	return authn.Reason(err)
}

// transact is one PAM transaction. pam_end runs on every path once
// pam_start has succeeded (the library has no finalizer to do it later).
func (b *Backend) transact(req authn.Request) (o outcome) {
	conv := &conversation{user: req.User, password: req.Password}
	defer func() {
		o.messages = conv.messages
		// The library keeps conv reachable through a cgo.Handle that only
		// End deletes, and End does nothing when pam_start failed with no
		// handle (a missing service with no "other", PAM_ABORT): that
		// handle then lives for ever. Drop the secrets so that it holds
		// no password.
		conv.user, conv.password = "", ""
	}()

	var tx *libpam.Transaction
	var err error
	if b.confDir != "" {
		tx, err = libpam.StartConfDir(b.cfg.Service, req.User, conv, b.confDir)
	} else {
		tx, err = libpam.Start(b.cfg.Service, req.User, conv)
	}
	if err != nil {
		// On failure the library has already called pam_end.
		o.err = b.classify("start", err, conv)
		return o
	}
	defer func() {
		if endErr := tx.End(); endErr != nil && o.err == nil {
			o.id = authn.Identity{}
			o.err = b.classify("end", endErr, conv)
		}
	}()

	if req.Client != "" {
		// PAM_RHOST lets pam_access, pam_faillock, pam_tally and the
		// modules' own syslog lines see who is logging in.
		if err := tx.SetItem(libpam.Rhost, req.Client); err != nil {
			o.err = b.classify("set-rhost", err, conv)
			return o
		}
	}
	// No PAM_SILENT: the modules' messages are wanted, for the log.
	if err := tx.Authenticate(libpam.DisallowNullAuthtok); err != nil {
		o.err = b.classify("authenticate", err, conv)
		return o
	}
	if err := tx.AcctMgmt(libpam.DisallowNullAuthtok); err != nil {
		o.err = b.classify("account", err, conv)
		return o
	}
	// A module may have changed the user (case folding, Kerberos
	// principal to account, an alias map): the account PAM settled on is
	// the one that logs in and submits mail.
	user, err := tx.GetItem(libpam.User)
	if err != nil {
		o.err = b.classify("get-user", err, conv)
		return o
	}
	if user == "" {
		o.err = authn.Unavailable("pam-error", errors.New("PAM_USER is empty after a successful transaction"))
		return o
	}
	addr, err := address.Parse(user + "@" + b.cfg.MailDomain)
	if err != nil {
		o.err = authn.Rejected("bad-pam-user", fmt.Errorf("PAM user %s does not make a mail address: %w", address.Quote(user), err))
		return o
	}
	o.id = authn.Identity{Login: user, Addresses: []string{addr}, Account: user}
	return o
}

// logOutcome writes one line per transaction that did not succeed plainly;
// never the password.
func (b *Backend) logOutcome(req authn.Request, o outcome) {
	attrs := []any{logkey.Session, req.Session, logkey.User, req.User, logkey.Client, req.Client, logkey.Duration, o.took.Round(time.Millisecond)}
	if len(o.messages) > 0 {
		attrs = append(attrs, "messages", o.messages)
	}
	switch {
	case o.err == nil:
		if o.id.Login != req.User {
			attrs = append(attrs, "pam_user", o.id.Login)
		}
		b.log.Debug("pam login ok", attrs...)
	case authn.IsBadCredentials(o.err):
		b.log.Info("pam login refused", append(attrs, logkey.Reason, authn.Reason(o.err), logkey.Err, o.err)...)
	default:
		b.log.Warn("pam backend error", append(attrs, logkey.Reason, authn.Reason(o.err), logkey.Err, o.err)...)
	}
}

// stageError carries where in the transaction PAM said no, and PAM's code.
type stageError struct {
	service string
	stage   string
	err     error
}

func (e *stageError) Error() string {
	var code libpam.Error
	if errors.As(e.err, &code) {
		return fmt.Sprintf("PAM service %q: %s: %v (PAM code %d)", e.service, e.stage, e.err, int(code))
	}
	return fmt.Sprintf("PAM service %q: %s: %v", e.service, e.stage, e.err)
}

func (e *stageError) Unwrap() error { return e.err }

// classify maps a PAM result to the authn contract. The client sees 530 for
// every Rejected and 451 for every Unavailable; the reasons (distinct per
// PAM code) are for the log.
func (b *Backend) classify(stage string, err error, conv *conversation) error {
	wrapped := &stageError{service: b.cfg.Service, stage: stage, err: err}
	var code libpam.Error
	isCode := errors.As(err, &code)
	if conv.refused != "" && !(isCode && stackFault(code)) {
		// The stack asked for something MPP cannot give (a second hidden
		// prompt for an OTP, a new password for an expired one): the
		// login cannot succeed, whatever code the module chose to return
		// for it. Unless PAM says the stack itself is broken: an outage
		// must not look like a wrong password.
		return authn.Rejected("unsupported-prompt", fmt.Errorf("%w; refused PAM prompt: %s", wrapped, conv.refused))
	}
	if conv.refused != "" {
		wrapped.err = fmt.Errorf("%w; refused PAM prompt: %s", err, conv.refused)
	}
	if !isCode {
		return authn.Unavailable("pam-error", wrapped)
	}
	return mapCode(stage, code, wrapped)
}

// stackFault reports whether code says the stack could not work at all (a
// password database out of reach, a module that would not load, libpam
// itself failing), which no answer of ours to a prompt explains.
func stackFault(code libpam.Error) bool {
	switch code {
	case libpam.ErrAuthinfoUnavail, libpam.ErrSystem, libpam.ErrBuf, libpam.ErrService,
		libpam.ErrOpen, libpam.ErrSymbol, libpam.ErrModuleUnknown, libpam.ErrAbort:
		return true
	}
	return false
}

// mapCode is the PAM code table. Bad credentials: the module looked at the
// user and password or the account and said no. Unavailable: the stack could
// not decide (missing module or service problems, a directory that is
// down, lack of privilege to read the password database, memory).
func mapCode(stage string, code libpam.Error, err error) error {
	switch code {
	case libpam.ErrAuth:
		if stage == "account" {
			// pam_deny and several others answer PAM_AUTH_ERR from
			// pam_acct_mgmt too.
			return authn.Rejected("account-refused", err)
		}
		return authn.Rejected("bad-password", err)
	case libpam.ErrUserUnknown:
		return authn.Rejected("unknown-user", err)
	case libpam.ErrAcctExpired:
		return authn.Rejected("account-expired", err)
	case libpam.ErrNewAuthtokReqd:
		return authn.Rejected("password-change-required", err)
	case libpam.ErrAuthtokExpired:
		return authn.Rejected("password-expired", err)
	case libpam.ErrPermDenied:
		return authn.Rejected("permission-denied", err)
	case libpam.ErrMaxtries:
		return authn.Rejected("max-tries", err)
	case libpam.ErrAuthinfoUnavail:
		return authn.Unavailable("authinfo-unavailable", err)
	default:
		// PAM_SYSTEM_ERR, PAM_BUF_ERR, PAM_SERVICE_ERR, PAM_OPEN_ERR,
		// PAM_SYMBOL_ERR, PAM_MODULE_UNKNOWN, PAM_CRED_INSUFFICIENT,
		// PAM_CONV_ERR without a refused prompt, PAM_ABORT, PAM_TRY_AGAIN...
		return authn.Unavailable("pam-error", err)
	}
}

// conversation answers a module's prompts. Only the worker's thread calls
// it, during one transaction, so it needs no lock.
type conversation struct {
	user, password string
	passwordGiven  bool
	refused        string   // the first prompt refused, for the log
	messages       []string // info and error texts, capped
}

// Bounds on what a module can make us keep for the log.
const (
	maxMessages   = 8
	maxMessageLen = 200
)

var errRefused = errors.New("mppd: this PAM prompt cannot be answered over MPP")

// RespondPAM implements libpam.ConversationHandler. The password answers
// one hidden prompt only; it is never given to a visible prompt (which is
// answered with the user name, as pam_get_user expects) nor twice. Any
// other request fails the conversation at once, so no prompt can wait for
// input that will never come.
func (c *conversation) RespondPAM(style libpam.Style, msg string) (string, error) {
	switch style {
	case libpam.PromptEchoOff:
		if c.passwordGiven {
			c.refuse("second hidden prompt", msg)
			return "", errRefused
		}
		c.passwordGiven = true
		return c.password, nil
	case libpam.PromptEchoOn:
		return c.user, nil
	case libpam.TextInfo:
		c.note("info", msg)
		return "", nil
	case libpam.ErrorMsg:
		c.note("error", msg)
		return "", nil
	default:
		c.refuse(fmt.Sprintf("style %d", int(style)), msg)
		return "", errRefused
	}
}

func (c *conversation) refuse(what, msg string) {
	if c.refused == "" {
		c.refused = what + " " + address.Quote(msg)
	}
}

func (c *conversation) note(kind, msg string) {
	if len(c.messages) < maxMessages {
		c.messages = append(c.messages, kind+": "+strings.TrimSpace(truncate(msg)))
	}
}

func truncate(s string) string {
	if len(s) > maxMessageLen {
		return s[:maxMessageLen] + "..."
	}
	return s
}
