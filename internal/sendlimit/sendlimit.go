// Package sendlimit caps how much one login may send: messages per hour,
// recipients per hour and recipients per day, so that a stolen password
// cannot turn mppd into a spam cannon.
//
// Counts are kept per login (the name the authentication backend returned,
// compared without case) over sliding windows made of slots: the hour is
// 60 slots of a minute, the day 48 slots of 30 minutes. A message is
// counted in the slot of the moment it was accepted and forgotten when
// that slot falls out of the window: between 59 and 60 minutes later for
// the hourly limits, between 23½ and 24 hours later for the daily one.
//
// A message is counted as soon as Reserve allows it, so that parallel
// sessions of one login cannot together pass a limit while their
// deliveries run; a delivery that fails gives its count back (Cancel). A
// refused message never counts: a client that keeps retrying is not
// locked out longer for it.
//
// Memory is bounded: the table holds at most MaxEntries logins (about
// EntryBytes each), the least recently used one making room for a new
// one (it then forgets that login's counts), and a login is dropped once
// its counts are all back to zero. Logins whose limits are all 0
// (unlimited) take no entry.
//
// The limits are those of one process: behind a load balancer spreading
// users over N instances, a user may send up to N times as much.
package sendlimit

import (
	"container/list"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mppd/mppd/internal/logkey"
)

// The names of the limits: config keys, metric labels, log values.
const (
	MessagesPerHour   = "messages_per_hour"
	RecipientsPerHour = "recipients_per_hour"
	RecipientsPerDay  = "recipients_per_day"
)

// Names lists the limits in the order Reserve checks them.
func Names() []string { return []string{MessagesPerHour, RecipientsPerHour, RecipientsPerDay} }

// Limits are one login's caps; 0 means unlimited.
type Limits struct {
	MessagesPerHour   int
	RecipientsPerHour int
	RecipientsPerDay  int
}

func (l Limits) unlimited() bool {
	return l.MessagesPerHour == 0 && l.RecipientsPerHour == 0 && l.RecipientsPerDay == 0
}

// Config is the limiter's configuration.
type Config struct {
	// Default applies to every login not in Users.
	Default Limits
	// Users are per-login overrides (known bulk senders), by login
	// name; case is ignored. An override replaces Default whole.
	Users map[string]Limits
	// MaxEntries bounds the table of logins.
	MaxEntries int
}

// DefaultConfig returns the defaults documented in mppd.conf(5).
func DefaultConfig() Config {
	return Config{
		Default:    Limits{MessagesPerHour: 200, RecipientsPerHour: 1000, RecipientsPerDay: 5000},
		MaxEntries: 10000,
	}
}

// The windows' slots.
const (
	hourSlots = 60
	hourStep  = time.Minute
	daySlots  = 48
	dayStep   = 30 * time.Minute
)

// EntryBytes is about how much memory one login's entry takes (its three
// rings of counters, the rest of the entry, its list element and map
// slot, the key); with MaxEntries it bounds the limiter's memory, which
// mppd.conf(5) states. TestEntryBytes measures it.
const EntryBytes = 1100

// Refusal says why Reserve refused a message.
type Refusal struct {
	Limit string // which limit: MessagesPerHour, ...
	Max   int    // the limit
	Count int    // what the window holds now, without this message
	// Permanent is true when the message alone is over the limit (more
	// recipients than the limit allows): it can never be accepted.
	Permanent bool
	// First is true for the first refusal of the login in a window:
	// the one worth a warning. Later ones are counted and summed up
	// when the window is over.
	First bool
}

// Reservation is a message Reserve allowed and counted; Cancel gives the
// count back.
type Reservation struct {
	l          *Limiter
	key        string
	hour, day  int64 // the slots the message was counted in
	recipients uint32
}

// Limiter counts messages per login. Its methods are safe for concurrent
// use; a nil *Limiter allows everything.
type Limiter struct {
	cfg   Config
	users map[string]Limits // Config.Users, lowercased
	log   *slog.Logger
	now   func() time.Time

	mu  sync.Mutex
	m   map[string]*entry
	lru *list.List // front: most recently used
}

// New returns a Limiter. log receives the summary of each window in which
// a login was refused.
func New(cfg Config, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultConfig().MaxEntries
	}
	l := &Limiter{cfg: cfg, users: map[string]Limits{}, log: log, now: time.Now,
		m: map[string]*entry{}, lru: list.New()}
	for u, lim := range cfg.Users {
		l.users[strings.ToLower(u)] = lim
	}
	return l
}

func (l *Limiter) String() string {
	d := l.cfg.Default
	return fmt.Sprintf("%d messages and %d recipients an hour, %d recipients a day (0: unlimited), %d per-user overrides, %d entries",
		d.MessagesPerHour, d.RecipientsPerHour, d.RecipientsPerDay, len(l.users), l.cfg.MaxEntries)
}

// Enabled reports whether any login has a limit.
func (l *Limiter) Enabled() bool {
	if l == nil {
		return false
	}
	if !l.cfg.Default.unlimited() {
		return true
	}
	for _, lim := range l.users {
		if !lim.unlimited() {
			return true
		}
	}
	return false
}

// Limits returns the limits that apply to login.
func (l *Limiter) Limits(login string) Limits {
	if lim, ok := l.users[strings.ToLower(login)]; ok {
		return lim
	}
	return l.cfg.Default
}

// Reserve asks whether login may send a message to recipients recipients
// now. If so, the message is counted at once and the Reservation must be
// cancelled if the message is not delivered after all. If not, the
// Refusal says which limit it would pass; nothing is counted. A login
// without limits gets a nil Reservation and a nil Refusal.
func (l *Limiter) Reserve(login string, recipients int) (*Reservation, *Refusal) {
	if l == nil {
		return nil, nil
	}
	lim := l.Limits(login)
	if lim.unlimited() {
		return nil, nil
	}
	n := uint32(min(max(recipients, 0), 1<<24))
	for _, c := range []struct {
		name string
		max  int
	}{{RecipientsPerHour, lim.RecipientsPerHour}, {RecipientsPerDay, lim.RecipientsPerDay}} {
		if c.max > 0 && int(n) > c.max {
			return nil, &Refusal{Limit: c.name, Max: c.max, Permanent: true, First: true}
		}
	}

	key := strings.ToLower(login)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.touch(key)
	e.advance(now)
	l.endEpisode(e, now)

	if ref := e.check(lim, n); ref != nil {
		if e.episodeEnd.IsZero() {
			ref.First = true
			e.episodeEnd, e.episodeLimit = now.Add(window(ref.Limit)), ref.Limit
		}
		e.refusedMessages++
		e.refusedRecipients += int(n)
		return nil, ref
	}
	e.hourMessages[slot(e.hour, hourSlots)]++
	e.hourRecipients[slot(e.hour, hourSlots)] += n
	e.dayRecipients[slot(e.day, daySlots)] += n
	return &Reservation{l: l, key: key, hour: e.hour, day: e.day, recipients: n}, nil
}

// Cancel gives back the count of a message that was not delivered. It
// does nothing on a nil Reservation, and the second time.
func (r *Reservation) Cancel() {
	if r == nil || r.l == nil {
		return
	}
	l := r.l
	r.l = nil
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[r.key]
	if e == nil {
		return // evicted: its counts are gone already
	}
	e.advance(l.now())
	if r.hour > e.hour-hourSlots {
		i := slot(r.hour, hourSlots)
		e.hourMessages[i] -= min(e.hourMessages[i], 1)
		e.hourRecipients[i] -= min(e.hourRecipients[i], r.recipients)
	}
	if r.day > e.day-daySlots {
		i := slot(r.day, daySlots)
		e.dayRecipients[i] -= min(e.dayRecipients[i], r.recipients)
	}
	l.dropIfIdle(e)
}

// Sweep writes the summary of every refusal window that is over and
// forgets the logins whose counts are all zero. Run calls it every
// minute; Reserve does the same for the one login it looks at.
func (l *Limiter) Sweep() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, e := range l.m {
		e.advance(now)
		l.endEpisode(e, now)
		l.dropIfIdle(e)
	}
}

// Run calls Sweep every minute until done is closed, then writes the
// summary of every refusal window still open: the counts die with the
// process.
func (l *Limiter) Run(done <-chan struct{}) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-done:
			l.summariseAll()
			return
		case <-t.C:
			l.Sweep()
		}
	}
}

// summariseAll writes the summary of every open refusal window.
func (l *Limiter) summariseAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.m {
		l.summarise(e)
	}
}

// Size is the number of logins in the table, for tests.
func (l *Limiter) Size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// Counts returns what login's windows hold now, for tests and the
// refusal log: messages and recipients in the hour, recipients in the
// day.
func (l *Limiter) Counts(login string) (messagesHour, recipientsHour, recipientsDay int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[strings.ToLower(login)]
	if e == nil {
		return 0, 0, 0
	}
	e.advance(l.now())
	return int(sum(e.hourMessages[:])), int(sum(e.hourRecipients[:])), int(sum(e.dayRecipients[:]))
}

// window is how long a refusal window lasts for a limit: the limit's own.
func window(limit string) time.Duration {
	if limit == RecipientsPerDay {
		return 24 * time.Hour
	}
	return time.Hour
}

// endEpisode writes the summary of e's refusal window if it is over.
func (l *Limiter) endEpisode(e *entry, now time.Time) {
	if e.episodeEnd.IsZero() || now.Before(e.episodeEnd) {
		return
	}
	l.summarise(e)
}

func (l *Limiter) summarise(e *entry) {
	if e.episodeEnd.IsZero() {
		return
	}
	since := e.episodeEnd.Add(-window(e.episodeLimit))
	l.log.Info("sending limit window over", logkey.Event, logkey.EventSendLimitSummary,
		logkey.Login, e.key, "limit", e.episodeLimit, "since", since.UTC().Format(time.RFC3339),
		"refused_messages", e.refusedMessages, "refused_recipients", e.refusedRecipients)
	e.episodeEnd, e.episodeLimit = time.Time{}, ""
	e.refusedMessages, e.refusedRecipients = 0, 0
}

// touch returns key's entry, making one (and room for it) if needed, and
// marks it most recently used.
func (l *Limiter) touch(key string) *entry {
	if e := l.m[key]; e != nil {
		l.lru.MoveToFront(e.elem)
		return e
	}
	for len(l.m) >= l.cfg.MaxEntries {
		old := l.lru.Back().Value.(*entry)
		l.summarise(old)
		l.remove(old)
	}
	e := &entry{key: key}
	e.elem = l.lru.PushFront(e)
	l.m[key] = e
	return e
}

// dropIfIdle forgets an entry that holds nothing.
func (l *Limiter) dropIfIdle(e *entry) {
	if e.episodeEnd.IsZero() && sum(e.dayRecipients[:]) == 0 && sum(e.hourMessages[:]) == 0 {
		l.remove(e)
	}
}

func (l *Limiter) remove(e *entry) {
	l.lru.Remove(e.elem)
	delete(l.m, e.key)
}

// entry is one login's counts. Each ring's slot for time t is
// slot(t/step); hour and day are the slot numbers of the newest slots.
type entry struct {
	key            string
	hour, day      int64
	hourMessages   [hourSlots]uint32
	hourRecipients [hourSlots]uint32
	dayRecipients  [daySlots]uint32

	// The refusal window: open from the first refusal for one window
	// of the limit it hit (episodeEnd is zero when none is open); the
	// summary is written when it is over.
	episodeEnd        time.Time
	episodeLimit      string
	refusedMessages   int
	refusedRecipients int

	elem *list.Element
}

// advance moves the rings to now, clearing the slots that fell out of
// the windows. A clock that steps back leaves them where they are.
func (e *entry) advance(now time.Time) {
	h := now.UnixNano() / int64(hourStep)
	d := now.UnixNano() / int64(dayStep)
	if e.hour == 0 {
		e.hour, e.day = h, d
		return
	}
	if h > e.hour {
		clearSlots(e.hourMessages[:], e.hour, h)
		clearSlots(e.hourRecipients[:], e.hour, h)
		e.hour = h
	}
	if d > e.day {
		clearSlots(e.dayRecipients[:], e.day, d)
		e.day = d
	}
}

// clearSlots zeroes the slots after from, up to and including to.
func clearSlots(ring []uint32, from, to int64) {
	if to-from >= int64(len(ring)) {
		clear(ring)
		return
	}
	for n := from + 1; n <= to; n++ {
		ring[slot(n, len(ring))] = 0
	}
}

func slot(n int64, size int) int { return int(n % int64(size)) }

func sum(ring []uint32) uint64 {
	var s uint64
	for _, v := range ring {
		s += uint64(v)
	}
	return s
}

// check returns the first limit a message to n recipients would pass.
func (e *entry) check(lim Limits, n uint32) *Refusal {
	for _, c := range []struct {
		name  string
		max   int
		count uint64
		add   uint64
	}{
		{MessagesPerHour, lim.MessagesPerHour, sum(e.hourMessages[:]), 1},
		{RecipientsPerHour, lim.RecipientsPerHour, sum(e.hourRecipients[:]), uint64(n)},
		{RecipientsPerDay, lim.RecipientsPerDay, sum(e.dayRecipients[:]), uint64(n)},
	} {
		if c.max > 0 && c.count+c.add > uint64(c.max) {
			return &Refusal{Limit: c.name, Max: c.max, Count: int(c.count)}
		}
	}
	return nil
}
