// Package passwdfile authenticates users against a local password file,
// the "local password file" RFC 1204 §3.4 suggests for sites without a
// better source. It is the development backend and a real one for small
// sites: no root, PAM or directory needed.
//
// # File format
//
// One user per line:
//
//	user:hash
//	user:hash:address1,address2
//
// Blank lines and lines whose first non-blank character is '#' are ignored.
// The hash is bcrypt ($2a$, $2b$, $2y$) or argon2id in the PHC string
// format ($argon2id$v=19$m=M,t=T,p=P$salt$hash); `mppd passwd` writes
// argon2id (see DefaultArgon2Params). The addresses are the ones the user
// may send as, the first being the primary one (the envelope sender); a
// line without them gives the user the single address user@mail_domain.
// Addresses are lowercased and must be plain mailboxes (see CheckAddress).
// A user name may not contain ':', spaces or control characters, nor start
// with '-' or '#'. A user may appear only once. Any error names the file and
// the line, never the hash. bcrypt looks at only the first 72 octets of a
// password.
//
// The file holds password hashes: it should be readable by the daemon only
// (mode 0600 or 0640 with a private group). A file that group or others can
// read or write is loaded, with a warning in the log.
//
// # Reloading
//
// The file is looked at again (at most once a second, when a login comes
// in) and re-read when its size, modification time or inode changed, so
// `mppd passwd` takes effect without a restart. A file that no longer
// parses is logged and ignored: the previous entries stay in force until it
// is fixed. A file that can no longer be read makes logins fail as
// "unavailable" (451), never "bad credentials".
//
// The backend gives every identity an empty Account: it has no notion of a
// local Unix account, which suits the maildir delivery backend.
package passwdfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
)

// maxFileSize bounds what is read: a password file of a small site is a
// few kilobytes; anything near this is a mistake (a wrong path).
const maxFileSize = 16 << 20

// reloadInterval is how often, at most, the file is looked at again.
const reloadInterval = time.Second

// Backend checks logins against the password file. It is safe for
// concurrent use.
type Backend struct {
	path   string
	domain string
	log    *slog.Logger
	// slots bounds how many hashes are computed at once: one argon2id
	// verification holds its m KiB of memory while it runs, so without a
	// bound a burst of logins could exhaust memory.
	slots chan struct{}
	// interval is reloadInterval; tests set it to zero.
	interval time.Duration

	mu          sync.Mutex
	tab         *table      // last good version of the file, never nil
	loaded      os.FileInfo // the file tab (or the last broken version) came from
	checked     time.Time   // when the file was last looked at
	unavailable error       // why the file cannot be read now, or nil
}

var _ authn.Authenticator = (*Backend)(nil)

// New reads the password file and returns a Backend. Unlike a later
// reload, a file that cannot be read or parsed now is an error: the daemon
// should not start with a broken configuration. log may be nil.
func New(cfg config.Passwdfile, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("passwdfile: path: %w", err)
	}
	a := &Backend{
		path:     path,
		domain:   cfg.MailDomain,
		log:      log.With(logkey.Backend, "passwdfile", "file", path),
		slots:    make(chan struct{}, max(1, runtime.NumCPU())),
		interval: reloadInterval,
	}
	tab, fi, err := a.load()
	if err != nil {
		return nil, fmt.Errorf("passwdfile: %w", err)
	}
	a.tab, a.loaded, a.checked = tab, fi, time.Now()
	return a, nil
}

// String describes the backend for the start-up log.
func (a *Backend) String() string {
	return fmt.Sprintf("passwdfile %s (mail_domain %s)", a.path, a.domain)
}

// Authenticate checks req against the file.
//
// An unknown user costs the same hash computation as a known one (a decoy
// hash of the most common scheme and cost in the file), so that the time
// taken does not tell the two apart; the reasons "unknown-user" and
// "bad-password" are for the log only.
func (a *Backend) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	if err := ctx.Err(); err != nil {
		return authn.Identity{}, authn.Unavailable(ctxReason(err), err)
	}
	tab, err := a.current()
	if err != nil {
		return authn.Identity{}, authn.Unavailable("file-unreadable", err)
	}
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return authn.Identity{}, authn.Unavailable(ctxReason(ctx.Err()), ctx.Err())
	}
	e, known := tab.users[req.User]
	var ok bool
	if known {
		ok = e.hash.verify([]byte(req.Password))
	} else {
		tab.dummy.verify([]byte(req.Password))
	}
	<-a.slots
	// The hash computation cannot be interrupted; if the caller gave up
	// meanwhile, say so rather than answer a question nobody waits for.
	if err := ctx.Err(); err != nil {
		return authn.Identity{}, authn.Unavailable(ctxReason(err), err)
	}
	switch {
	case !known:
		return authn.Identity{}, authn.Rejected("unknown-user", nil)
	case !ok || req.Password == "":
		return authn.Identity{}, authn.Rejected("bad-password", nil)
	}
	return authn.Identity{Login: e.user, Addresses: slices.Clone(e.addrs)}, nil
}

func ctxReason(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "canceled"
}

// current returns the entries in force, looking at the file again when the
// last look is older than the interval.
func (a *Backend) current() (*table, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now := time.Now(); now.Sub(a.checked) >= a.interval {
		a.checked = now
		a.refresh()
	}
	if a.unavailable != nil {
		return nil, a.unavailable
	}
	return a.tab, nil
}

// refresh re-reads the file if it changed. Called with a.mu held.
func (a *Backend) refresh() {
	fi, err := os.Stat(a.path)
	if err == nil && sameVersion(a.loaded, fi) {
		if a.unavailable != nil {
			a.log.Info("password file readable again")
		}
		a.unavailable = nil
		return
	}
	var tab *table
	if err == nil {
		tab, fi, err = a.load()
	}
	var perr *ParseError
	switch {
	case errors.As(err, &perr):
		// Keep serving the last good entries; remember this version so
		// the error is logged once, not every second.
		a.log.Error("password file does not parse; keeping the previous entries", logkey.Err, err)
		a.loaded, a.unavailable = fi, nil
	case err != nil:
		if a.unavailable == nil {
			a.log.Error("password file cannot be read; logins fail as unavailable", logkey.Err, err)
		}
		a.unavailable = err
	default:
		a.log.Info("password file reloaded", "users", len(tab.users))
		a.tab, a.loaded, a.unavailable = tab, fi, nil
	}
}

// sameVersion reports whether cur is the file old was, unchanged. Writers
// that replace the file (mppd passwd, most editors) change the inode;
// writers in place change the size or the modification time.
func sameVersion(old, cur os.FileInfo) bool {
	return old != nil && os.SameFile(old, cur) && old.Size() == cur.Size() && old.ModTime().Equal(cur.ModTime())
}

// load reads and parses the file. The FileInfo is taken from the open file,
// so it describes exactly what was read. A parse error is a *ParseError,
// and is returned together with the FileInfo.
func (a *Backend) load() (*table, os.FileInfo, error) {
	f, err := os.Open(a.path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", a.path)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		a.log.Warn("password file is writable by group or others: anyone who can write it can add a user", "mode", fmt.Sprintf("%04o", perm))
	} else if perm&0o044 != 0 {
		a.log.Warn("password file is readable by group or others: it holds password hashes", "mode", fmt.Sprintf("%04o", perm))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxFileSize {
		return nil, fi, &ParseError{File: a.path, Line: 0, Msg: fmt.Sprintf("file larger than %d octets", maxFileSize)}
	}
	tab, err := parse(a.path, data, a.domain)
	if err != nil {
		return nil, fi, err
	}
	return tab, fi, nil
}
