package controller

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refuge-project/refuge/internal/executor"
)

// Metrics are the controller's Prometheus metrics, with the executors'.
type Metrics struct {
	exec          *executor.Metrics
	leaderChanges prometheus.Counter
	operations    *prometheus.CounterVec
	alertLatency  prometheus.Histogram
}

// NewMetrics registers the controller's and the executors' metrics.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	em, err := executor.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &Metrics{
		exec: em,
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refuge_leader_changes_total", Help: "Times this controller became the leader."}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refuge_operations_started_total", Help: "Operations started, by kind."}, []string{"kind"}),
		alertLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "refuge_alert_to_first_migration_seconds",
			Help:    "From the alert pipeline's decision to evacuate to the first migration that evacuation started.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	for _, c := range []prometheus.Collector{m.leaderChanges, m.operations, m.alertLatency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) executor() *executor.Metrics {
	if m == nil {
		return nil
	}
	return m.exec
}

func (m *Metrics) leaderChange() {
	if m != nil {
		m.leaderChanges.Inc()
	}
}

func (m *Metrics) operation(kind string) {
	if m != nil {
		m.operations.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) alertToFirstMigration(d time.Duration) {
	if m != nil {
		m.alertLatency.Observe(d.Seconds())
	}
}
