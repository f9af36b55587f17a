// Package mppqueue is the mpp client's local queue: messages the server
// could not take yet, kept on disk until `mpp flush` posts them.
//
// A queue is one directory (mode 0700) holding:
//
//	ID.mppq     a queued message: one line of JSON (Meta), then the
//	            message text exactly as it is to be posted. Written once
//	            (temporary file, fsync, rename, fsync of the directory)
//	            and never changed; Meta.SHA256 lets a reader check that.
//	ID.state    the retry state (State) of a message the server refused
//	            for the time being; replaced atomically.
//	failed/     messages the server refused for good, with their state
//	            (State.Reason says why); kept until the user removes or
//	            requeues them.
//	.lock       the lock that makes senders take turns (Lock).
//	.tmp-*      files being written; left over only after a crash.
//
// IDs start with the UTC time of queueing, so the names sort oldest first.
// Nothing in the queue is a credential: the password is asked for again
// by whoever posts the message.
package mppqueue

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	entryExt   = ".mppq"
	stateExt   = ".state"
	failedDir  = "failed"
	lockName   = ".lock"
	tmpPrefix  = ".tmp-"
	maxMetaLen = 1 << 20
	// staleTmp is the age after which a leftover temporary file is
	// removed: far longer than any write takes.
	staleTmp = 24 * time.Hour
)

// Meta is what is stored with a message: who posts it and to whom, and
// the sendmail flags that shaped it. It is informational except User
// (the message is only posted as that user) and SHA256 (checked before
// posting).
type Meta struct {
	Created    time.Time `json:"created"`
	User       string    `json:"user"`
	Recipients []string  `json:"recipients"`
	// From and FullName are sendmail's -f and -F as given (mpp decided
	// at queueing time what they change in the header).
	From     string `json:"from,omitempty"`
	FullName string `json:"full_name,omitempty"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// State is the retry record of a message.
type State struct {
	Attempts  int       `json:"attempts"`
	LastTry   time.Time `json:"last_try"`
	NextTry   time.Time `json:"next_try"`
	LastError string    `json:"last_error,omitempty"`
	// Reason is set for a message moved to failed/: the refusal.
	Reason string `json:"reason,omitempty"`
}

// Entry is one queued (or failed) message.
type Entry struct {
	ID     string
	Meta   Meta
	State  State
	Failed bool
}

// Queue is a queue directory.
type Queue struct {
	Dir string
}

// Open returns the queue in dir, creating it (mode 0700) if need be. An
// error means messages cannot be queued there. A directory someone else
// owns is refused (they could read or swap the messages); one of ours that
// others may enter is made private.
func Open(dir string) (*Queue, error) {
	if dir == "" {
		return nil, errors.New("no queue directory")
	}
	if err := os.MkdirAll(filepath.Join(dir, failedDir), 0o700); err != nil {
		return nil, err
	}
	if err := makePrivate(dir); err != nil {
		return nil, err
	}
	return &Queue{Dir: dir}, nil
}

// newID returns a new message ID: the time, then random hex so that two
// messages queued in the same nanosecond differ.
func newID(now time.Time) (string, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return now.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(r[:]), nil
}

// Add stores msg with meta (Created, Size and SHA256 are filled in) and
// returns its ID. The message is on disk, synced, when Add returns nil.
func (q *Queue) Add(meta Meta, msg io.Reader) (string, error) {
	meta.Created = time.Now().UTC()
	id, err := newID(meta.Created)
	if err != nil {
		return "", err
	}
	// The message goes to a temporary file first, so that its size and
	// checksum are known before the metadata line is written.
	body, err := os.CreateTemp(q.Dir, tmpPrefix+"body-")
	if err != nil {
		return "", err
	}
	defer func() {
		body.Close()
		os.Remove(body.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(body, h), msg)
	if err != nil {
		return "", fmt.Errorf("writing the message: %w", err)
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	meta.Size = n
	meta.SHA256 = hex.EncodeToString(h.Sum(nil))
	line, err := json.Marshal(meta)
	if err != nil {
		return "", err
	}
	err = q.writeAtomic(id+entryExt, func(w io.Writer) error {
		if _, err := w.Write(append(line, '\n')); err != nil {
			return err
		}
		_, err := io.Copy(w, body)
		return err
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// writeAtomic writes name in the queue directory through a temporary
// file: fsync, rename, fsync of the directory. Readers see the old file or
// the whole new one, even after a crash.
func (q *Queue) writeAtomic(name string, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Join(q.Dir, filepath.Dir(name)), tmpPrefix)
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file mode 0600: only its owner reads it.
	bw := bufio.NewWriter(f)
	if err := fill(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(q.Dir, name)); err != nil {
		return err
	}
	ok = true
	return syncDir(filepath.Join(q.Dir, filepath.Dir(name)))
}

// List returns the queued messages, oldest first, and then, if failed is
// true, the failed ones. A message whose metadata cannot be read is
// listed with an empty Meta rather than hidden.
func (q *Queue) List(failed bool) ([]Entry, error) {
	entries, err := q.list("", false)
	if err != nil || !failed {
		return entries, err
	}
	f, err := q.list(failedDir, true)
	return append(entries, f...), err
}

func (q *Queue) list(sub string, failed bool) ([]Entry, error) {
	dir := filepath.Join(q.Dir, sub)
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, de := range des {
		name := de.Name()
		if !strings.HasSuffix(name, entryExt) || strings.HasPrefix(name, ".") || !de.Type().IsRegular() {
			continue
		}
		e := Entry{ID: strings.TrimSuffix(name, entryExt), Failed: failed}
		e.Meta, _ = readMeta(filepath.Join(dir, name))
		e.State, _ = readState(filepath.Join(dir, e.ID+stateExt))
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func readMeta(path string) (Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return Meta{}, err
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, maxMetaLen)).ReadBytes('\n')
	if err != nil {
		return Meta{}, fmt.Errorf("%s: no metadata line", path)
	}
	var m Meta
	if err := json.Unmarshal(line, &m); err != nil {
		return Meta{}, fmt.Errorf("%s: %v", path, err)
	}
	return m, nil
}

func readState(path string) (State, error) {
	var s State
	data, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(data, &s)
	return s, err
}

// ErrGone is returned by Message when the message is no longer queued
// (another mpp posted it).
var ErrGone = errors.New("no longer queued")

// DamagedError is a queued message that does not match its checksum.
type DamagedError struct{ ID, Why string }

func (e *DamagedError) Error() string { return "queued message " + e.ID + " is damaged: " + e.Why }

// Message returns a queued message's metadata and text, after checking
// the text against the checksum taken when it was queued.
func (q *Queue) Message(id string) (Meta, []byte, error) {
	data, err := os.ReadFile(filepath.Join(q.Dir, id+entryExt))
	if errors.Is(err, os.ErrNotExist) {
		return Meta{}, nil, ErrGone
	}
	if err != nil {
		return Meta{}, nil, err
	}
	line, text, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return Meta{}, nil, &DamagedError{id, "no metadata line"}
	}
	var m Meta
	if err := json.Unmarshal(line, &m); err != nil {
		return Meta{}, nil, &DamagedError{id, err.Error()}
	}
	sum := sha256.Sum256(text)
	if hex.EncodeToString(sum[:]) != m.SHA256 || int64(len(text)) != m.Size {
		return m, nil, &DamagedError{id, "its text does not match the checksum taken when it was queued"}
	}
	return m, text, nil
}

// Remove deletes a posted message and its state.
func (q *Queue) Remove(id string) error {
	err := os.Remove(filepath.Join(q.Dir, id+entryExt))
	if rerr := os.Remove(filepath.Join(q.Dir, id+stateExt)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	return syncDir(q.Dir)
}

// Retry records a temporary failure: one more attempt, the next one not
// before now plus Backoff.
func (q *Queue) Retry(id string, now time.Time, reason string) (State, error) {
	s, _ := readState(filepath.Join(q.Dir, id+stateExt))
	s.Attempts++
	s.LastTry = now.UTC()
	s.NextTry = s.LastTry.Add(Backoff(s.Attempts))
	s.LastError = reason
	return s, q.writeState("", id, s)
}

func (q *Queue) writeState(sub, id string, s State) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return q.writeAtomic(filepath.Join(sub, id+stateExt), func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}

// MoveAside moves a message the server refused for good to failed/, with
// the refusal as its reason.
func (q *Queue) MoveAside(id string, now time.Time, reason string) error {
	s, _ := readState(filepath.Join(q.Dir, id+stateExt))
	s.Attempts++
	s.LastTry = now.UTC()
	s.NextTry = time.Time{}
	s.Reason = reason
	if err := q.writeState(failedDir, id, s); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(q.Dir, id+entryExt), filepath.Join(q.Dir, failedDir, id+entryExt)); err != nil {
		return err
	}
	os.Remove(filepath.Join(q.Dir, id+stateExt))
	if err := syncDir(filepath.Join(q.Dir, failedDir)); err != nil {
		return err
	}
	return syncDir(q.Dir)
}

// Requeue puts a failed message back in the queue, due at once.
func (q *Queue) Requeue(id string) error {
	if err := os.Rename(filepath.Join(q.Dir, failedDir, id+entryExt), filepath.Join(q.Dir, id+entryExt)); err != nil {
		return err
	}
	os.Remove(filepath.Join(q.Dir, failedDir, id+stateExt))
	return syncDir(q.Dir)
}

// RemoveStale deletes temporary files left by a writer that died more
// than a day ago.
func (q *Queue) RemoveStale(now time.Time) {
	for _, sub := range []string{"", failedDir} {
		des, _ := os.ReadDir(filepath.Join(q.Dir, sub))
		for _, de := range des {
			if !strings.HasPrefix(de.Name(), tmpPrefix) {
				continue
			}
			if fi, err := de.Info(); err == nil && now.Sub(fi.ModTime()) > staleTmp {
				os.Remove(filepath.Join(q.Dir, sub, de.Name()))
			}
		}
	}
}

// Backoff is the wait after the n-th temporary refusal of a message:
// 5 minutes, doubling, at most 4 hours.
func Backoff(n int) time.Duration {
	d := 5 * time.Minute
	for i := 1; i < n && d < 4*time.Hour; i++ {
		d *= 2
	}
	return min(d, 4*time.Hour)
}

// Due reports whether e may be tried at now.
func (e Entry) Due(now time.Time) bool {
	return !e.Failed && !now.Before(e.State.NextTry)
}
