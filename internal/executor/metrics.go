package executor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the executor's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	startedC prometheus.Counter
	finished *prometheus.CounterVec
	inFlight prometheus.Gauge
	duration prometheus.Histogram
	downtime prometheus.Histogram
	bytesTx  prometheus.Counter
	admit    *prometheus.GaugeVec
	plans    prometheus.Counter
	planned  prometheus.Gauge
	unsaved  prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		startedC: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refuge_migrations_started_total", Help: "Migrations started."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refuge_migrations_finished_total", Help: "Migrations finished, by outcome: migrated, failed, aborted or lost."}, []string{"outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refuge_migrations_in_flight", Help: "Migrations running now."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "refuge_migration_duration_seconds", Help: "Duration of finished migrations.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		downtime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "refuge_migration_downtime_seconds", Help: "Switch-over pause of successful migrations.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		bytesTx: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refuge_migration_bytes_total", Help: "Bytes sent by finished migrations."}),
		admit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refuge_link_admitted_bytes_per_second", Help: "Bandwidth the feedback controller admits per WAN link direction (bytes/s)."}, []string{"link"}),
		plans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refuge_plans_total", Help: "Plans computed (initial and re-plans)."}),
		planned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refuge_plan_moves", Help: "Moves in the latest plan."}),
		unsaved: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refuge_plan_unsaved", Help: "At-risk VMs the latest plan cannot save."}),
	}
	for _, c := range []prometheus.Collector{m.startedC, m.finished, m.inFlight, m.duration, m.downtime, m.bytesTx, m.admit, m.plans, m.planned, m.unsaved} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) started() {
	if m == nil {
		return
	}
	m.startedC.Inc()
	m.inFlight.Inc()
}

func (m *Metrics) done(outcome string, d, downtime time.Duration) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	m.finished.WithLabelValues(outcome).Inc()
	m.duration.Observe(d.Seconds())
	if outcome == string(StatusMigrated) {
		m.downtime.Observe(downtime.Seconds())
	}
}

func (m *Metrics) bytes(n uint64) {
	if m == nil {
		return
	}
	m.bytesTx.Add(float64(n))
}

func (m *Metrics) admitted(link string, bps float64) {
	if m == nil {
		return
	}
	m.admit.WithLabelValues(link).Set(bps)
}

func (m *Metrics) plan(moves, unsaved int) {
	if m == nil {
		return
	}
	m.plans.Inc()
	m.planned.Set(float64(moves))
	m.unsaved.Set(float64(unsaved))
}
