package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the monitoring's Prometheus metrics. One Metrics may be
// shared by the agents and the controller of a process; a nil *Metrics
// records nothing.
type Metrics struct {
	sent         *prometheus.CounterVec
	received     *prometheus.CounterVec
	decodeErrors prometheus.Counter
	rejected     prometheus.Counter
	late         prometheus.Counter
	failures     prometheus.Counter
	recoveries   prometheus.Counter
	replacements prometheus.Counter
	takeovers    prometheus.Counter
	detection    prometheus.Histogram
	unmonitored  prometheus.Gauge
	failed       prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refuge_monitor_messages_sent_total",
			Help: "Monitoring datagrams sent, by type."}, []string{"type"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refuge_monitor_messages_received_total",
			Help: "Well-formed monitoring datagrams received, by type."}, []string{"type"}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_monitor_decode_errors_total",
			Help: "Datagrams dropped because they do not decode (garbage, truncated, wrong version)."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_monitor_rejected_total",
			Help: "Well-formed datagrams dropped: unexpected sender, address or message."}),
		late: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_monitor_late_acks_total",
			Help: "Acks that came after the failure timeout of their ping (not counted as heartbeats)."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_monitor_failures_detected_total",
			Help: "Hosts the controller declared failed."}),
		recoveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_monitor_recoveries_total",
			Help: "Failed hosts seen alive again."}),
		replacements: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_monitor_queen_replacements_total",
			Help: "Failed queens replaced by a live host of their row."}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_monitor_takeovers_total",
			Help: "Board squares handed to another monitor after a queen failed (Figure 2c)."}),
		detection: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "refuge_monitor_detection_seconds",
			Help: "Silence of a host (since its last heartbeat) when it was declared failed.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		unmonitored: prometheus.NewGauge(prometheus.GaugeOpts{Name: "refuge_monitor_unmonitored_hosts",
			Help: "Live hosts no live monitor probes (should be 0)."}),
		failed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "refuge_monitor_failed_hosts",
			Help: "Hosts currently declared failed."}),
	}
	for _, c := range []prometheus.Collector{m.sent, m.received, m.decodeErrors, m.rejected, m.late, m.failures, m.recoveries,
		m.replacements, m.takeovers, m.detection, m.unmonitored, m.failed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) sentMsg(t MsgType) {
	if m != nil {
		m.sent.WithLabelValues(t.String()).Inc()
	}
}

func (m *Metrics) receivedMsg(t MsgType) {
	if m != nil {
		m.received.WithLabelValues(t.String()).Inc()
	}
}

func (m *Metrics) decodeError() {
	if m != nil {
		m.decodeErrors.Inc()
	}
}

func (m *Metrics) reject() {
	if m != nil {
		m.rejected.Inc()
	}
}

func (m *Metrics) lateAck() {
	if m != nil {
		m.late.Inc()
	}
}

func (m *Metrics) failure(silence time.Duration) {
	if m != nil {
		m.failures.Inc()
		m.detection.Observe(silence.Seconds())
	}
}

func (m *Metrics) recovery() {
	if m != nil {
		m.recoveries.Inc()
	}
}

func (m *Metrics) replaced(takenOver int) {
	if m != nil {
		m.replacements.Inc()
		m.takeovers.Add(float64(takenOver))
	}
}

func (m *Metrics) takeover(n int) {
	if m != nil {
		m.takeovers.Add(float64(n))
	}
}

func (m *Metrics) gauges(unmonitored, failed int) {
	if m != nil {
		m.unmonitored.Set(float64(unmonitored))
		m.failed.Set(float64(failed))
	}
}
