package slots

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A call refused for want of a slot is logged with the caller's fields and
// the bound, and its error counts the calls running; other errors pass
// through unlogged.
func TestLimiterBusy(t *testing.T) {
	var log strings.Builder
	l := NewLimiter(1, 10*time.Millisecond, slog.New(slog.NewTextHandler(&log, nil)))
	if err := l.Acquire(context.Background(), "jobs", "refused"); err != nil {
		t.Fatal(err)
	}
	err := l.Acquire(context.Background(), "jobs", "too many jobs", "who", "alice")
	if err == nil || err.Error() != "1 jobs already running" {
		t.Fatalf("Acquire with no free slot: %v", err)
	}
	if got := log.String(); !strings.Contains(got, `msg="too many jobs" who=alice max=1 waited=10ms`) {
		t.Errorf("log %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	log.Reset()
	if err := l.Acquire(ctx, "jobs", "too many jobs"); !errors.Is(err, context.Canceled) || log.Len() != 0 {
		t.Errorf("cancelled: %v, log %q", err, log.String())
	}
	l.Release()
	if l.InUse() != 0 || l.String() != "at most 1 at once (queue 10ms)" {
		t.Errorf("after Release: in use %d, %s", l.InUse(), l)
	}
}
