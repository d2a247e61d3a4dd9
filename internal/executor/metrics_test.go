package executor

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refuge-project/refuge/internal/sim"
)

func TestMetricsCountMigrations(t *testing.T) {
	ix := testFederation(t, 5, 4096)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 10*time.Second)
	drv.failFirst["vm00"] = 1
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := New(Config{Index: ix, Policy: fixedPolicy(), Driver: drv, Clock: eng, Start: epoch, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(map[int]time.Duration{0: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eng.Run()
	if got := testutil.ToFloat64(m.startedC); got != 6 {
		t.Errorf("started %v, want 6 (5 VMs, one retried)", got)
	}
	if got := testutil.ToFloat64(m.finished.WithLabelValues("migrated")); got != 5 {
		t.Errorf("migrated %v, want 5", got)
	}
	if got := testutil.ToFloat64(m.finished.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed-then-retried %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight %v after the run, want 0", got)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice did not fail")
	}
}
