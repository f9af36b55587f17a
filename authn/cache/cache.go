// Package cache remembers authentication results for a short time, in
// front of a directory that should not be asked the same question again
// and again (LDAP, Active Directory).
//
// Results are keyed by HMAC-SHA256, under a key drawn at random when the
// process starts, of the user name, the password and the client's address:
// the cache never holds a password, and its keys are useless outside the
// process. The address is in the key because a backend's answer may depend
// on it (pam_access, PAM_RHOST rules): a success from an address the policy
// admits must not be served to one it refuses. A client repeating itself
// keeps its address, so it is still answered from the cache. Failures are
// cached too, so that a misconfigured client repeating a wrong password is
// answered from the cache and cannot push the directory into locking the
// account (AD lockout storms). A success is never served past its TTL. A
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

// Cache is an authn.Authenticator that answers from its memory when it can
// and asks next otherwise.
type Cache struct {
	next authn.Authenticator
	cfg  config.Cache
	log  *slog.Logger
	key  [32]byte
	now  func() time.Time

	mu   sync.Mutex
	m    map[[32]byte]*list.Element
	lru  *list.List // of *entry, front: most recently used
	hits uint64
}

var _ authn.Authenticator = (*Cache)(nil)

type entry struct {
	key     [32]byte
	id      authn.Identity
	err     error // a *authn.BadCredentialsError, or nil for a success
	expires time.Time
}

// New returns a cache in front of next.
func New(next authn.Authenticator, cfg config.Cache, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{next: next, cfg: cfg, log: log, now: time.Now, m: map[[32]byte]*list.Element{}, lru: list.New()}
	rand.Read(c.key[:])
	return c
}

func (c *Cache) String() string {
	return fmt.Sprintf("%v, cached for %s (at most %d results)", c.next, c.cfg.TTL, c.cfg.MaxEntries)
}

func (c *Cache) keyOf(req authn.Request) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	// Lengths first, so ("ab","c") and ("a","bc") differ.
	fmt.Fprintf(m, "%d:%s%d:%s", len(req.Client), req.Client, len(req.User), req.User)
	m.Write([]byte(req.Password))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

// Authenticate answers from the cache a request it has seen within the
// TTL, and asks the backend otherwise.
func (c *Cache) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	k := c.keyOf(req)
	if id, err, ok := c.lookup(k); ok {
		c.log.Debug("authentication answered from the cache", logkey.Event, logkey.EventAuthnCacheHit, logkey.Session, req.Session, logkey.User, req.User, "ok", err == nil)
		return id, err
	}
	id, err := c.next.Authenticate(ctx, req)
	var bad *authn.BadCredentialsError
	switch {
	case err == nil:
		c.store(k, copyIdentity(id), nil)
	case errors.As(err, &bad):
		c.store(k, authn.Identity{}, err)
	}
	// Anything else (Unavailable, or an error of no known kind) is not
	// remembered: the next attempt asks the backend again.
	return id, err
}

func (c *Cache) lookup(k [32]byte) (authn.Identity, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.m[k]
	if el == nil {
		return authn.Identity{}, nil, false
	}
	e := el.Value.(*entry)
	if !c.now().Before(e.expires) {
		c.lru.Remove(el)
		delete(c.m, k)
		return authn.Identity{}, nil, false
	}
	c.lru.MoveToFront(el)
	c.hits++
	return copyIdentity(e.id), e.err, true
}

func (c *Cache) store(k [32]byte, id authn.Identity, err error) {
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
	c.m[k] = c.lru.PushFront(&entry{key: k, id: id, err: err, expires: c.now().Add(c.cfg.TTL.D())})
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
