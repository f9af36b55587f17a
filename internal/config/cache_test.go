package config

import (
	"testing"
	"time"
)

func TestCacheValidate(t *testing.T) {
	if err := DefaultCache().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Cache{{TTL: 0, MaxEntries: 1}, {TTL: Duration(2 * time.Hour), MaxEntries: 1}, {TTL: Duration(time.Minute)},
		{TTL: Duration(time.Minute), MaxEntries: 1},
		{TTL: Duration(time.Minute), MaxEntries: 1, FailureTTL: Duration(25 * time.Hour)}} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
