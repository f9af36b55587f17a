// Package throttle slows down and then shuts out clients that keep failing
// to log in, so that mppd is not a password-guessing oracle for the
// directory behind it.
//
// Failed logins are counted per client address, per network (an IPv4 /24
// or IPv6 /64 by default: one host often holds a whole IPv6 /64) and per
// user name, each in a window that starts at the source's first failure.
// Every failure earns an extra delay before its 530 reply that grows with
// the count (2 → 4 → 8 → 15 s by default, Dovecot's auth penalty); the
// largest of the three counts sets it. An address or a network that
// reaches its limit in the window is blocked until one window after that:
// new connections get 451 and are closed, and a login already in progress
// is not sent to the backend.
//
// There is no per-user lockout, since anyone could then lock a colleague
// out: a user's failures only add delay. Trusted networks are exempt from
// everything. A failure with the same user and password as one of the
// last few from that address (a misconfigured client retrying) is not
// counted again: it gets the current delay but does not make it grow.
//
// Memory is bounded: each of the three tables holds at most MaxEntries
// entries, the least recently used one making room for a new one, and an
// entry is dropped once its window (or its block) is over.
package throttle

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mppd/mppd/internal/logkey"
)

// Config is the throttle's configuration.
type Config struct {
	// Penalties is the extra delay before the 530 reply of the n-th
	// failure in a window (the last one for every later failure). Empty
	// means no extra delay.
	Penalties []time.Duration
	// Window is how long failures are remembered, from a source's first
	// one; also how long a block lasts.
	Window time.Duration
	// MaxPerClient and MaxPerNetwork are the failures in a window after
	// which an address, or a network, is blocked. 0 never blocks.
	MaxPerClient  int
	MaxPerNetwork int
	// IPv4Prefix and IPv6Prefix are the network sizes failures are
	// grouped by, in bits.
	IPv4Prefix int
	IPv6Prefix int
	// MaxEntries bounds each table (addresses, networks, users).
	MaxEntries int
	// Trusted reports the addresses the throttle leaves alone; nil
	// trusts none.
	Trusted func(netip.Addr) bool
}

// DefaultConfig returns the defaults documented in mppd.conf(5).
func DefaultConfig() Config {
	return Config{
		Penalties:     []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second},
		Window:        15 * time.Minute,
		MaxPerClient:  10,
		MaxPerNetwork: 30,
		IPv4Prefix:    24,
		IPv6Prefix:    64,
		MaxEntries:    10000,
	}
}

// EntryBytes is about how much memory one table entry takes (the entry,
// its list element and map slot, the key); with MaxEntries it bounds the
// throttle's memory, which mppd.conf(5) states.
const EntryBytes = 320

// recentKeys is how many credential fingerprints an address entry keeps
// to recognise a client retrying the same user and password.
const recentKeys = 4

// Throttle tracks failed logins. Its methods are safe for concurrent use.
type Throttle struct {
	cfg Config
	log *slog.Logger
	key [32]byte // HMAC key for credential fingerprints, per process
	now func() time.Time

	mu                       sync.Mutex
	clients, networks, users *table
	blockedTotal             uint64
}

// New returns a Throttle. log receives one line when a source is blocked.
func New(cfg Config, log *slog.Logger) *Throttle {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultConfig().MaxEntries
	}
	t := &Throttle{cfg: cfg, log: log, now: time.Now}
	rand.Read(t.key[:])
	t.clients = newTable(cfg.MaxEntries)
	t.networks = newTable(cfg.MaxEntries)
	t.users = newTable(cfg.MaxEntries)
	return t
}

func (t *Throttle) String() string {
	return fmt.Sprintf("penalties %v, window %v, block after %d failures per address and %d per /%d or /%d, %d entries per table",
		t.cfg.Penalties, t.cfg.Window, t.cfg.MaxPerClient, t.cfg.MaxPerNetwork, t.cfg.IPv4Prefix, t.cfg.IPv6Prefix, t.cfg.MaxEntries)
}

// source parses a client address as the session knows it; ok is false
// for none (a net.Pipe) or a trusted one, which the throttle ignores.
func (t *Throttle) source(client string) (addr, network netip.Addr, ok bool) {
	a, err := netip.ParseAddr(client)
	if err != nil {
		return netip.Addr{}, netip.Addr{}, false
	}
	a = a.Unmap().WithZone("")
	if t.cfg.Trusted != nil && t.cfg.Trusted(a) {
		return netip.Addr{}, netip.Addr{}, false
	}
	bits := t.cfg.IPv6Prefix
	if a.Is4() {
		bits = t.cfg.IPv4Prefix
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return a, a, true
	}
	return a, p.Addr(), true
}

// netKey tells a network's key from an address's even when the prefix
// is the whole address.
func netKey(n netip.Addr) string { return "net:" + n.String() }

// Admit reports whether a new connection from addr may start a session:
// false while the address or its network is blocked. The accept loop
// answers those 451 and closes them.
func (t *Throttle) Admit(addr netip.Addr) bool {
	a, n, ok := t.source(addr.String())
	if !ok {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	return !t.clients.blocked(a.String(), now) && !t.networks.blocked(netKey(n), now)
}

// Begin is called before a password is checked. It returns false when the
// client's address or network is blocked, or when the logins already in
// progress from it could use up what is left of its failures (so that
// many parallel connections cannot guess more than the limit): the
// password must then not be checked. Every Begin that returns true must be
// followed by exactly one Failed or Done.
func (t *Throttle) Begin(client string) bool {
	a, n, ok := t.source(client)
	if !ok {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	ce := t.clients.get(a.String(), now, t.cfg.Window)
	ne := t.networks.get(netKey(n), now, t.cfg.Window)
	if full(ce, t.cfg.MaxPerClient, now) || full(ne, t.cfg.MaxPerNetwork, now) {
		return false
	}
	ce = t.clients.touch(a.String(), now)
	ne = t.networks.touch(netKey(n), now)
	ce.pending++
	ne.pending++
	return true
}

// full reports whether e's source may not try another password.
func full(e *entry, max int, now time.Time) bool {
	if e == nil || max <= 0 {
		return false
	}
	return now.Before(e.blockedUntil) || e.failures+e.pending >= max
}

// Done ends a login Begin allowed that did not fail (it succeeded, or the
// backend was unavailable, which says nothing about the password).
func (t *Throttle) Done(client string) {
	a, n, ok := t.source(client)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.release(a.String(), netKey(n), now)
}

func (t *Throttle) release(ckey, nkey string, now time.Time) {
	for _, x := range []struct {
		tab *table
		key string
	}{{t.clients, ckey}, {t.networks, nkey}} {
		if e := x.tab.get(x.key, now, t.cfg.Window); e != nil && e.pending > 0 {
			e.pending--
			x.tab.dropIfIdle(e)
		}
	}
}

// Failed records a failed login that Begin allowed and returns the extra
// delay to wait before the 530 reply. Only a fingerprint of user and
// password (HMAC-SHA256 with a per-process random key) is kept, to spot a
// client repeating itself; never the password.
func (t *Throttle) Failed(client, user, password string) time.Duration {
	a, n, ok := t.source(client)
	if !ok {
		return 0
	}
	fp := t.fingerprint(user, password)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	ckey, nkey := a.String(), netKey(n)
	t.release(ckey, nkey, now)
	// Directories often ignore case (Active Directory does), so "Alice"
	// and "alice" are one user here: changing case does not escape the
	// user's penalty.
	ukey := "user:" + strings.ToLower(user)
	t.users.get(ukey, now, t.cfg.Window)
	ce := t.clients.touch(ckey, now)
	ne := t.networks.touch(nkey, now)
	ue := t.users.touch(ukey, now)
	if !ce.seen(fp) {
		ce.remember(fp)
		ce.failures++
		ne.failures++
		ue.failures++
		t.block(ce, t.cfg.MaxPerClient, now, "address", a.String())
		t.block(ne, t.cfg.MaxPerNetwork, now, "network", n.String())
	}
	level := max(ce.failures, ne.failures, ue.failures)
	if len(t.cfg.Penalties) == 0 || level == 0 {
		return 0
	}
	return t.cfg.Penalties[min(level, len(t.cfg.Penalties))-1]
}

// block starts a block on e when it has reached max failures.
func (t *Throttle) block(e *entry, max int, now time.Time, kind, name string) {
	if max <= 0 || e.failures < max || now.Before(e.blockedUntil) {
		return
	}
	e.blockedUntil = now.Add(t.cfg.Window)
	t.blockedTotal++
	t.log.Warn("too many failed logins, refusing new connections", logkey.Event, logkey.EventThrottleBlock,
		"source", kind, logkey.Client, name, "failures", e.failures, "until", e.blockedUntil.UTC().Format(time.RFC3339))
}

// Blocks is how many times an address or a network has been blocked since
// New, for metrics.
func (t *Throttle) Blocks() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.blockedTotal
}

// Size is the number of entries in the three tables, for tests and
// metrics.
func (t *Throttle) Size() (clients, networks, users int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.clients.len(), t.networks.len(), t.users.len()
}

type fingerprint [16]byte

func (t *Throttle) fingerprint(user, password string) fingerprint {
	m := hmac.New(sha256.New, t.key[:])
	// The user's length first, so ("ab","c") and ("a","bc") differ.
	fmt.Fprintf(m, "%d:%s", len(user), user)
	m.Write([]byte(password))
	var fp fingerprint
	copy(fp[:], m.Sum(nil))
	return fp
}

// entry is one source's (or user's) record.
type entry struct {
	key          string
	start        time.Time // first failure of the window, or the first Begin
	failures     int
	pending      int // logins under way (Begin without Failed or Done)
	blockedUntil time.Time
	recent       [recentKeys]fingerprint
	nrecent      int
	elem         *list.Element
}

func (e *entry) seen(fp fingerprint) bool {
	for i := 0; i < min(e.nrecent, recentKeys); i++ {
		if e.recent[i] == fp {
			return true
		}
	}
	return false
}

func (e *entry) remember(fp fingerprint) {
	e.recent[e.nrecent%recentKeys] = fp
	e.nrecent++
}

// expired reports whether e's window and block are over and nothing is
// under way: it can be forgotten.
func (e *entry) expired(now time.Time, window time.Duration) bool {
	return e.pending == 0 && !now.Before(e.start.Add(window)) && !now.Before(e.blockedUntil)
}

// table is a map with a least-recently-used list, bounded to max entries.
type table struct {
	max int
	m   map[string]*entry
	lru *list.List // front: most recently used
}

func newTable(max int) *table {
	return &table{max: max, m: map[string]*entry{}, lru: list.New()}
}

func (tb *table) len() int { return len(tb.m) }

// get returns key's entry, nil if there is none or it has expired (it is
// then dropped).
func (tb *table) get(key string, now time.Time, window time.Duration) *entry {
	e := tb.m[key]
	if e == nil {
		return nil
	}
	if e.expired(now, window) {
		tb.remove(e)
		return nil
	}
	if !now.Before(e.start.Add(window)) && !now.Before(e.blockedUntil) {
		// The window is over but a login is under way: start afresh,
		// keeping the count of logins under way.
		*e = entry{key: e.key, start: now, pending: e.pending, elem: e.elem}
	}
	return e
}

// touch returns key's entry, making one (and room for it) if needed, and
// marks it most recently used. Callers call get first, which drops an
// expired entry.
func (tb *table) touch(key string, now time.Time) *entry {
	if e := tb.m[key]; e != nil {
		tb.lru.MoveToFront(e.elem)
		return e
	}
	for len(tb.m) >= tb.max {
		tb.remove(tb.lru.Back().Value.(*entry))
	}
	e := &entry{key: key, start: now}
	e.elem = tb.lru.PushFront(e)
	tb.m[key] = e
	return e
}

// dropIfIdle forgets an entry that holds nothing: no failure, no login
// under way, no block.
func (tb *table) dropIfIdle(e *entry) {
	if e.pending == 0 && e.failures == 0 && e.blockedUntil.IsZero() {
		tb.remove(e)
	}
}

func (tb *table) remove(e *entry) {
	tb.lru.Remove(e.elem)
	delete(tb.m, e.key)
}

// blocked reports whether key is blocked now.
func (tb *table) blocked(key string, now time.Time) bool {
	e := tb.m[key]
	return e != nil && now.Before(e.blockedUntil)
}
