package e2e

import (
	"strings"
	"sync"
	"testing"

	"github.com/mppd/mppd/internal/testharness"
)

// benchMessage is a small message (about 1 KiB) from alice.
var benchMessage = "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: bench\r\n\r\n" +
	strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 16)

// noSendLimits turns the sending limits off: a benchmark posts far more as
// one user than they allow.
const noSendLimits = "[limits]\nmessages_per_hour = 0\nrecipients_per_hour = 0\nrecipients_per_day = 0\n"

// benchSession runs one whole session against m: connect, USER, PASS,
// DATA, QUIT, checking every reply.
func benchSession(b *testing.B, m *testharness.Daemon) {
	c := login(b, m, alice)
	c.Post(benchMessage, 250)
	c.Cmd("QUIT", 221)
	c.Close()
}

// BenchmarkDevSessions measures whole sessions per second through the built
// mppd with the development backends (argon2id password file, maildir) over
// loopback TCP, one client at a time. The password hash dominates: it is
// the floor mppd cannot go below with this backend.
func BenchmarkDevSessions(b *testing.B) {
	extra, _ := devBackends(b, alice)
	m := testharness.Start(b, extra, noSendLimits)
	for b.Loop() {
		benchSession(b, m)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}

// BenchmarkDevSessions8 is the same with 8 concurrent clients.
func BenchmarkDevSessions8(b *testing.B) {
	extra, _ := devBackends(b, alice)
	m := testharness.Start(b, extra, noSendLimits)
	const clients = 8
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				benchSession(b, m)
			}
		}()
	}
	b.ResetTimer()
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}
