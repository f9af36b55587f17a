package tomltype

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "5m": 5 * time.Minute, "1h30m": 90 * time.Minute, "0s": 0} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); err != nil || d.D() != want {
			t.Errorf("%q: %v, %v", in, d, err)
		}
		if b, _ := d.MarshalText(); string(b) != want.String() {
			t.Errorf("%q written back as %q", in, b)
		}
	}
	for _, bad := range []string{"30", "-1s", "soon", ""} {
		var d Duration
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted as %v", bad, d)
		}
	}
}
