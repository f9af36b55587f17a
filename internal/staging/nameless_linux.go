package staging

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openNameless opens a file in dir that never has a name (O_TMPFILE).
// tried is false when the file system cannot do it, and the caller falls
// back to a name removed at once.
func openNameless(dir string) (f *os.File, tried bool, err error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, "mppd-staging")), true, nil
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		return nil, false, nil
	}
	return nil, true, &os.PathError{Op: "open", Path: dir, Err: err}
}
