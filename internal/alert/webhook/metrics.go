package webhook

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the relay receiver's Prometheus metrics. A nil *Metrics
// records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "refuge_alert_relay_requests_total",
		Help: "Relay webhook requests, by HTTP status of the answer.",
	}, []string{"status"})}
	if err := reg.Register(m.requests); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) observe(status int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(strconv.Itoa(status)).Inc()
}
