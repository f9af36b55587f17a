package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
	"github.com/mppd/mppd/internal/testharness"
)

// notes collects what the daemon sends to systemd.
type notes struct {
	mu   sync.Mutex
	msgs []string
}

func (n *notes) notify(s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, s)
	return nil
}

// wait waits for a message containing substr and returns how many
// messages contained it.
func (n *notes) wait(t *testing.T, substr string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n.mu.Lock()
		k := 0
		for _, m := range n.msgs {
			if strings.Contains(m, substr) {
				k++
			}
		}
		all := append([]string(nil), n.msgs...)
		n.mu.Unlock()
		if k > 0 {
			return k
		}
		if time.Now().After(deadline) {
			t.Fatalf("no notification with %q; got %q", substr, all)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lifecycleDaemon is a daemon on a loopback listener whose sessions last
// until release is closed (or shutdown).
func lifecycleDaemon(t *testing.T, n *notes) (d *daemon, addr string, release chan struct{}, run func(ctx context.Context) chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release = make(chan struct{})
	d = &daemon{
		serve: func(ctx context.Context, conn net.Conn) {
			defer conn.Close()
			conn.Write([]byte("220 hello\r\n"))
			select {
			case <-release:
			case <-ctx.Done():
			}
		},
		refuse:       func(conn net.Conn, why string) { conn.Close() },
		log:          quietLog(),
		maxSessions:  10,
		maxPerClient: 10,
		trusted:      func(netip.Addr) bool { return true },
		drainTimeout: 5 * time.Second,
		notify:       n.notify,
	}
	run = func(ctx context.Context) chan error {
		errc := make(chan error, 1)
		go func() { errc <- d.run(ctx, nil, []net.Listener{l}) }()
		return errc
	}
	return d, l.Addr().String(), release, run
}

func dialGreeting(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 11)
	if _, err := c.Read(buf); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return c
}

// TestNotify: READY=1 with STATUS= once accepting, STATUS= with the live
// session count as it changes, WATCHDOG=1 at half the interval, and
// STOPPING=1 when shutdown starts.
func TestNotify(t *testing.T) {
	old := statusInterval
	statusInterval = 20 * time.Millisecond
	defer func() { statusInterval = old }()
	n := &notes{}
	d, addr, release, run := lifecycleDaemon(t, n)
	d.watchdog = 40 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	errc := run(ctx)

	n.wait(t, "READY=1\nSTATUS=serving: 0 sessions")
	c := dialGreeting(t, addr)
	defer c.Close()
	n.wait(t, "STATUS=serving: 1 session")
	testenv.WaitFor(t, 10*time.Second, func() bool { return n.wait(t, "WATCHDOG=1") >= 3 },
		"fewer than 3 WATCHDOG=1 in 10s at a 40ms interval")
	close(release)
	n.wait(t, "STATUS=serving: 0 sessions") // again, from the ticker
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	n.wait(t, "STOPPING=1")
	// The last message clears STATUS=, so that the stopped unit does not
	// show a stale session count.
	n.mu.Lock()
	last := n.msgs[len(n.msgs)-1]
	n.mu.Unlock()
	if last != "STATUS=" {
		t.Errorf("last notification %q, want an empty STATUS=", last)
	}
}

// TestExitOnIdle: with exitOnIdle, run returns nil by itself once no
// session has run for that long, not while one runs; a session still
// running when it stops accepting is let finish, not told 451.
func TestExitOnIdle(t *testing.T) {
	n := &notes{}
	d, addr, release, run := lifecycleDaemon(t, n)
	d.exitOnIdle = 150 * time.Millisecond
	errc := run(context.Background())

	c := dialGreeting(t, addr)
	defer c.Close()
	select {
	case err := <-errc:
		t.Fatalf("run returned (%v) while a session was open", err)
	case <-time.After(400 * time.Millisecond):
	}
	close(release)
	waitRun(t, errc, 10*time.Second, "no exit on idle")
	n.wait(t, "STOPPING=1")
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting after the exit on idle")
	}
}

// writeCert writes a fresh self-signed pair with common name cn.
func writeCert(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	_, certFile, keyFile := testharness.WriteCert(t, dir, cn)
	return certFile, keyFile
}

// TestCertStore: a reload that fails (bad PEM, key of another
// certificate, missing file) keeps the certificate in use; a good one
// replaces it for the next handshake.
func TestCertStore(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writeCert(t, dir, "one")
	s := &certStore{certFile: cf, keyFile: kf, log: quietLog()}
	// The monitor reads the files and hands the engine their text; a
	// missing file reads as nothing here.
	load := func(reload bool) error {
		c, _ := os.ReadFile(cf)
		k, _ := os.ReadFile(kf)
		return s.load(c, k, reload)
	}
	if err := load(false); err != nil {
		t.Fatal(err)
	}
	cn := func() string {
		c, err := s.getCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if cn() != "one" {
		t.Fatalf("cn %q", cn())
	}

	keyOne, _ := os.ReadFile(kf)
	os.WriteFile(cf, []byte("junk"), 0o644)
	if load(true) == nil || cn() != "one" {
		t.Error("bad PEM replaced the certificate")
	}
	writeCert(t, dir, "two")
	os.WriteFile(kf, keyOne, 0o600) // the old key with the new certificate
	if load(true) == nil || cn() != "one" {
		t.Error("a mismatched key replaced the certificate")
	}
	os.Remove(cf)
	if load(true) == nil || cn() != "one" {
		t.Error("a missing file replaced the certificate")
	}
	writeCert(t, dir, "three")
	if err := load(true); err != nil || cn() != "three" {
		t.Errorf("good reload: %v, cn %q", err, cn())
	}
	if cfg := s.config(0x0303); cfg.MinVersion != 0x0303 {
		t.Errorf("MinVersion %x", cfg.MinVersion)
	}
}

// TestUnderJournal: JOURNAL_STREAM counts only when it names the stream
// standard error is (systemd.exec(5)); a stale value inherited by a child
// with another stderr does not.
func TestUnderJournal(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !underJournal() {
		t.Error("stderr's own device:inode not recognised")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if underJournal() {
		t.Error("another stream taken for the journal")
	}
	t.Setenv("JOURNAL_STREAM", "")
	if underJournal() {
		t.Error("empty JOURNAL_STREAM taken for the journal")
	}
}

// TestJournalPriority: under the journal every line starts with its
// syslog priority, derived handlers included, and has no time.
func TestJournalPriority(t *testing.T) {
	var buf strings.Builder
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	log := slog.New(newJournalHandler(func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, opts) }, &buf))
	log.Error("e")
	log.With("session", "x").Warn("w")
	log.WithGroup("g").Info("i")
	log.Debug("d")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{"<3>", "<4>", "<6>", "<7>"}
	if len(lines) != len(want) {
		t.Fatalf("lines %q", lines)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]+"time=") && !strings.HasPrefix(l, want[i]+"level=") {
			t.Errorf("line %q does not start with %s", l, want[i])
		}
	}
	if !strings.Contains(lines[1], "session=x") {
		t.Errorf("derived handler lost its attribute: %q", lines[1])
	}
}
