// Package metrics counts what mppd does for a Prometheus endpoint: sessions,
// logins, messages, delivery latency, throttled clients, messages refused
// for a sending limit.
//
// The engine (package protocol) knows nothing of Prometheus: it reports
// protocol.Events, which Observe turns into counts. The daemon counts
// sessions and throttling itself. Every method works on a nil *Metrics and
// then does nothing, so callers need not check whether metrics are on.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mppd/mppd/internal/sendlimit"
	"github.com/mppd/mppd/protocol"
)

// Metrics holds mppd's collectors in a registry of its own (not the global
// one, so tests can make as many as they like).
type Metrics struct {
	reg             *prometheus.Registry
	backend         string
	sessions        prometheus.Gauge
	sessionsTotal   prometheus.Counter
	logins          *prometheus.CounterVec
	messages        *prometheus.CounterVec
	deliveries      *prometheus.HistogramVec
	throttled       *prometheus.CounterVec
	sendLimited     *prometheus.CounterVec
	tlsHandshakes   *prometheus.CounterVec
	certReloads     *prometheus.CounterVec
	certExpiry      prometheus.Gauge
	connectionsRole *prometheus.CounterVec
}

// New returns the metrics of a daemon whose authentication backend is
// named authnBackend (the label of the login counter).
func New(authnBackend string) *Metrics {
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		backend: authnBackend,
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mppd_sessions",
			Help: "MPP sessions open now.",
		}),
		sessionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mppd_sessions_total",
			Help: "MPP sessions started since mppd started.",
		}),
		logins: counterVec("mppd_logins_total",
			"PASS commands decided, by authentication backend and result (ok, rejected, unavailable).",
			"backend", "result"),
		messages: counterVec("mppd_messages_total",
			"Messages received to their end, by result (queued: 250, rejected: 550, failed: 451).",
			"result"),
		deliveries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mppd_delivery_duration_seconds",
			Help:    "Time the delivery backend took for one message, by result (ok, temporary, permanent).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"result"}),
		throttled: counterVec("mppd_throttled_total",
			"Clients refused before a session started (with 451: max-sessions, max-sessions-per-client, max-sessions-per-network, throttled; closed without a greeting: proxy-header), or slowed down or refused by the engine for failed logins, by reason.",
			"reason"),
		sendLimited: counterVec("mppd_send_limit_refusals_total",
			"Messages refused because their login reached a sending limit, by limit (messages_per_hour, recipients_per_hour, recipients_per_day).",
			"limit"),
		tlsHandshakes: counterVec("mppd_tls_handshakes_total",
			"TLS handshakes on mpps listeners, by result (ok, failed).",
			"result"),
		certReloads: counterVec("mppd_tls_certificate_reloads_total",
			"Certificate reloads on SIGHUP, by result (ok, failed: the old certificate stays).",
			"result"),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mppd_tls_certificate_expiry_timestamp_seconds",
			Help: "NotAfter of the certificate in use, as a Unix time.",
		}),
		connectionsRole: counterVec("mppd_connections_total",
			"Connections accepted, by listener role (mpp, mpps).",
			"role"),
	}
	m.reg.MustRegister(m.sessions, m.sessionsTotal, m.logins, m.messages, m.deliveries,
		m.throttled, m.sendLimited, m.tlsHandshakes, m.certReloads, m.certExpiry, m.connectionsRole,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Results known in advance start at zero, so that a rate over them
	// is defined before the first event.
	for _, r := range []string{"ok", "rejected", "unavailable"} {
		m.logins.WithLabelValues(authnBackend, r)
	}
	for _, r := range []string{"queued", "rejected", "failed"} {
		m.messages.WithLabelValues(r)
	}
	for _, l := range sendlimit.Names() {
		m.sendLimited.WithLabelValues(l)
	}
	return m
}

// counterVec is a counter named name, described by help, with one series
// for each combination of the labels' values.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// SessionStarted counts a session that starts; SessionEnded one that ends.
func (m *Metrics) SessionStarted() {
	if m == nil {
		return
	}
	m.sessions.Inc()
	m.sessionsTotal.Inc()
}

// SessionEnded counts a session that ended.
func (m *Metrics) SessionEnded() {
	if m == nil {
		return
	}
	m.sessions.Dec()
}

// Connection counts a connection accepted on a listener of role.
func (m *Metrics) Connection(role string) {
	if m == nil {
		return
	}
	m.connectionsRole.WithLabelValues(role).Inc()
}

// Throttled counts a client refused before its session started; reason is
// a short stable word ("max-sessions", "max-sessions-per-client", ...).
func (m *Metrics) Throttled(reason string) {
	if m == nil {
		return
	}
	m.throttled.WithLabelValues(reason).Inc()
}

// TLSHandshake counts a TLS handshake that succeeded or failed.
func (m *Metrics) TLSHandshake(ok bool) {
	if m == nil {
		return
	}
	m.tlsHandshakes.WithLabelValues(okFailed(ok)).Inc()
}

// CertificateLoaded records a certificate load: its expiry when it
// succeeded, and for a reload its result.
func (m *Metrics) CertificateLoaded(notAfter time.Time, reload, ok bool) {
	if m == nil {
		return
	}
	if ok && !notAfter.IsZero() {
		m.certExpiry.Set(float64(notAfter.Unix()))
	}
	if reload {
		m.certReloads.WithLabelValues(okFailed(ok)).Inc()
	}
}

// Observe counts an engine event; it is what the daemon puts in
// protocol.Server.Events.
func (m *Metrics) Observe(ev protocol.Event) {
	if m == nil {
		return
	}
	switch ev.Kind {
	case protocol.EventLogin:
		m.logins.WithLabelValues(m.backend, ev.Result).Inc()
	case protocol.EventMessage:
		m.messages.WithLabelValues(ev.Result).Inc()
	case protocol.EventDelivery:
		m.deliveries.WithLabelValues(ev.Result).Observe(ev.Duration.Seconds())
	case protocol.EventThrottled:
		m.throttled.WithLabelValues(ev.Result).Inc()
	case protocol.EventSendLimit:
		m.sendLimited.WithLabelValues(ev.Result).Inc()
	}
}

func okFailed(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}
