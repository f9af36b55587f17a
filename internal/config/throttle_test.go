package config

import "testing"

func TestAbuseErrors(t *testing.T) {
	checkLoadErrors(t, map[string]string{
		"[throttle]\nwindow = \"0s\"\n":                 "FILE:2: throttle.window:",
		"[throttle]\nipv4_prefix = 33\n":                "FILE:2: throttle.ipv4_prefix: 33 is out of range",
		"[throttle]\npenalties = [\"1h\"]\n":            "FILE:2: throttle.penalties: 1h0m0s is longer than 5m",
		"[throttle]\npenalties = [\"soon\"]\n":          "FILE:2: throttle.penalties",
		"[throttle]\nmax_failures_per_client = -1\n":    "FILE:2: throttle.max_failures_per_client",
		"[authn]\nmax_concurrent = 0\n":                 "FILE:2: authn.max_concurrent: 0 is out of range",
		"[authn.cache]\nenabled = true\nttl = \"2h\"\n": "FILE:3: authn.cache.ttl: 2h0m0s is out of range",
		"[delivery]\nqueue_timeout = \"1h\"\n":          "FILE:2: delivery.queue_timeout:",
		"[delivery]\nmax_concurrent = 1000000\n":        "FILE:2: delivery.max_concurrent",
	})
}
