// Package authntest is a fake authenticator for unit tests of code that
// calls an authn.Authenticator (the engine, mpp's tests): users and
// passwords in a map, an error or a delay on demand, and a record of
// every request. The backends themselves are tested against the real
// PAM stack, slapd and password files.
package authntest

import (
	"context"
	"sync"
	"time"

	"github.com/mppd/mppd/authn"
)

// Fake knows Users by password. Set its fields before the first call, or
// hold no other reference while calls run; Set* are safe at any time.
type Fake struct {
	mu sync.Mutex
	// Users maps a login to its password.
	Users map[string]string
	// Err, when set, is returned for every call.
	Err error
	// Delay is how long the backend takes for a user.
	Delay map[string]time.Duration
	// AddressesOf gives a user's addresses; by default user@example.test.
	AddressesOf func(user string) []string

	requests []authn.Request
}

// New is a Fake that knows users (login to password).
func New(users map[string]string) *Fake {
	return &Fake{Users: users, Delay: map[string]time.Duration{}}
}

// Authenticate records req, waits the user's delay, and accepts the
// user's password; an unknown user or another password is rejected.
func (f *Fake) Authenticate(ctx context.Context, req authn.Request) (authn.Identity, error) {
	f.mu.Lock()
	d := f.Delay[req.User]
	f.mu.Unlock()
	time.Sleep(d)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	if f.Err != nil {
		return authn.Identity{}, f.Err
	}
	pw, ok := f.Users[req.User]
	if !ok {
		return authn.Identity{}, authn.Rejected("unknown-user", nil)
	}
	if pw != req.Password {
		return authn.Identity{}, authn.Rejected("bad-password", nil)
	}
	addrs := []string{req.User + "@example.test"}
	if f.AddressesOf != nil {
		addrs = f.AddressesOf(req.User)
	}
	return authn.Identity{Login: req.User, Addresses: addrs, Account: req.User}, nil
}

// SetErr sets the error every later call returns (nil: none).
func (f *Fake) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Err = err
}

// SetDelay sets how long later calls for user take.
func (f *Fake) SetDelay(user string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Delay == nil {
		f.Delay = map[string]time.Duration{}
	}
	f.Delay[user] = d
}

// SetUser adds or changes a user.
func (f *Fake) SetUser(user, password string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Users[user] = password
}

// Count is how many calls the fake has had.
func (f *Fake) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// Requests are the requests so far, in order.
func (f *Fake) Requests() []authn.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]authn.Request(nil), f.requests...)
}
