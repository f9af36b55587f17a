package sendlimit

import (
	"bytes"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mppd/mppd/internal/testenv"
)

// start is the top of an hour, so that slot edges are easy to see.
var start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func newTest(t *testing.T, def Limits, mutate func(*Config)) (*Limiter, *testenv.Clock, *bytes.Buffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Default = def
	if mutate != nil {
		mutate(&cfg)
	}
	var logs bytes.Buffer
	l := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	c := testenv.NewClock(start)
	l.now = c.Now
	return l, c, &logs
}

// send reserves one message and fails the test if it is refused.
func send(t *testing.T, l *Limiter, login string, recipients int) *Reservation {
	t.Helper()
	r, ref := l.Reserve(login, recipients)
	if ref != nil {
		t.Fatalf("Reserve(%s, %d) refused: %+v", login, recipients, *ref)
	}
	return r
}

// refused reserves one message and fails the test unless it is refused
// for limit.
func refused(t *testing.T, l *Limiter, login string, recipients int, limit string) *Refusal {
	t.Helper()
	r, ref := l.Reserve(login, recipients)
	if ref == nil {
		r.Cancel()
		t.Fatalf("Reserve(%s, %d) allowed, want refused for %s", login, recipients, limit)
	}
	if ref.Limit != limit {
		t.Fatalf("Reserve(%s, %d) refused for %s, want %s", login, recipients, ref.Limit, limit)
	}
	return ref
}

func TestDefaults(t *testing.T) {
	d := DefaultConfig()
	if d.Default != (Limits{200, 1000, 5000}) || d.MaxEntries != 10000 {
		t.Fatalf("DefaultConfig() = %+v", d)
	}
	if !New(d, nil).Enabled() {
		t.Fatal("the default limits are not enabled")
	}
	var l *Limiter
	if r, ref := l.Reserve("alice", 5); r != nil || ref != nil || l.Enabled() {
		t.Fatal("a nil Limiter limits")
	}
}

// The message limit: the 201st message in an hour is refused, with the
// count and the limit; the refusal is not counted.
func TestMessagesPerHour(t *testing.T) {
	l, c, _ := newTest(t, Limits{MessagesPerHour: 200}, nil)
	for i := 0; i < 200; i++ {
		send(t, l, "alice", 1)
		c.Advance(10 * time.Second)
	}
	ref := refused(t, l, "alice", 1, MessagesPerHour)
	if ref.Max != 200 || ref.Count != 200 || ref.Permanent || !ref.First {
		t.Fatalf("refusal %+v", *ref)
	}
	if ref := refused(t, l, "alice", 1, MessagesPerHour); ref.First {
		t.Fatal("the second refusal in the window is marked first")
	}
	if m, r, d := l.Counts("alice"); m != 200 || r != 200 || d != 200 {
		t.Fatalf("counts %d %d %d, want 200 each: refusals must not count", m, r, d)
	}
}

// The edge of the hour: a message is counted until its minute slot falls
// out of the window, between 59 and 60 minutes later, and not after.
func TestEdgeOfTheHour(t *testing.T) {
	l, c, _ := newTest(t, Limits{MessagesPerHour: 2}, nil)
	c.Advance(30 * time.Second) // 10:00:30
	send(t, l, "alice", 1)
	c.Advance(15 * time.Minute) // 10:15:30
	send(t, l, "alice", 1)
	c.Set(start.Add(59*time.Minute + 59*time.Second)) // 10:59:59
	refused(t, l, "alice", 1, MessagesPerHour)
	c.Set(start.Add(time.Hour)) // 11:00:00: the 10:00 slot is out
	send(t, l, "alice", 1)
	refused(t, l, "alice", 1, MessagesPerHour)
	c.Set(start.Add(time.Hour + 15*time.Minute)) // 11:15:00: 10:15 is out
	send(t, l, "alice", 1)
	if m, _, _ := l.Counts("alice"); m != 2 {
		t.Fatalf("%d messages in the hour, want 2", m)
	}
}

// Several limits at once: the first one a message would pass refuses it,
// and the day outlasts the hour.
func TestSeveralLimits(t *testing.T) {
	l, c, _ := newTest(t, Limits{MessagesPerHour: 10, RecipientsPerHour: 50, RecipientsPerDay: 100}, nil)
	for i := 0; i < 5; i++ {
		send(t, l, "alice", 10)
	}
	ref := refused(t, l, "alice", 1, RecipientsPerHour)
	if ref.Count != 50 || ref.Max != 50 {
		t.Fatalf("refusal %+v", *ref)
	}
	c.Advance(time.Hour)
	for i := 0; i < 5; i++ {
		send(t, l, "alice", 1)
	}
	for i := 0; i < 5; i++ {
		send(t, l, "alice", 2)
	}
	refused(t, l, "alice", 1, MessagesPerHour)
	c.Advance(time.Hour)
	send(t, l, "alice", 30) // 50 + 15 + 30 = 95 today
	ref = refused(t, l, "alice", 6, RecipientsPerDay)
	if ref.Count != 95 || ref.Max != 100 {
		t.Fatalf("refusal %+v", *ref)
	}
	send(t, l, "alice", 5) // exactly 100 is allowed
	// The day window forgets the first hour's 50 between 23½ and 24
	// hours later.
	c.Set(start.Add(23*time.Hour + 59*time.Minute))
	refused(t, l, "alice", 1, RecipientsPerDay)
	c.Set(start.Add(24 * time.Hour))
	send(t, l, "alice", 50)
	if m, r, d := l.Counts("alice"); m != 1 || r != 50 || d != 100 {
		t.Fatalf("counts %d %d %d, want 1 50 100", m, r, d)
	}
}

// A message with more recipients than a limit allows can never pass: the
// refusal says so, and nothing is counted.
func TestPermanent(t *testing.T) {
	l, _, _ := newTest(t, Limits{RecipientsPerHour: 20, RecipientsPerDay: 100}, nil)
	ref := refused(t, l, "alice", 21, RecipientsPerHour)
	if !ref.Permanent {
		t.Fatalf("refusal %+v, want permanent", *ref)
	}
	if l.Size() != 0 {
		t.Fatal("a permanent refusal took an entry")
	}
	send(t, l, "alice", 20)
}

// Overrides replace the defaults whole, ignore case, and 0 is unlimited;
// other logins keep the defaults.
func TestOverrides(t *testing.T) {
	l, _, _ := newTest(t, Limits{MessagesPerHour: 2, RecipientsPerHour: 10}, func(c *Config) {
		c.Users = map[string]Limits{
			"Newsletter": {MessagesPerHour: 5},
			"robot":      {},
		}
	})
	for i := 0; i < 5; i++ {
		send(t, l, "newsletter", 100) // recipients unlimited for it
	}
	refused(t, l, "NEWSLETTER", 1, MessagesPerHour)
	for i := 0; i < 1000; i++ {
		if r, ref := l.Reserve("robot", 1000); r != nil || ref != nil {
			t.Fatal("an unlimited login was counted or refused")
		}
	}
	send(t, l, "alice", 1)
	send(t, l, "Alice", 1)
	refused(t, l, "alice", 1, MessagesPerHour)
	if l.Size() != 2 {
		t.Fatalf("%d entries, want 2 (the unlimited login takes none)", l.Size())
	}
	l2, _, _ := newTest(t, Limits{}, func(c *Config) { c.Users = map[string]Limits{"x": {MessagesPerHour: 1}} })
	if !l2.Enabled() {
		t.Fatal("a limit set only by an override is not enabled")
	}
	if l3, _, _ := newTest(t, Limits{}, nil); l3.Enabled() {
		t.Fatal("all zero is enabled")
	}
}

// A delivery that failed gives its count back, once; a cancel after the
// slot has left the window changes nothing.
func TestCancel(t *testing.T) {
	l, c, _ := newTest(t, Limits{MessagesPerHour: 1, RecipientsPerDay: 10}, nil)
	r := send(t, l, "alice", 5)
	refused(t, l, "alice", 1, MessagesPerHour)
	r.Cancel()
	r.Cancel()
	if m, rh, d := l.Counts("alice"); m != 0 || rh != 0 || d != 0 {
		t.Fatalf("after Cancel: %d %d %d", m, rh, d)
	}
	r = send(t, l, "alice", 5)
	c.Advance(2 * time.Hour)
	send(t, l, "alice", 5)
	r.Cancel() // the hour slot is gone; the day slot still counts 5
	if m, _, d := l.Counts("alice"); m != 1 || d != 5 {
		t.Fatalf("after a late Cancel: %d messages, %d recipients today; want 1, 5", m, d)
	}
	var none *Reservation
	none.Cancel()
}

// Parallel sessions of one login cannot together pass the limit: a
// message counts from Reserve.
func TestParallelReserve(t *testing.T) {
	l, _, _ := newTest(t, Limits{MessagesPerHour: 50}, nil)
	l.now = time.Now
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ref := l.Reserve("alice", 1); ref == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 50 {
		t.Fatalf("%d of 200 parallel messages allowed, want 50", ok)
	}
}

// The table cap: the least recently used login makes room, and forgets
// its counts; idle logins are dropped by Sweep.
func TestTableCap(t *testing.T) {
	l, c, _ := newTest(t, Limits{MessagesPerHour: 1}, func(c *Config) { c.MaxEntries = 100 })
	for i := 0; i < 250; i++ {
		send(t, l, fmt.Sprint("user", i), 1)
	}
	if l.Size() != 100 {
		t.Fatalf("%d entries, want the cap, 100", l.Size())
	}
	refused(t, l, "user249", 1, MessagesPerHour) // still known
	send(t, l, "user0", 1)                       // evicted: forgotten
	c.Advance(25 * time.Hour)
	l.Sweep()
	if l.Size() != 0 {
		t.Fatalf("%d entries after a day of silence, want 0", l.Size())
	}
}

// The first refusal of a window is marked (the engine warns on it); the
// summary is written when the window is over, once, by Sweep or by the
// login's next message, and a new window then starts afresh.
func TestRefusalWindowSummary(t *testing.T) {
	l, c, logs := newTest(t, Limits{MessagesPerHour: 1}, nil)
	send(t, l, "alice", 3)
	c.Advance(time.Minute)
	if !refused(t, l, "alice", 2, MessagesPerHour).First {
		t.Fatal("first refusal not marked")
	}
	for i := 0; i < 4; i++ {
		if refused(t, l, "alice", 2, MessagesPerHour).First {
			t.Fatal("later refusal marked first")
		}
	}
	l.Sweep()
	if logs.Len() != 0 {
		t.Fatalf("summary before the window is over: %s", logs)
	}
	c.Advance(time.Hour)
	l.Sweep()
	l.Sweep()
	got := logs.String()
	if strings.Count(got, "event=send-limit-summary") != 1 || !strings.Contains(got, "login=alice") ||
		!strings.Contains(got, "limit=messages_per_hour") || !strings.Contains(got, "refused_messages=5") ||
		!strings.Contains(got, "refused_recipients=10") {
		t.Fatalf("summary:\n%s", got)
	}
	send(t, l, "alice", 1)
	c.Advance(time.Minute)
	if !refused(t, l, "alice", 1, MessagesPerHour).First {
		t.Fatal("the first refusal of a new window is not marked")
	}
	// Without Sweep, the login's next message writes the summary.
	logs.Reset()
	c.Advance(time.Hour)
	send(t, l, "alice", 1)
	if !strings.Contains(logs.String(), "refused_messages=1") {
		t.Fatalf("summary on the next message:\n%s", logs)
	}
}

// Run sweeps until it is told to stop, and then sums up the windows still
// open, since the counts die with the process.
func TestRunSummarisesAtExit(t *testing.T) {
	l, _, logs := newTest(t, Limits{MessagesPerHour: 1}, nil)
	send(t, l, "alice", 1)
	refused(t, l, "alice", 1, MessagesPerHour)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { l.Run(done); close(stopped) }()
	close(done)
	<-stopped
	if !strings.Contains(logs.String(), "event=send-limit-summary login=alice limit=messages_per_hour") {
		t.Fatalf("no summary at exit:\n%s", logs)
	}
}

// TestEntryBytes measures the memory one login's entry takes against
// EntryBytes, which mppd.conf(5) quotes.
func TestEntryBytes(t *testing.T) {
	const n = 20000
	l, _, _ := newTest(t, Limits{MessagesPerHour: 1}, func(c *Config) { c.MaxEntries = n })
	logins := make([]string, n)
	for i := range logins {
		logins[i] = fmt.Sprintf("user%08d", i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, u := range logins {
		l.Reserve(u, 1)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := int(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d bytes per entry (EntryBytes %d)", per, EntryBytes)
	if per > EntryBytes || l.Size() != n {
		t.Fatalf("%d bytes per entry, more than EntryBytes (%d); %d entries", per, EntryBytes, l.Size())
	}
	runtime.KeepAlive(l)
}

// BenchmarkReserve is the cost the engine adds to each message: one
// Reserve, over 1,000 logins.
func BenchmarkReserve(b *testing.B) {
	l := New(Config{Default: Limits{MessagesPerHour: 1 << 30, RecipientsPerHour: 1 << 30, RecipientsPerDay: 1 << 30}}, nil)
	logins := make([]string, 1000)
	for i := range logins {
		logins[i] = fmt.Sprint("user", i)
	}
	i := 0
	for b.Loop() {
		l.Reserve(logins[i%len(logins)], 3)
		i++
	}
}
