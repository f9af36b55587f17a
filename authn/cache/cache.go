// Package cache remembers authentication results for a short time, in
// front of a directory that should not be asked the same question again
// and again (LDAP, Active Directory).
//
// Results are keyed by HMAC-SHA256, under a key drawn at random when the
// process starts, of the user name, the password and, for most results,
// the client's address: the cache never holds a password, and its keys are
// useless outside the process. The address is in the key because a
// backend's answer may depend on it (pam_access, PAM_RHOST rules): a
// success from an address the policy admits must not be served to one it
// refuses.
//
// A wrong password is wrong from every address, so a bad-password result
// ("bad-password", or "invalid-credentials" from a direct bind) is keyed by
// the user name and password alone, and kept for FailureTTL (30 minutes by
// default, as long as Active Directory's default "reset account lockout
// counter after"), from its last use: a mail client retrying a stale saved
// password, from one address or from many, spaced or in a burst, reaches
// the directory once, and cannot lock the account. Identical requests in
// flight at the same time share one backend call (no burst of parallel
// repeats gets through before the first answer is stored).
//
// A refusal for the account's state (locked, disabled, expired, must
// change the password) is kept for a few seconds only, so that a helpdesk
// unlock takes effect at once. A success is never served past its TTL. A
// backend that cannot answer (authn.UnavailableError) is never cached, and
// a cached failure stays a failure: an outage can only make logins fail,
// never succeed.
package cache

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
	"github.com/mppd/mppd/internal/logkey"
)

// StateTTL is the longest an account-state refusal is used.
const StateTTL = 5 * time.Second

// badPassword are the reasons that mean "this password is wrong for this
// user", whatever the client's address: kept for FailureTTL.
var badPassword = map[string]bool{"bad-password": true, "invalid-credentials": true}

// accountState are the reasons that depend on the account's state, which an
// administrator may change at any moment: kept for StateTTL at most.
var accountState = map[string]bool{
	"locked": true, "disabled": true, "account-expired": true, "password-expired": true,
	"password-change-required": true, "not-permitted-now": true, "account-refused": true,
}

// Cache is an authn.Authenticator that answers from its memory when it can
// and asks next otherwise.
type Cache struct {
	next authn.Authenticator
	cfg  config.Cache
	log  *slog.Logger
	key  [32]byte
	now  func() time.Time

	mu       sync.Mutex
	m        map[[32]byte]*list.Element
	lru      *list.List // of *entry, front: most recently used
	hits     uint64
	inflight map[[32]byte]*call
}

// call is a backend request in flight; identical requests wait for it.
type call struct {
	done chan struct{}
	id   authn.Identity
	err  error
}

var _ authn.Authenticator = (*Cache)(nil)

type entry struct {
	key     [32]byte
	id      authn.Identity
	err     error         // a *authn.BadCredentialsError, or nil for a success
	expires time.Time     // when it stops being used
	renew   time.Duration // when positive, each use moves expires to now+renew
}

// New returns a cache in front of next.
func New(next authn.Authenticator, cfg config.Cache, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{next: next, cfg: cfg, log: log, now: time.Now, m: map[[32]byte]*list.Element{}, lru: list.New(),
		inflight: map[[32]byte]*call{}}
	rand.Read(c.key[:])
	return c
}

func (c *Cache) String() string {
	return fmt.Sprintf("%v, cached for %s, bad passwords for %s (at most %d results)", c.next, c.cfg.TTL, c.cfg.FailureTTL, c.cfg.MaxEntries)
}

// keyOf is the key of a request's result, with the client's address.
func (c *Cache) keyOf(req authn.Request) [32]byte {
	return c.hash("c", req.Client, req)
}

// failureKeyOf is the key of a bad-password result: the user name and the
// password, from any address.
func (c *Cache) failureKeyOf(req authn.Request) [32]byte {
	return c.hash("f", "", req)
}

func (c *Cache) hash(kind, client string, req authn.Request) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	// Lengths first, so ("ab","c") and ("a","bc") differ.
	fmt.Fprintf(m, "%s%d:%s%d:%s", kind, len(client), client, len(req.User), req.User)
	m.Write([]byte(req.Password))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

// Authenticate answers from the cache a request it has seen within the
// TTL, waits for an identical request already in flight, and asks the
// backend otherwise.
func (c *Cache) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	k, fk := c.keyOf(req), c.failureKeyOf(req)
	if id, err, ok := c.lookup(fk); ok {
		c.logHit(req, err)
		return id, err
	}
	if id, err, ok := c.lookup(k); ok {
		c.logHit(req, err)
		return id, err
	}

	c.mu.Lock()
	if cl := c.inflight[k]; cl != nil {
		c.mu.Unlock()
		select {
		case <-cl.done:
			c.logHit(req, cl.err)
			return copyIdentity(cl.id), cl.err
		case <-ctx.Done():
			return authn.Identity{}, authn.Unavailable("timeout", ctx.Err())
		}
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[k] = cl
	c.mu.Unlock()

	id, err := c.next.Authenticate(ctx, req)
	var bad *authn.BadCredentialsError
	switch {
	case err == nil:
		c.store(k, copyIdentity(id), nil, c.cfg.TTL.D(), 0)
	case errors.As(err, &bad) && badPassword[bad.Reason]:
		c.store(fk, authn.Identity{}, err, c.cfg.FailureTTL.D(), c.cfg.FailureTTL.D())
	case errors.As(err, &bad) && accountState[bad.Reason]:
		c.store(k, authn.Identity{}, err, min(StateTTL, c.cfg.TTL.D()), 0)
	case errors.As(err, &bad):
		c.store(k, authn.Identity{}, err, c.cfg.TTL.D(), 0)
	}
	// Anything else (Unavailable, or an error of no known kind) is not
	// remembered: the next attempt asks the backend again. Requests that
	// waited for this one get its answer all the same.
	cl.id, cl.err = copyIdentity(id), err
	c.mu.Lock()
	delete(c.inflight, k)
	c.mu.Unlock()
	close(cl.done)
	return id, err
}

// logHit logs an answer that did not come from the backend, at info, so
// that a refusal in the log can be told from one the directory gave.
func (c *Cache) logHit(req authn.Request, err error) {
	if err == nil {
		c.log.Info("authentication answered from the cache", logkey.Event, logkey.EventAuthnCacheHit, logkey.Session, req.Session,
			"cached", true, logkey.User, req.User, logkey.Client, req.Client, "ok", true)
		return
	}
	c.log.Info("authentication answered from the cache", logkey.Event, logkey.EventAuthnCacheHit, logkey.Session, req.Session,
		"cached", true, logkey.User, req.User, logkey.Client, req.Client, "ok", false, logkey.Reason, authn.Reason(err))
}

func (c *Cache) lookup(k [32]byte) (authn.Identity, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.m[k]
	if el == nil {
		return authn.Identity{}, nil, false
	}
	e := el.Value.(*entry)
	now := c.now()
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.m, k)
		return authn.Identity{}, nil, false
	}
	if e.renew > 0 {
		e.expires = now.Add(e.renew)
	}
	c.lru.MoveToFront(el)
	c.hits++
	return copyIdentity(e.id), e.err, true
}

func (c *Cache) store(k [32]byte, id authn.Identity, err error, ttl, renew time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.m[k]; el != nil {
		c.lru.Remove(el)
		delete(c.m, k)
	}
	for len(c.m) >= c.cfg.MaxEntries && c.lru.Len() > 0 {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.m, old.Value.(*entry).key)
	}
	c.m[k] = c.lru.PushFront(&entry{key: k, id: id, err: err, expires: c.now().Add(ttl), renew: renew})
}

// Len is the number of results held; Hits the number of answers given
// from the cache.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

func (c *Cache) Hits() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

// copyIdentity copies the address list, so that no caller can change a
// cached identity.
func copyIdentity(id authn.Identity) authn.Identity {
	id.Addresses = append([]string(nil), id.Addresses...)
	return id
}
