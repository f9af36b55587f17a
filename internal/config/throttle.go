package config

import (
	"time"

	"github.com/mppd/mppd/internal/throttle"
)

// Throttle is the [throttle] section: the penalty and the block for
// clients that keep failing to log in (internal/throttle).
type Throttle struct {
	// Penalties is the extra delay before the n-th failed login's 530
	// in a window; the last step repeats.
	Penalties []Duration `toml:"penalties"`
	// Window is how long failures count, and how long a block lasts.
	Window Duration `toml:"window"`
	// MaxFailuresPerClient and MaxFailuresPerNetwork are the failures
	// in a window that block an address or a network; 0 never blocks.
	MaxFailuresPerClient  int `toml:"max_failures_per_client"`
	MaxFailuresPerNetwork int `toml:"max_failures_per_network"`
	// IPv4Prefix and IPv6Prefix size the networks failures are counted
	// by.
	IPv4Prefix int `toml:"ipv4_prefix"`
	IPv6Prefix int `toml:"ipv6_prefix"`
	// MaxEntries bounds each of the throttle's three tables.
	MaxEntries int `toml:"max_entries"`
}

func defaultThrottle() Throttle {
	d := throttle.DefaultConfig()
	t := Throttle{
		Window:                Duration(d.Window),
		MaxFailuresPerClient:  d.MaxPerClient,
		MaxFailuresPerNetwork: d.MaxPerNetwork,
		IPv4Prefix:            d.IPv4Prefix,
		IPv6Prefix:            d.IPv6Prefix,
		MaxEntries:            d.MaxEntries,
	}
	for _, p := range d.Penalties {
		t.Penalties = append(t.Penalties, Duration(p))
	}
	return t
}

// Default caps on work done at once for clients.
const (
	defaultAuthnMaxConcurrent    = 64
	defaultAuthnQueueTimeout     = 5 * time.Second
	defaultDeliveryMaxConcurrent = 32
	defaultDeliveryQueueTimeout  = 30 * time.Second
)

// validateAbuse checks [throttle], the concurrency caps and [authn.cache].
func (c *Config) validateAbuse(v *validator) {
	t := &c.Throttle
	if len(t.Penalties) > 16 {
		v.fail("throttle.penalties", "%d steps, at most 16", len(t.Penalties))
	}
	for _, p := range t.Penalties {
		if p.D() > 5*time.Minute {
			v.fail("throttle.penalties", "%s is longer than 5m", p)
		}
	}
	v.durRange("throttle.window", t.Window, time.Second, 24*time.Hour)
	v.intRange("throttle.max_failures_per_client", int64(t.MaxFailuresPerClient), 0, 1_000_000, "0 never blocks")
	v.intRange("throttle.max_failures_per_network", int64(t.MaxFailuresPerNetwork), 0, 1_000_000, "0 never blocks")
	v.intRange("throttle.ipv4_prefix", int64(t.IPv4Prefix), 8, 32, "")
	v.intRange("throttle.ipv6_prefix", int64(t.IPv6Prefix), 16, 128, "")
	v.intRange("throttle.max_entries", int64(t.MaxEntries), 100, 10_000_000, "")

	v.intRange("authn.max_concurrent", int64(c.Authn.MaxConcurrent), 1, 100_000, "")
	v.durRange("authn.queue_timeout", c.Authn.QueueTimeout, 0, 10*time.Minute)
	if err := c.Authn.Cache.Validate(); err != nil {
		v.backendFail("authn.cache", err)
	}
	v.intRange("delivery.max_concurrent", int64(c.Delivery.MaxConcurrent), 1, 100_000, "")
	v.durRange("delivery.queue_timeout", c.Delivery.QueueTimeout, 0, 10*time.Minute)
}
