package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mppd/mppd/protocol"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, err := io.ReadAll(rec.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCounts: each kind of event lands in its metric with its labels.
func TestCounts(t *testing.T) {
	m := New("passwdfile")
	m.SessionStarted()
	m.SessionStarted()
	m.SessionEnded()
	m.Connection("mpps")
	m.Throttled("max-sessions")
	m.TLSHandshake(false)
	m.CertificateLoaded(time.Unix(2000000000, 0), true, true)
	m.Observe(protocol.Event{Kind: protocol.EventLogin, Result: "ok"})
	m.Observe(protocol.Event{Kind: protocol.EventDelivery, Result: "ok", Duration: 30 * time.Millisecond})
	m.Observe(protocol.Event{Kind: protocol.EventMessage, Result: "queued"})
	m.Observe(protocol.Event{Kind: protocol.EventThrottled, Result: "penalty"})
	m.Observe(protocol.Event{Kind: protocol.EventSendLimit, Result: "recipients_per_hour"})
	out := scrape(t, m)
	for _, want := range []string{
		"mppd_sessions 1\n",
		"mppd_sessions_total 2\n",
		`mppd_connections_total{role="mpps"} 1`,
		`mppd_throttled_total{reason="max-sessions"} 1`,
		`mppd_throttled_total{reason="penalty"} 1`,
		`mppd_tls_handshakes_total{result="failed"} 1`,
		`mppd_tls_certificate_reloads_total{result="ok"} 1`,
		"mppd_tls_certificate_expiry_timestamp_seconds 2e+09",
		`mppd_logins_total{backend="passwdfile",result="ok"} 1`,
		`mppd_logins_total{backend="passwdfile",result="rejected"} 0`,
		`mppd_messages_total{result="queued"} 1`,
		`mppd_delivery_duration_seconds_bucket{result="ok",le="0.05"} 1`,
		`mppd_delivery_duration_seconds_bucket{result="ok",le="0.025"} 0`,
		`mppd_send_limit_refusals_total{limit="recipients_per_hour"} 1`,
		`mppd_send_limit_refusals_total{limit="messages_per_hour"} 0`,
		`mppd_send_limit_refusals_total{limit="recipients_per_day"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestNil: a nil *Metrics (metrics off) accepts every call.
func TestNil(t *testing.T) {
	var m *Metrics
	m.SessionStarted()
	m.SessionEnded()
	m.Connection("mpp")
	m.Throttled("x")
	m.TLSHandshake(true)
	m.CertificateLoaded(time.Now(), false, true)
	m.Observe(protocol.Event{Kind: protocol.EventLogin, Result: "ok"})
}
