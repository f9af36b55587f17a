package mppqueue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// Lock is held by whoever posts messages from the queue, so that two mpp
// processes never post the same message: each takes the lock, then checks
// that the message is still queued.
type Lock struct{ f *os.File }

// errLocked is what tryLock returns when another process holds the lock.
var errLocked = errors.New("locked")

// Lock takes the queue's lock, waiting until ctx is done. The lock is the
// operating system's (flock, LockFileEx): it goes with the process, so a
// crashed mpp leaves none behind.
func (q *Queue) Lock(ctx context.Context) (*Lock, error) {
	f, err := os.OpenFile(filepath.Join(q.Dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := tryLock(f)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, errLocked) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	return l.f.Close()
}
