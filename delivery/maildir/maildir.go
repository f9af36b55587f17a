// Package maildir delivers each recipient's copy of a message into a
// Maildir under a configured root: the development backend, and a real one
// for small sites whose mail is read straight from disk (by an IMAP server
// such as Dovecot pointed at the same tree, or by a mail reader).
//
// # Layout
//
// A copy for recipient R goes to <root>/<R lowercased>/new/, in the usual
// Maildir way: the message is written to tmp/ under a unique name, synced,
// and renamed into new/, whose directory is then synced too. A reader never
// sees a partial file. The directories are created (mode 0700) as needed;
// files get mode 0600.
//
// Every path operation goes through an os.Root opened on the root, so no
// path, however made, reaches outside it; and each directory on a copy's
// way (the recipient's Maildir and its tmp, new and cur) is checked not to
// be a symbolic link before it is used. A link there, pointing inside the
// root or out, fails the whole message temporarily (reason "symlink") and
// is logged: someone with write access to the root has put it there, and
// an operator has to look.
//
// A recipient whose directory name would be unsafe (empty, "." or "..",
// starting with '.' or '-', containing '/', NUL or another control
// character, longer than 255 octets), or that is not an address of the
// grammar of package internal/address, makes the whole message fail
// permanently before anything is written.
//
// # One message, several recipients
//
// All the copies are first written to their tmp/ directories; only when
// every one of them is safely on disk are they renamed into new/. If
// anything fails the temporary files are removed and, should a rename fail
// half-way, the copies already moved are taken back, so the client's retry
// (it got 451) does not deliver twice.
//
// # Content
//
// The message is stored as the engine hands it over, with LF line endings,
// except that a "Return-Path: <sender>" line is put in front of it, as
// local delivery agents do when they take a message out of the envelope
// (RFC 5321 §4.4). No Delivered-To: header is added.
package maildir

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/address"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
	"github.com/mppd/mppd/internal/message"
)

// Backend writes messages into Maildirs. It is safe for concurrent use.
type Backend struct {
	root string
	log  *slog.Logger
	host string // for unique file names, with '/' and ':' escaped
	pid  int
	seq  atomic.Uint64
	// beforeRename, when set (tests only), runs between writing the
	// copies and moving them into new/.
	beforeRename func()
}

var _ delivery.Deliverer = (*Backend)(nil)

// New checks the root, creating it if needed, and returns a Backend.
// log may be nil.
func New(cfg config.Maildir, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("maildir: root: %w", err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("maildir: root: %w", err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("maildir: root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("maildir: root %s is not a directory", root)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return &Backend{
		root: root,
		log:  log.With(logkey.Backend, "maildir"),
		host: escapeHost(host),
		pid:  os.Getpid(),
	}, nil
}

// String describes the backend for the start-up log.
func (d *Backend) String() string { return "maildir " + d.root }

// escapeHost makes a host name safe as the last part of a Maildir file
// name: '/' and ':' are written as \057 and \072, the usual convention.
func escapeHost(h string) string {
	return strings.NewReplacer("/", `\057`, ":", `\072`).Replace(h)
}

// CheckName reports why a lowercased recipient address cannot be used as
// a directory name under the root, or nil when it can.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("empty recipient")
	case name == "." || name == "..":
		return fmt.Errorf("recipient %q is a special directory name", name)
	case name[0] == '.':
		return fmt.Errorf("recipient %q starts with '.'", name)
	case name[0] == '-':
		return fmt.Errorf("recipient %q starts with '-'", name)
	case len(name) > 255: // NAME_MAX
		return errors.New("recipient longer than 255 octets")
	case strings.ContainsRune(name, '/'):
		return fmt.Errorf("recipient %q contains '/'", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("recipient %q contains a control character", name)
		}
	}
	return nil
}

// copyFile is one recipient's copy on its way into the Maildir.
type copyFile struct {
	name string   // the recipient's directory name under the root
	dir  *os.Root // the recipient's Maildir, once made
	file string   // unique file name, the same in tmp/ and new/
	// state: written to tmp/, then moved to new/
	written, moved bool
}

func (c *copyFile) tmpPath() string { return "tmp/" + c.file }
func (c *copyFile) newPath() string { return "new/" + c.file }

// Deliver stores one copy of msg per recipient. See the package comment.
func (d *Backend) Deliver(ctx context.Context, env delivery.Envelope, msg io.Reader) (err error) {
	if len(env.Recipients) == 0 {
		return delivery.Permanent("no-recipients", nil)
	}
	// The sender comes from authentication, not from the client; still,
	// nothing that could break the header line goes into it.
	if strings.ContainsAny(env.Sender, "\x00\r\n<>") {
		return delivery.Permanent("bad-sender", fmt.Errorf("sender %q", env.Sender))
	}
	// Every name is checked before anything is written.
	var copies []*copyFile
	seen := make(map[string]bool)
	for _, r := range env.Recipients {
		name := strings.ToLower(r)
		if err := CheckName(name); err != nil {
			return delivery.Permanent("unsafe-recipient", err)
		}
		// The engine only passes addresses of this grammar; checked
		// again because here an address becomes a path.
		if err := address.Valid(name); err != nil {
			return delivery.Permanent("bad-recipient", err)
		}
		if seen[name] {
			continue // Alice@x and alice@x share a Maildir
		}
		seen[name] = true
		copies = append(copies, &copyFile{name: name, file: d.uniqueName()})
	}
	if err := ctx.Err(); err != nil {
		return delivery.Temporary("canceled", err)
	}

	// Every path below is opened through root, so nothing is reached
	// outside it, and each directory is checked not to be a symbolic link
	// before it is used (see the package comment).
	root, err := os.OpenRoot(d.root)
	if err != nil {
		if fi, serr := os.Stat(d.root); serr == nil && !fi.IsDir() {
			// os.OpenRoot's error for a file does not say ENOTDIR.
			err = &fs.PathError{Op: "open", Path: d.root, Err: syscall.ENOTDIR}
		}
		return diskError("opening the root", err)
	}
	defer root.Close()
	defer func() {
		if err != nil {
			d.undo(copies)
			var sl *symlinkError
			if errors.As(err, &sl) {
				d.log.Warn("a maildir path is a symbolic link; nothing delivered", logkey.Session, env.Session, "path", sl.path)
			}
		}
		for _, c := range copies {
			if c.dir != nil {
				c.dir.Close()
			}
		}
	}()
	header := "Return-Path: <" + env.Sender + ">\n"
	var size int64
	for i, c := range copies {
		if err := ctx.Err(); err != nil {
			return delivery.Temporary("canceled", err)
		}
		if c.dir, err = makeMaildir(root, c.name); err != nil {
			return err
		}
		var n int64
		if i == 0 {
			n, err = writeTmp(c.dir, c.tmpPath(), header, msg)
		} else {
			// The message may be a stream that can be read only once:
			// the other copies are made from the first one.
			f, oerr := copies[0].dir.Open(copies[0].tmpPath())
			if oerr != nil {
				return diskError("reopening the first copy", oerr)
			}
			n, err = writeTmp(c.dir, c.tmpPath(), "", f)
			f.Close()
		}
		if err != nil {
			return err
		}
		c.written = true
		size = n
	}
	if err := ctx.Err(); err != nil {
		return delivery.Temporary("canceled", err)
	}
	if d.beforeRename != nil {
		d.beforeRename()
	}
	// Every copy is on disk; now make them visible. From here on the
	// steps are quick renames; ctx is no longer consulted.
	for _, c := range copies {
		if err := checkDir(c.dir, "new", c.name+"/new"); err != nil {
			return err
		}
		if err := c.dir.Rename(c.tmpPath(), c.newPath()); err != nil {
			return diskError("moving into new/", err)
		}
		c.moved = true
	}
	for _, c := range copies {
		if err := syncDir(c.dir, "new"); err != nil {
			return diskError("syncing new/", err)
		}
	}
	d.log.Info("delivered", logkey.Session, env.Session, "recipients", len(copies), "bytes", size)
	return nil
}

// undo removes what a failed delivery left: temporary files, and copies
// already moved into new/ (best effort: a reader may have moved one on).
func (d *Backend) undo(copies []*copyFile) {
	for _, c := range copies {
		var p string
		switch {
		case c.moved:
			p = c.newPath()
		case c.written:
			p = c.tmpPath()
		default:
			continue
		}
		if err := c.dir.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("cannot remove the file of a failed delivery", "file", filepath.Join(d.root, c.name, p), logkey.Err, err)
		}
	}
}

// uniqueName returns a Maildir file name no other delivery uses: seconds,
// microseconds, process id, a per-process sequence number, random bits and
// the host name, in the form Maildir writers commonly use
// (sec.MusecPpidQseqRrandom.host).
func (d *Backend) uniqueName() string {
	now := time.Now()
	var rnd [8]byte
	rand.Read(rnd[:]) // never fails (crypto/rand panics rather)
	return fmt.Sprintf("%d.M%06dP%dQ%dR%s.%s",
		now.Unix(), now.Nanosecond()/1000, d.pid, d.seq.Add(1), hex.EncodeToString(rnd[:]), d.host)
}

// makeMaildir creates root/name and its tmp, new and cur subdirectories as
// needed, syncing the parent of each directory it creates so the new entry
// survives a crash, and returns the Maildir opened as a root of its own.
// A symbolic link in place of any of them is an error (symlinkError).
func makeMaildir(root *os.Root, name string) (*os.Root, error) {
	if err := mkdirSynced(root, name, name); err != nil {
		return nil, err
	}
	dir, err := root.OpenRoot(name)
	if err != nil {
		return nil, diskError("opening the maildir", err)
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := mkdirSynced(dir, sub, name+"/"+sub); err != nil {
			dir.Close()
			return nil, err
		}
	}
	return dir, nil
}

// mkdirSynced creates the directory name in parent, or checks that the
// one there is a directory and not a symbolic link. shown is its path
// under the backend's root, for errors.
func mkdirSynced(parent *os.Root, name, shown string) error {
	err := parent.Mkdir(name, 0o700)
	switch {
	case errors.Is(err, fs.ErrExist):
		return checkDir(parent, name, shown)
	case err != nil:
		return diskError("creating the maildir", err)
	}
	if err := syncDir(parent, "."); err != nil {
		return diskError("syncing the maildir's parent", err)
	}
	return checkDir(parent, name, shown)
}

// checkDir requires name in parent to be a directory, not a symbolic
// link (whether or not it points inside the root).
func checkDir(parent *os.Root, name, shown string) error {
	fi, err := parent.Lstat(name)
	switch {
	case err != nil:
		return diskError("checking the maildir", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return diskError("checking the maildir", &symlinkError{path: shown})
	case !fi.IsDir():
		return diskError("checking the maildir", &fs.PathError{Op: "mkdir", Path: shown, Err: syscall.ENOTDIR})
	}
	return nil
}

// symlinkError is a symbolic link where a maildir directory belongs: a
// temporary failure (451), logged, since an operator has to remove it.
type symlinkError struct{ path string }

func (e *symlinkError) Error() string {
	return "maildir: " + e.path + " is a symbolic link"
}

// writeTmp writes header and then src to a new file at path and syncs it.
// It returns the number of octets written. An error is a delivery error,
// and then no file is left at path.
//
// A src that is a regular file (in mppd always: the staged message the
// engine hands over, or the first copy) is copied by the kernel
// ((*os.File).ReadFrom uses copy_file_range(2)), so the message's octets
// do not pass through this process; a failure there is a disk error on
// either side. Any other reader is copied through a buffer.
func writeTmp(dir *os.Root, path string, header string, src io.Reader) (n int64, err error) {
	f, err := dir.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, diskError("creating the file", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			dir.Remove(path)
		}
	}()
	if _, err := f.WriteString(header); err != nil {
		return 0, diskError("writing the file", err)
	}
	if file, ok := src.(*os.File); ok && isRegular(file) {
		n, err = f.ReadFrom(file)
		if err != nil {
			return n, diskError("copying the message", err)
		}
	} else {
		r := &message.SourceReader{R: src}
		n, err = io.Copy(f, r)
		if err != nil {
			if r.Err != nil {
				return n, delivery.Temporary("read-message", r.Err)
			}
			return n, diskError("writing the file", err)
		}
	}
	n += int64(len(header))
	if err := f.Sync(); err != nil {
		return n, diskError("syncing the file", err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return n, diskError("closing the file", err)
	}
	return n, nil
}

// isRegular reports whether f is open on a regular file.
func isRegular(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular()
}

// syncDir syncs the directory name in parent.
func syncDir(parent *os.Root, name string) error {
	f, err := parent.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// diskError makes a file-system error a temporary delivery failure with a
// short reason: the client keeps its copy and may try again once the disk
// is fixed.
func diskError(op string, err error) error {
	reason := "io-error"
	var sl *symlinkError
	switch {
	case errors.As(err, &sl):
		reason = "symlink"
	case errors.Is(err, syscall.ENOSPC):
		reason = "disk-full"
	case errors.Is(err, syscall.EDQUOT):
		reason = "quota"
	case errors.Is(err, syscall.EROFS):
		reason = "read-only"
	case errors.Is(err, fs.ErrPermission):
		reason = "permission"
	case errors.Is(err, syscall.ENOTDIR):
		reason = "not-a-directory"
	}
	return delivery.Temporary(reason, fmt.Errorf("%s: %w", op, err))
}
