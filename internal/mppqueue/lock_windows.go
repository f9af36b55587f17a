//go:build windows

package mppqueue

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

func tryLock(f *os.File) error {
	var ol windows.Overlapped
	err := windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLocked
	}
	return err
}

// syncDir does nothing on Windows: a directory cannot be opened to be
// synced there, and NTFS journals renames itself.
func syncDir(string) error { return nil }

// makePrivate does nothing on Windows: %LOCALAPPDATA% is the user's own,
// guarded by its ACL.
func makePrivate(string) error { return nil }
