package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/mppd/mppd/internal/logkey"
)

// statusInterval is how often STATUS= is refreshed while the session count
// changes; an unchanged count is not sent again.
var statusInterval = 2 * time.Second // a variable for tests

// sdNotify sends state to systemd's notification socket (sd_notify(3)) if
// NOTIFY_SOCKET is set, and does nothing otherwise. NOTIFY_SOCKET stays in
// mppd's environment (every message reads it); child processes never see
// it, because the sendmail backend builds their environment from an
// allowlist.
func sdNotify(state string) error {
	_, err := sd.SdNotify(false, state)
	return err
}

// notify sends state through d.notify, if set, and logs a failure.
func (d *daemon) sendNotify(state string) {
	if d.notify == nil {
		return
	}
	if err := d.notify(state); err != nil {
		d.log.Warn("sd_notify failed", logkey.Err, err, "state", strings.ReplaceAll(state, "\n", " "))
	}
}

// statusText is the STATUS= line systemctl status shows.
func (d *daemon) statusText(phase string, n int) string {
	return fmt.Sprintf("STATUS=%s: %d session%s", phase, n, plural(n))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// supervise runs until ctx is done: it refreshes STATUS= when the session
// count has changed, sends WATCHDOG=1 at half the WatchdogSec= systemd
// asked for (WATCHDOG_USEC), and, with exitOnIdle, calls idle once no
// session has run for that long. draining says which phase the status
// names.
func (d *daemon) supervise(ctx context.Context, draining func() bool, idle func()) {
	var watchdog <-chan time.Time
	if d.watchdog > 0 {
		t := time.NewTicker(d.watchdog / 2)
		defer t.Stop()
		watchdog = t.C
		d.sendNotify("WATCHDOG=1")
	}
	status := time.NewTicker(statusInterval)
	defer status.Stop()
	var idleTick <-chan time.Time
	if d.exitOnIdle > 0 && idle != nil {
		t := time.NewTicker(min(d.exitOnIdle/4, time.Second))
		defer t.Stop()
		idleTick = t.C
	}
	last := -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-watchdog:
			// Taking the session lock proves the accept path is not
			// stuck on it.
			d.count()
			d.sendNotify("WATCHDOG=1")
		case <-status.C:
			n := d.count()
			if n != last {
				phase := "serving"
				if draining() {
					phase = "shutting down"
				}
				d.sendNotify(d.statusText(phase, n))
				last = n
			}
		case <-idleTick:
			if since, ok := d.idleSince(); ok && time.Since(since) >= d.exitOnIdle {
				d.log.Info("no session for a while, exiting; systemd keeps the sockets",
					logkey.Event, logkey.EventExitOnIdle, "idle", time.Since(since).Round(time.Second))
				idle()
				idle, idleTick = nil, nil
			}
		}
	}
}

// idleSince returns when the last session ended (or the daemon started)
// and whether no session runs now.
func (d *daemon) idleSince() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastActive, len(d.sessions) == 0
}

// reloadingState is what mppd tells systemd while it handles SIGHUP:
// RELOADING=1 with the monotonic time (Type=notify-reload, systemd 253,
// needs it), READY=1 when done.
func reloadingState() string {
	return "RELOADING=1\n" + sd.SdNotifyMonotonicUsec()
}

// underJournal reports whether stderr is connected to the journal: systemd
// sets JOURNAL_STREAM to the device and inode of that stream
// (systemd.exec(5)). journald stamps every line itself, so the log then
// leaves out its own time.
func underJournal() bool {
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		return false
	}
	return v == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// journalHandler puts the sd-daemon(3) priority prefix ("<3>" for an
// error ... "<7>" for debug) before each line, which journald reads as the
// entry's priority (SyslogLevelPrefix=, on by default), so that
// `journalctl -p warning -u mppd` finds the warnings and errors.
type journalHandler struct {
	inner slog.Handler
	pw    *prefixWriter
	mu    *sync.Mutex // shared by every derived handler: one pw
}

// prefixWriter writes prefix and a line in one write. slog's handlers
// write each record with exactly one Write call.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func newJournalHandler(newInner func(io.Writer) slog.Handler, w io.Writer) slog.Handler {
	pw := &prefixWriter{w: w}
	return &journalHandler{inner: newInner(pw), pw: pw, mu: new(sync.Mutex)}
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pw.prefix = syslogPrefix(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), pw: h.pw, mu: h.mu}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), pw: h.pw, mu: h.mu}
}

// syslogPrefix maps a slog level to a syslog priority (RFC 5424 §6.2.1).
func syslogPrefix(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	default:
		return "<7>"
	}
}
