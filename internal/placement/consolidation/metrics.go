package consolidation

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the consolidation loop's Prometheus metrics; a nil
// *Metrics records nothing.
type Metrics struct {
	rounds   *prometheus.CounterVec
	migrated prometheus.Counter
	failed   prometheus.Counter
	offs     prometheus.Counter
	wakeups  prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refuge_consolidation_rounds_total",
			Help: "Consolidation rounds, by outcome (consolidated, nothing, woke, error)."}, []string{"outcome"}),
		migrated: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_consolidation_migrations_total",
			Help: "VMs migrated by consolidation."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_consolidation_migration_failures_total",
			Help: "Consolidation migrations that did not succeed."}),
		offs: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_consolidation_power_offs_total",
			Help: "Hosts powered off by consolidation."}),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts{Name: "refuge_consolidation_wakeups_total",
			Help: "Powered-off hosts woken because capacity was needed."}),
	}
	for _, c := range []prometheus.Collector{m.rounds, m.migrated, m.failed, m.offs, m.wakeups} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) round(r RoundReport) {
	if m == nil {
		return
	}
	outcome := "consolidated"
	switch {
	case len(r.Errors) > 0:
		outcome = "error"
	case len(r.Woken) > 0:
		outcome = "woke"
	case r.Planned == 0 && len(r.PoweredOff) == 0:
		outcome = "nothing"
	}
	m.rounds.WithLabelValues(outcome).Inc()
}

func (m *Metrics) migrations(ok, failed int) {
	if m == nil {
		return
	}
	m.migrated.Add(float64(ok))
	m.failed.Add(float64(failed))
}

func (m *Metrics) poweredOff() {
	if m != nil {
		m.offs.Inc()
	}
}

func (m *Metrics) woken() {
	if m != nil {
		m.wakeups.Inc()
	}
}
