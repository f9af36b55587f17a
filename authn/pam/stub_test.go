//go:build !pam

package pam

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mppd/mppd/authn"
	"github.com/mppd/mppd/internal/config"
)

func TestStubSaysHowToBuild(t *testing.T) {
	cfg := config.DefaultPAM()
	cfg.MailDomain = "example.org"
	b, err := New(cfg, nil)
	if b != nil || !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("New() = %v, %v; want nil, ErrNotBuilt", b, err)
	}
	for _, want := range []string{"without PAM support", "-tags pam", "libpam0g-dev"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// A config error is still a config error, not "not built".
	if _, err := New(config.DefaultPAM(), nil); err == nil || errors.Is(err, ErrNotBuilt) {
		t.Errorf("New(invalid) = %v, want the config error", err)
	}
	_, err = (*Backend)(nil).Authenticate(context.Background(), authn.Request{User: "a", Password: "b"})
	if authn.IsBadCredentials(err) || authn.Reason(err) != "pam-not-built" {
		t.Errorf("stub Authenticate = %v", err)
	}
}
