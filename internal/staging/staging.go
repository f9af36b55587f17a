// Package staging stages one message while it is being received: in memory up
// to a threshold, then in an unlinked file in the staging directory, so that
// memory per session stays bounded and delivery only ever sees a complete
// message. The message ends up in exactly one such file, which is what the
// delivery backend reads (sendmail gets it as its standard input): the
// message is never copied a second time.
package staging

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Buffer collects the bytes of one message. Write to it, then call File;
// Close releases the memory or the file. It is not safe for
// concurrent use.
type Buffer struct {
	dir       string
	threshold int

	mem  []byte
	file *os.File
	w    *bufio.Writer
	size int64
	err  error // the first write error; later writes are dropped
}

// New returns an empty buffer that keeps up to threshold bytes in memory and
// spills the rest into an unlinked file in dir ("" means os.TempDir()).
func New(dir string, threshold int) *Buffer {
	return &Buffer{dir: dir, threshold: threshold}
}

// Write appends p. Once a write has failed (the disk is full, say), the
// error is kept and every later Write returns it.
func (s *Buffer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	s.size += int64(len(p))
	if s.file == nil && len(s.mem)+len(p) <= s.threshold {
		s.mem = append(s.mem, p...)
		return len(p), nil
	}
	if s.file == nil {
		if err := s.spill(); err != nil {
			s.err = err
			return 0, err
		}
	}
	if s.w == nil {
		s.err = errors.New("staging: written after File")
		return 0, s.err
	}
	if _, err := s.w.Write(p); err != nil {
		s.err = fmt.Errorf("staging: %w", err)
		return 0, s.err
	}
	return len(p), nil
}

// spill moves what is in memory into a new unlinked file.
func (s *Buffer) spill() error {
	f, err := createUnlinked(s.dir)
	if err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	s.file = f
	s.w = bufio.NewWriterSize(f, 64<<10)
	if _, err := s.w.Write(s.mem); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	s.mem = nil
	return nil
}

// Size is the number of bytes written.
func (s *Buffer) Size() int64 { return s.size }

// Err is the first write error, if any.
func (s *Buffer) Err() error { return s.err }

// File returns the staged bytes as an unlinked regular file in the staging
// directory, positioned at its start. A message still in memory is written
// to a new file now; one that spilled already is in its file. Either way
// this file is the message's only copy on disk. The Buffer still owns the
// file: Close closes it, so a caller that must keep it longer dups it.
func (s *Buffer) File() (*os.File, error) {
	if s.err != nil {
		return nil, s.err
	}
	switch {
	case s.file == nil:
		// Still in memory: one write, without the spill's buffer.
		f, err := createUnlinked(s.dir)
		if err != nil {
			s.err = fmt.Errorf("staging: %w", err)
			return nil, s.err
		}
		s.file = f
		if _, err := f.Write(s.mem); err != nil {
			s.err = fmt.Errorf("staging: %w", err)
			return nil, s.err
		}
		s.mem = nil
	case s.w != nil:
		if err := s.w.Flush(); err != nil {
			s.err = fmt.Errorf("staging: %w", err)
			return nil, s.err
		}
	}
	s.w = nil // nothing may be written after File
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("staging: %w", err)
	}
	return s.file, nil
}

// createUnlinked creates a file in dir ("" means os.TempDir()) that has no
// name: O_TMPFILE where the file system supports it, else a new name that
// is removed at once. Either way the file lives only as long as its
// descriptors, so nothing is left behind whatever happens to mppd.
func createUnlinked(dir string) (*os.File, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if f, tried, err := openNameless(dir); tried {
		return f, err
	}
	f, err := os.CreateTemp(dir, "mppd-staging-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Spilled reports whether the bytes are in a file: they passed the
// threshold, or File was called.
func (s *Buffer) Spilled() bool { return s.file != nil }

// Close frees the buffer.
func (s *Buffer) Close() error {
	s.mem = nil
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}

// ErrLowSpace is returned by CheckFree when the staging filesystem is too
// full to take a message of the largest allowed size.
var ErrLowSpace = errors.New("staging: not enough free space in the staging directory")

// CheckFree reports ErrLowSpace when the filesystem holding dir ("" means
// os.TempDir()) has fewer than need bytes available to an unprivileged
// user. Postfix refuses mail below 1.5 times its message size limit for the
// same reason: better to say 451 before the text than to fail after it.
func CheckFree(dir string, need int64) error {
	if dir == "" {
		dir = os.TempDir()
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("staging: %w", err)
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < need {
		return fmt.Errorf("%w: %d bytes free, %d needed", ErrLowSpace, free, need)
	}
	return nil
}
