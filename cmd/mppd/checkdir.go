package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mppd/mppd/authn/ldap"
	"github.com/mppd/mppd/internal/config"
)

// checkDirectory is the part of --check-config that needs the network:
// with the LDAP backend it connects to the directory as a login would
// (TLS, the service account's bind) and reads search_base once, so that a
// wrong URI, CA file, service password or base shows now rather than at
// the first login. --offline skips it. Other backends have nothing to
// check beyond what building them did.
func checkDirectory(cfg *config.Config, log *slog.Logger) (string, error) {
	if cfg.Authn.Backend != "ldap" {
		return "", nil
	}
	lc := cfg.Authn.LDAP
	b, err := ldap.New(lc, log)
	if err != nil {
		return "", err
	}
	defer b.Close()
	// Every URI may be tried, each within the dial timeout, then the
	// search within the request timeout.
	wait := time.Duration(len(lc.URIs))*lc.DialTimeout.D() + lc.RequestTimeout.D()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.Check(ctx); err != nil {
		return "", fmt.Errorf("authn.ldap: the directory check failed (--offline skips it): %w", err)
	}
	what := "the directory answered"
	if lc.ServiceDN != "" {
		what += ", the service account's bind worked"
	}
	if lc.SearchBase != "" {
		what += fmt.Sprintf(", %s is readable", lc.SearchBase)
	}
	return what, nil
}
