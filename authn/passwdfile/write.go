package passwdfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// MaxPasswordLen is the longest PASS argument the engine accepts; a longer
// password could never be used to log in.
const MaxPasswordLen = 512

// CheckPassword reports whether password can be sent in an MPP PASS
// command: 1 to 512 octets, no NUL, CR or LF.
func CheckPassword(password string) error {
	switch {
	case password == "":
		return errors.New("empty password")
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("password longer than %d octets", MaxPasswordLen)
	case strings.ContainsAny(password, "\x00\r\n"):
		return errors.New("password contains NUL, CR or LF")
	}
	return nil
}

// SetPassword adds user to the password file at path, or replaces the
// user's line, with an argon2id hash of password (HashPassword).
//
// addresses are the addresses the user may send as, the first being the
// primary one. nil keeps the addresses the user's line already has (none
// for a new user: user@mail_domain applies); an empty non-nil slice removes
// them.
//
// Every other line, comments included, is kept as it is; a second line for
// the same user is dropped. The file is replaced atomically: a temporary file
// in the same directory is written, synced and renamed over it, and the
// directory is synced. A new file gets mode 0600; an existing one keeps its
// mode, owner and group. A symbolic link at path is followed and its target
// replaced. The whole read-modify-rename holds an exclusive flock(2) on a
// lock file beside the password file (its name with ".lock" added), so two
// SetPassword calls on one file, in one process or two, never lose an
// update; the lock file is left in place for the next run.
func SetPassword(path, user, password string, addresses []string) error {
	if err := CheckUser(user); err != nil {
		return err
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	var addrs []string
	if addresses != nil {
		addrs = []string{}
		if len(addresses) > 0 {
			var err error
			if addrs, err = parseAddressList(strings.Join(addresses, ",")); err != nil {
				return err
			}
		}
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return updateFile(path, user, hash, addrs)
}

// updateFile rewrites path with user's line replaced (or appended).
// addrs nil means keep the addresses of the old line.
func updateFile(path, user, hash string, addrs []string) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	old, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var fi os.FileInfo
	if exists {
		if fi, err = os.Stat(path); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
	}

	var out strings.Builder
	replaced := false
	lines := strings.Split(string(old), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1] // the text after the final newline
	}
	newLine := func(keep string) string {
		l := user + ":" + hash
		switch {
		case addrs == nil && keep != "":
			l += ":" + keep
		case len(addrs) > 0:
			l += ":" + strings.Join(addrs, ",")
		}
		return l + "\n"
	}
	for _, raw := range lines {
		line := strings.TrimSpace(raw)
		if line != "" && line[0] != '#' {
			fields := strings.SplitN(line, ":", 3)
			if fields[0] == user {
				if !replaced {
					keep := ""
					if len(fields) == 3 {
						keep = strings.TrimSpace(fields[2])
					}
					out.WriteString(newLine(keep))
					replaced = true
				}
				continue
			}
		}
		out.WriteString(raw)
		out.WriteByte('\n')
	}
	if !replaced {
		out.WriteString(newLine(""))
	}
	return writeAtomic(path, []byte(out.String()), fi)
}

// lockFile takes an exclusive flock on the file at path, creating it (mode
// 0600) if need be, and waits for the lock as long as another run holds it.
// The lock goes when unlock is called or the process ends. The file is
// never removed: a run that removed it could let the next run lock a new
// file while a third still held the old one.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// writeAtomic replaces path with data. old is the FileInfo of the file being
// replaced, nil for a new file.
func writeAtomic(path string, data []byte, old os.FileInfo) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	mode := os.FileMode(0o600)
	if old != nil {
		mode = old.Mode().Perm()
		// Keep the owner and group, so that a daemon running as its own
		// user can still read a file root has just edited.
		if st, ok := old.Sys().(*syscall.Stat_t); ok {
			if cur, err := tmp.Stat(); err == nil {
				if cst, ok := cur.Sys().(*syscall.Stat_t); ok && (cst.Uid != st.Uid || cst.Gid != st.Gid) {
					if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
						return fmt.Errorf("keeping the owner of %s: %w", path, err)
					}
				}
			}
		}
	}
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable only once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
