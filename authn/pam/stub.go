//go:build !pam

package pam

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
)

// ErrNotBuilt is what New returns in a build without the "pam" tag.
var ErrNotBuilt = errors.New("mppd was built without PAM support; rebuild with -tags pam (needs libpam0g-dev)")

// Backend is the PAM authenticator; in this build it cannot be created.
type Backend struct{}

var _ authn.Authenticator = (*Backend)(nil)

// New checks cfg, then fails with ErrNotBuilt: this binary has no PAM code.
// Checking first means a config error is still reported as such.
func New(cfg config.PAM, log *slog.Logger) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return nil, ErrNotBuilt
}

// Authenticate always answers "unavailable"; it is never reached, since
// New does not return a Backend.
func (*Backend) Authenticate(context.Context, authn.Request) (authn.Identity, error) {
	return authn.Identity{}, authn.Unavailable("pam-not-built", ErrNotBuilt)
}

// String describes the backend for the start-up log.
func (*Backend) String() string { return "pam (not built in)" }
