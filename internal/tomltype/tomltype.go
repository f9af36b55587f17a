// Package tomltype holds value types for the configuration file that TOML
// has no type for. Every section type of internal/config uses them, so
// every duration in the file is written and checked the same way.
package tomltype

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in the file as a Go duration string
// ("30s", "5m", "1h30m"). Negative durations are refused. (A bare number
// never gets here: package config refuses it first, with its line, since
// "30" could mean seconds or minutes.)
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as a duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (write it like \"30s\", \"5m\" or \"1h\")", b)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", b)
	}
	*d = Duration(v)
	return nil
}
