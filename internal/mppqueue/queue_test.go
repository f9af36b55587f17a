package mppqueue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func newQueue(t *testing.T) *Queue {
	t.Helper()
	q, err := Open(filepath.Join(t.TempDir(), "queue"))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// queueOne returns a new queue holding text, queued for alice, and the
// message's ID.
func queueOne(t *testing.T, text string) (*Queue, string) {
	t.Helper()
	q := newQueue(t)
	id, err := q.Add(Meta{User: "alice"}, strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return q, id
}

// A message goes in and comes out byte for byte, with its metadata; the
// files are private to the user; IDs sort oldest first.
func TestAddListMessage(t *testing.T) {
	q := newQueue(t)
	texts := []string{"To: a@x.test\r\n\r\none\r\n", "To: b@x.test\n\n.\nno newline at the end", ""}
	var ids []string
	for i, text := range texts {
		id, err := q.Add(Meta{User: "alice", Recipients: []string{string(rune('a'+i)) + "@x.test"}, From: "-f value"}, strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	list, err := q.List(true)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(texts) {
		t.Fatalf("listed %d, want %d", len(list), len(texts))
	}
	for i, e := range list {
		if e.ID != ids[i] {
			t.Errorf("entry %d is %s, want %s (oldest first)", i, e.ID, ids[i])
		}
		meta, text, err := q.Message(e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(text) != texts[i] || meta.User != "alice" || meta.Recipients[0] != e.Meta.Recipients[0] ||
			meta.From != "-f value" || meta.Size != int64(len(texts[i])) || meta.Created.IsZero() {
			t.Errorf("entry %d: meta %+v text %q", i, meta, text)
		}
		if !e.Due(time.Now()) {
			t.Errorf("a new entry is not due")
		}
	}
	if runtime.GOOS != "windows" {
		st, err := os.Stat(q.Dir)
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("queue directory mode %v (%v), want 0700", st.Mode().Perm(), err)
		}
		files, _ := filepath.Glob(filepath.Join(q.Dir, "*"+entryExt))
		for _, f := range files {
			if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v (%v), want 0600", f, st.Mode().Perm(), err)
			}
		}
	}
	// Nothing temporary is left behind.
	if left, _ := filepath.Glob(filepath.Join(q.Dir, tmpPrefix+"*")); len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// A queued message that changed on disk is refused, not posted.
func TestDamagedMessage(t *testing.T) {
	q, id := queueOne(t, "To: a@x.test\n\nhello\n")
	path := filepath.Join(q.Dir, id+entryExt)
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), "a@x.test", "z@x.test", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := q.Message(id)
	var de *DamagedError
	if !errors.As(err, &de) {
		t.Errorf("changed message: err %v, want a DamagedError", err)
	}
	if err := q.Remove(id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Message(id); !errors.Is(err, ErrGone) {
		t.Errorf("removed message: err %v, want ErrGone", err)
	}
}

// Retry pushes the next try back; MoveAside takes the message out of the
// queue into failed/ with its reason; Requeue brings it back.
func TestRetryMoveAsideRequeue(t *testing.T) {
	q, id := queueOne(t, "To: a@x.test\n\nx\n")
	now := time.Now()
	s, err := q.Retry(id, now, "451 try later")
	if err != nil {
		t.Fatal(err)
	}
	if s.Attempts != 1 || !s.NextTry.Equal(now.UTC().Add(5*time.Minute)) {
		t.Errorf("state after one retry: %+v", s)
	}
	s, _ = q.Retry(id, now, "451 try later")
	list, _ := q.List(false)
	if len(list) != 1 || list[0].State.Attempts != 2 || list[0].Due(now.Add(9*time.Minute)) || !list[0].Due(now.Add(10*time.Minute)) {
		t.Errorf("after two retries: %+v (state %+v)", list, s)
	}
	if err := q.MoveAside(id, now, "550 no"); err != nil {
		t.Fatal(err)
	}
	if list, _ := q.List(false); len(list) != 0 {
		t.Errorf("queued after MoveAside: %+v", list)
	}
	list, _ = q.List(true)
	if len(list) != 1 || !list[0].Failed || list[0].State.Reason != "550 no" || list[0].Due(now.Add(time.Hour)) {
		t.Errorf("failed list: %+v", list)
	}
	if err := q.Requeue(id); err != nil {
		t.Fatal(err)
	}
	list, _ = q.List(true)
	if len(list) != 1 || list[0].Failed || !list[0].Due(now) {
		t.Errorf("after Requeue: %+v", list)
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, 80 * time.Minute, 160 * time.Minute, 4 * time.Hour, 4 * time.Hour}
	for i, w := range want {
		if got := Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}

// The lock is exclusive between holders, waits, and gives up when told.
func TestLock(t *testing.T) {
	q := newQueue(t)
	l, err := q.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := q.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second lock while held: %v, want a timeout", err)
	}
	var mu sync.Mutex
	order := []string{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l2, err := q.Lock(context.Background())
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		order = append(order, "second")
		mu.Unlock()
		l2.Unlock()
	}()
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	order = append(order, "first")
	mu.Unlock()
	l.Unlock()
	<-done
	if strings.Join(order, ",") != "first,second" {
		t.Errorf("order %v: the second holder did not wait", order)
	}
}

// A queue directory others may enter is made private; one that belongs
// to someone else is refused.
func TestOpenPrivate(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows guards the directory with its ACL")
	}
	dir := filepath.Join(t.TempDir(), "queue")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("mode %v after Open, want 0700", st.Mode().Perm())
	}
	if os.Geteuid() != 0 {
		return // only root can give a directory away
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("someone else's directory: %v", err)
	}
}

func TestOpenRefusesUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "queue")); err == nil {
		t.Error("a queue under a file opened")
	}
	if _, err := Open(""); err == nil {
		t.Error("a queue without a directory opened")
	}
}
