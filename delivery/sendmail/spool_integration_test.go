//go:build integration

package sendmail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mppd/mppd/delivery"
	"github.com/mppd/mppd/internal/testenv"
)

// An MTA installed after mppd started: its queue directory is read-only
// inside the sandbox. Deliver answers 451 at once, without running
// sendmail (which here would hang for its whole timeout), and says that
// mppd needs a restart.
func TestDeliverReadOnlySpoolFailsFast(t *testing.T) {
	testenv.NeedRoot(t)
	dir := t.TempDir()
	spool := filepath.Join(dir, "maildrop")
	if err := os.Mkdir(spool, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", spool, "tmpfs", unix.MS_RDONLY, "size=64k"); err != nil {
		t.Fatalf("mount a read-only tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(spool, 0) })

	if got := readOnlySpool([]string{filepath.Join(dir, "missing"), dir, spool}); got != spool {
		t.Fatalf("readOnlySpool = %q, want %q", got, spool)
	}

	ran := filepath.Join(dir, "ran")
	b, lb := newUnprivileged(t, writeScript(t, dir, "sendmail", "touch "+ran+"\nsleep 30"))
	b.spoolDirs = []string{spool}
	start := time.Now()
	err := b.Deliver(context.Background(), testEnvelope(), strings.NewReader(testMessage))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Deliver took %s", took)
	}
	var te *delivery.TemporaryError
	if !errors.As(err, &te) || delivery.Reason(err) != "spool-read-only" {
		t.Fatalf("Deliver = %v, want a temporary spool-read-only failure", err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("sendmail ran")
	}
	if !strings.Contains(lb.String(), "restart mppd") || !strings.Contains(lb.String(), "level=ERROR") {
		t.Errorf("the log does not say at error level that mppd needs a restart:\n%s", lb.String())
	}
}
