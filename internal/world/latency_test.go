package world

import (
	"context"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/controller/controllertest"
)

// BenchmarkAlertToFirstMigration measures an alert's way from a relay
// request over loopback to the first migration started on the simulated
// driver (see MeasureAlertLatency); b.N runs, reported as percentiles and
// as ratios to a bare loopback round trip.
func BenchmarkAlertToFirstMigration(b *testing.B) {
	fed := controllertest.Nankai(b)
	l, err := MeasureAlertLatency(context.Background(), LatencyOptions{Federation: fed, Runs: max(b.N, 20)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(l.AlertP50)/float64(time.Millisecond), "p50-ms")
	b.ReportMetric(float64(l.AlertP99)/float64(time.Millisecond), "p99-ms")
	b.ReportMetric(float64(l.HTTPP99)/float64(time.Millisecond), "http-p99-ms")
	b.ReportMetric(l.RatioP99, "p99/http-p99")
	b.ReportMetric(0, "ns/op")
}

// TestAlertLatency checks that the measurement works (its figures, under
// the race detector and a loaded test run, are not the benchmark's).
func TestAlertLatency(t *testing.T) {
	fed := controllertest.Nankai(t)
	l, err := MeasureAlertLatency(context.Background(), LatencyOptions{Federation: fed, Runs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if l.Runs != 3 || l.AlertP50 <= 0 || l.AlertP99 < l.AlertP50 || l.HTTPP50 <= 0 || l.RatioP99 <= 0 {
		t.Errorf("latency %+v", l)
	}
	t.Logf("%+v", l)
}
