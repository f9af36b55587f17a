package maildir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/testenv"
)

const testMsg = "From: alice@example.org\nTo: Bob@example.com, carol@example.net\nSubject: hi\n\n.leading dot kept\nbody\n\n"

func newTestBackend(t *testing.T) (*Backend, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "mail")
	d, err := New(config.Maildir{Root: root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}

func env(rcpts ...string) delivery.Envelope {
	return delivery.Envelope{Sender: "alice@example.org", Recipients: rcpts, Session: "s1"}
}

// files lists the names in dir, which must exist.
func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// allFiles lists every regular file under root.
func allFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestDeliverTwoRecipients(t *testing.T) {
	d, root := newTestBackend(t)
	// An *os.File, as the engine passes for a large message.
	src := filepath.Join(t.TempDir(), "staged")
	os.WriteFile(src, []byte(testMsg), 0o600)
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := d.Deliver(context.Background(), env("Bob@Example.com", "carol@example.net", "bob@example.com"), f); err != nil {
		t.Fatal(err)
	}
	want := "Return-Path: <alice@example.org>\n" + testMsg
	for _, rcpt := range []string{"bob@example.com", "carol@example.net"} {
		dir := filepath.Join(root, rcpt)
		news := files(t, filepath.Join(dir, "new"))
		if len(news) != 1 {
			t.Fatalf("%s: %d files in new/, want 1 (duplicates by case are one maildir)", rcpt, len(news))
		}
		if tmp := files(t, filepath.Join(dir, "tmp")); len(tmp) != 0 {
			t.Errorf("%s: tmp/ not empty: %q", rcpt, tmp)
		}
		if cur := files(t, filepath.Join(dir, "cur")); len(cur) != 0 {
			t.Errorf("%s: cur/ not empty", rcpt)
		}
		p := filepath.Join(dir, "new", news[0])
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s: content\n%q\nwant\n%q", rcpt, got, want)
		}
		host, _ := os.Hostname()
		if !strings.Contains(news[0], fmt.Sprintf("P%d", os.Getpid())) || !strings.HasSuffix(news[0], "."+escapeHost(host)) {
			t.Errorf("name %q does not follow the Maildir convention", news[0])
		}
		for _, pp := range []string{p, dir, filepath.Join(dir, "new")} {
			fi, _ := os.Stat(pp)
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %04o, want no group/other bits", pp, perm)
			}
		}
	}
	if n := len(files(t, root)); n != 2 {
		t.Errorf("root holds %d maildirs, want 2", n)
	}
}

func TestDeliverBinaryBytes(t *testing.T) {
	d, root := newTestBackend(t)
	body := make([]byte, 200_000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	msg := append([]byte("Subject: bytes\n\n"), body...)
	if err := d.Deliver(context.Background(), env("a@x", "b@x"), iotest.HalfReader(bytes.NewReader(msg))); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"a@x", "b@x"} {
		dir := filepath.Join(root, r, "new")
		got, _ := os.ReadFile(filepath.Join(dir, files(t, dir)[0]))
		if !bytes.Equal(got, append([]byte("Return-Path: <alice@example.org>\n"), msg...)) {
			t.Errorf("%s: copy differs from the message", r)
		}
	}
}

func TestUnsafeRecipients(t *testing.T) {
	for i, bad := range []string{
		"", ".", "..", ".hidden@example.com", "-oQ@example.com", "a/b@example.com",
		"../../etc/passwd", "a@example.com/..", "nul\x00@example.com", "tab\t@example.com",
		strings.Repeat("a", 250) + "@example.com",
		// Safe as names, but not addresses.
		"no-at-sign", "a@[127.0.0.1]", "$(id)@example.com", "|cmd@example.com",
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			d, root := newTestBackend(t)
			// A good recipient first: it must not get a copy either.
			err := d.Deliver(context.Background(), env("good@example.com", bad), strings.NewReader(testMsg))
			var perm *delivery.PermanentError
			if !errors.As(err, &perm) || perm.Reason != "unsafe-recipient" && perm.Reason != "bad-recipient" {
				t.Fatalf("%.40q: err = %v, want permanent unsafe-recipient or bad-recipient", bad, err)
			}
			if n := len(files(t, root)); n != 0 {
				t.Errorf("something was written: %d entries in the root", n)
			}
		})
	}
}

func TestEnvelopeRefused(t *testing.T) {
	d, root := newTestBackend(t)
	if err := d.Deliver(context.Background(), env(), strings.NewReader(testMsg)); !delivery.IsPermanent(err) {
		t.Errorf("no recipients: %v", err)
	}
	e := env("bob@example.com")
	e.Sender = "alice@example.org>\nX-Injected: yes"
	if err := d.Deliver(context.Background(), e, strings.NewReader(testMsg)); !delivery.IsPermanent(err) || delivery.Reason(err) != "bad-sender" {
		t.Errorf("bad sender: %v", err)
	}
	if n := len(files(t, root)); n != 0 {
		t.Errorf("something was written")
	}
	// The null sender is fine.
	e.Sender = ""
	if err := d.Deliver(context.Background(), e, strings.NewReader(testMsg)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "bob@example.com", "new")
	got, _ := os.ReadFile(filepath.Join(dir, files(t, dir)[0]))
	if !strings.HasPrefix(string(got), "Return-Path: <>\n") {
		t.Errorf("null sender: %q", got[:30])
	}
}

// checkClean asserts no message file is left anywhere under root.
func checkClean(t *testing.T, root string) {
	t.Helper()
	if left := allFiles(t, root); len(left) != 0 {
		t.Errorf("files left after a failed delivery: %q", left)
	}
}

func wantTemporary(t *testing.T, err error, reason string) {
	t.Helper()
	var tmp *delivery.TemporaryError
	if !errors.As(err, &tmp) || tmp.Reason != reason {
		t.Fatalf("err = %v, want temporary %s", err, reason)
	}
}

func TestFailureMidway(t *testing.T) {
	t.Run("second recipient's maildir is a file", func(t *testing.T) {
		d, root := newTestBackend(t)
		os.WriteFile(filepath.Join(root, "bob@example.com"), nil, 0o600)
		err := d.Deliver(context.Background(), env("alice@example.com", "bob@example.com"), strings.NewReader(testMsg))
		wantTemporary(t, err, "not-a-directory")
		os.Remove(filepath.Join(root, "bob@example.com"))
		checkClean(t, root)
	})
	t.Run("root replaced by a file", func(t *testing.T) {
		d, root := newTestBackend(t)
		os.Remove(root)
		os.WriteFile(root, nil, 0o600)
		err := d.Deliver(context.Background(), env("alice@example.com"), strings.NewReader(testMsg))
		wantTemporary(t, err, "not-a-directory")
	})
	t.Run("message read error", func(t *testing.T) {
		d, root := newTestBackend(t)
		msg := io.MultiReader(strings.NewReader(testMsg), iotest.ErrReader(errors.New("disk ate it")))
		err := d.Deliver(context.Background(), env("alice@example.com", "bob@example.com"), msg)
		wantTemporary(t, err, "read-message")
		checkClean(t, root)
	})
	// TestFailureMidwayUnprivileged runs these two as an ordinary user.
	for _, tc := range []struct{ name, sub string }{
		{"read-only tmp of the second recipient", "tmp"},
		{"read-only new of the second recipient: first copy taken back", "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if os.Geteuid() == 0 {
				t.Skip("skipping: running as root, which ignores directory permissions; run the tests as an ordinary user to check this case")
			}
			d, root := newTestBackend(t)
			makeMaildirAt(t, root, "bob@example.com")
			ro := filepath.Join(root, "bob@example.com", tc.sub)
			os.Chmod(ro, 0o500)
			defer os.Chmod(ro, 0o700)
			err := d.Deliver(context.Background(), env("alice@example.com", "bob@example.com"), strings.NewReader(testMsg))
			wantTemporary(t, err, "permission")
			checkClean(t, root)
		})
	}
	t.Run("rename fails after the first copy moved: first copy taken back", func(t *testing.T) {
		// Works as root too: once both copies are written, carol's new/
		// is replaced by a file, so moving her copy fails after bob's
		// has been moved.
		d, root := newTestBackend(t)
		carolNew := filepath.Join(root, "carol@example.com", "new")
		d.beforeRename = func() {
			os.Remove(carolNew)
			os.WriteFile(carolNew, nil, 0o600)
		}
		err := d.Deliver(context.Background(), env("bob@example.com", "carol@example.com"), strings.NewReader(testMsg))
		wantTemporary(t, err, "not-a-directory")
		os.Remove(carolNew)
		checkClean(t, root)
	})
}

// makeMaildirAt makes the Maildir of name under root, as a delivery would.
func makeMaildirAt(t *testing.T, root, name string) {
	t.Helper()
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir, err := makeMaildir(r, name)
	if err != nil {
		t.Fatal(err)
	}
	dir.Close()
}

func TestCanceled(t *testing.T) {
	d, root := newTestBackend(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := d.Deliver(ctx, env("alice@example.com"), strings.NewReader(testMsg))
	wantTemporary(t, err, "canceled")
	checkClean(t, root)
}

func TestConcurrentDeliveries(t *testing.T) {
	d, root := newTestBackend(t)
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i)
			if err := d.Deliver(context.Background(), env("bob@example.com", fmt.Sprintf("u%d@example.com", i%3)), strings.NewReader(msg)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	dir := filepath.Join(root, "bob@example.com", "new")
	names := files(t, dir)
	if len(names) != n {
		t.Fatalf("%d files for bob, want %d", len(names), n)
	}
	seen := make(map[string]bool)
	for _, name := range names {
		got, _ := os.ReadFile(filepath.Join(dir, name))
		var i int
		if _, err := fmt.Sscanf(string(got), "Return-Path: <alice@example.org>\nSubject: %d\n", &i); err != nil {
			t.Fatalf("%s: %q", name, got)
		}
		want := fmt.Sprintf("Return-Path: <alice@example.org>\nSubject: %d\n\nbody %d\n", i, i)
		if string(got) != want || seen[want] {
			t.Errorf("%s: %q (duplicate: %v)", name, got, seen[want])
		}
		seen[want] = true
	}
	total := 0
	for i := range 3 {
		total += len(files(t, filepath.Join(root, fmt.Sprintf("u%d@example.com", i), "new")))
	}
	if total != n {
		t.Errorf("%d copies for the other recipients, want %d", total, n)
	}
}

func TestConfig(t *testing.T) {
	if err := (config.Maildir{}).Validate(); err == nil || !strings.Contains(err.Error(), "root is required") {
		t.Errorf("empty root: %v", err)
	}
	if err := config.DefaultMaildir().Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := New(config.Maildir{Root: file}, nil); err == nil {
		t.Error("a file accepted as root")
	}
	d, root := newTestBackend(t)
	if fi, err := os.Stat(root); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("root not created 0700: %v", err)
	}
	if d.String() != "maildir "+root {
		t.Errorf("String() = %q", d.String())
	}
}

func TestCheckNameAllowsPlainAddresses(t *testing.T) {
	for _, ok := range []string{"bob@example.com", "b.o+b@example.com", "o'neil@example.com", "x@localhost"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// TestSymlinks: a symbolic link anywhere on a copy's path (the recipient's
// directory, tmp/, new/ or cur/, pointing outside the root, inside it, or
// nowhere) fails the whole message with 451 and a log line, and nothing is
// written outside the root nor delivered to anyone.
func TestSymlinks(t *testing.T) {
	const eve = "eve@example.test"
	cases := []struct {
		name string
		// link makes the link; outside is a directory outside the root.
		link func(t *testing.T, root, outside string)
	}{
		{"maildir to outside", func(t *testing.T, root, outside string) {
			mustSymlink(t, outside, filepath.Join(root, eve))
		}},
		{"new to outside", func(t *testing.T, root, outside string) {
			makeMaildirAt(t, root, eve)
			os.Remove(filepath.Join(root, eve, "new"))
			mustSymlink(t, outside, filepath.Join(root, eve, "new"))
		}},
		{"tmp to outside", func(t *testing.T, root, outside string) {
			makeMaildirAt(t, root, eve)
			os.Remove(filepath.Join(root, eve, "tmp"))
			mustSymlink(t, outside, filepath.Join(root, eve, "tmp"))
		}},
		{"cur to outside", func(t *testing.T, root, outside string) {
			makeMaildirAt(t, root, eve)
			os.Remove(filepath.Join(root, eve, "cur"))
			mustSymlink(t, outside, filepath.Join(root, eve, "cur"))
		}},
		{"maildir to another maildir inside the root", func(t *testing.T, root, outside string) {
			makeMaildirAt(t, root, "alice@example.com")
			mustSymlink(t, "alice@example.com", filepath.Join(root, eve))
		}},
		{"maildir dangling", func(t *testing.T, root, outside string) {
			mustSymlink(t, filepath.Join(outside, "nowhere"), filepath.Join(root, eve))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "mail")
			outside := t.TempDir()
			logs := &testenv.LogBuffer{}
			d, err := New(config.Maildir{Root: root}, slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			tc.link(t, root, outside)
			err = d.Deliver(context.Background(), env("bob@example.com", eve), strings.NewReader(testMsg))
			wantTemporary(t, err, "symlink")
			if !strings.Contains(logs.String(), "symbolic link") || !strings.Contains(logs.String(), eve) {
				t.Errorf("no log line naming the link:\n%s", logs)
			}
			if got := allFiles(t, outside); len(got) != 0 {
				t.Errorf("written outside the root: %q", got)
			}
			checkClean(t, root)
		})
	}
	t.Run("new replaced by a link after the copies are written", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "mail")
		outside := t.TempDir()
		d, err := New(config.Maildir{Root: root}, nil)
		if err != nil {
			t.Fatal(err)
		}
		d.beforeRename = func() {
			os.Remove(filepath.Join(root, eve, "new"))
			mustSymlink(t, outside, filepath.Join(root, eve, "new"))
		}
		err = d.Deliver(context.Background(), env("bob@example.com", eve), strings.NewReader(testMsg))
		wantTemporary(t, err, "symlink")
		if got := allFiles(t, outside); len(got) != 0 {
			t.Errorf("written outside the root: %q", got)
		}
		checkClean(t, root)
	})
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
