package config

import (
	"fmt"
	"time"
)

// Cache is the [authn.cache] table of mppd.conf(5), read by authn/cache.
type Cache struct {
	// Enabled turns the cache on. Default: false.
	Enabled bool `toml:"enabled"`
	// TTL is how long a success, or a refusal other than a bad password
	// or the account's state, is used.
	TTL Duration `toml:"ttl"`
	// FailureTTL is how long a bad-password result is used, counted from
	// the last time it answered.
	FailureTTL Duration `toml:"failure_ttl"`
	// MaxEntries bounds the cache; the least recently used result makes
	// room for a new one.
	MaxEntries int `toml:"max_entries"`
}

// DefaultCache returns the defaults: off, 60 s, 30 min for bad passwords,
// 10,000 entries.
func DefaultCache() Cache {
	return Cache{TTL: Duration(time.Minute), FailureTTL: Duration(30 * time.Minute), MaxEntries: 10000}
}

// Validate checks the section.
func (c Cache) Validate() error {
	if c.TTL.D() < time.Second || c.TTL.D() > time.Hour {
		return fmt.Errorf("ttl: %s is out of range 1s..1h", c.TTL)
	}
	if c.FailureTTL.D() < time.Second || c.FailureTTL.D() > 24*time.Hour {
		return fmt.Errorf("failure_ttl: %s is out of range 1s..24h", c.FailureTTL)
	}
	if c.MaxEntries < 1 || c.MaxEntries > 10_000_000 {
		return fmt.Errorf("max_entries: %d is out of range 1..10000000", c.MaxEntries)
	}
	return nil
}
