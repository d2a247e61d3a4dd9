package consolidation

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor/simhv"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/placement"
	"github.com/refuge-project/refuge/internal/power"
	"github.com/refuge-project/refuge/internal/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// federation: two sites of `hosts` hosts (4 cores, 8 GiB) joined by a
// 1 Gbit/s link, one 1-vCPU 1 GiB VM per host on site a plus `extra` on
// the first host.
func federation(t *testing.T, hosts, extra int) *model.Index {
	t.Helper()
	var b strings.Builder
	b.WriteString("name: c\nsites:\n")
	for _, site := range []string{"a", "b"} {
		fmt.Fprintf(&b, "  - name: %s\n    lat: 35\n    lon: 135\n    fabrics:\n      - name: f%s\n        hosts:\n", site, site)
		for h := range hosts {
			fmt.Fprintf(&b, "          - {name: %s%d, vcpu: 4, memory_mib: 8192, nic_mbps: 1000}\n", site, h)
		}
	}
	b.WriteString("links:\n  - {name: ab, a: a, b: b, bandwidth_mbps: 1000, rtt_ms: 10}\nvms:\n")
	for h := range hosts {
		fmt.Fprintf(&b, "  - {name: v%d, host: a%d, vcpu: 1, memory_mib: 1024, storage: shared}\n", h, h)
		fmt.Fprintf(&b, "  - {name: w%d, host: b%d, vcpu: 1, memory_mib: 1024, storage: shared}\n", h, h)
	}
	for i := range extra {
		fmt.Fprintf(&b, "  - {name: x%d, host: a0, vcpu: 1, memory_mib: 1024, storage: shared}\n", i)
	}
	f, err := model.ParseFederation([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return model.NewIndex(f)
}

type rig struct {
	eng     *sim.Engine
	cluster *simhv.Cluster
	meter   *power.Meter
	power   *power.Sim
	loop    *Loop
}

func newRig(t *testing.T, ix *model.Index, cfg Config) *rig {
	t.Helper()
	r := &rig{eng: sim.NewEngine(epoch)}
	var err error
	r.cluster, err = simhv.New(r.eng, ix)
	if err != nil {
		t.Fatal(err)
	}
	curves, err := power.HostCurves(ix)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(ix.Hosts))
	for h := range names {
		names[h] = ix.Host(h).Name
	}
	r.meter, err = power.NewMeter(power.MeterConfig{Clock: r.eng, Hosts: names, Curves: curves})
	if err != nil {
		t.Fatal(err)
	}
	r.power, err = power.NewSim(power.SimConfig{Clock: r.eng, Hosts: names, BootTime: 2 * time.Minute, Meter: r.meter})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Index, cfg.Driver, cfg.Clock, cfg.Power, cfg.Meter = ix, r.cluster, r.eng, r.power, r.meter
	r.loop, err = NewLoop(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLoopConsolidatesAndSavesEnergy(t *testing.T) {
	ix := federation(t, 6, 0)
	pol := model.RefugePolicy()
	pol.Concurrency = model.ConcurrencyPolicy{PerHostOut: 1, PerHostIn: 1}
	var reports []RoundReport
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, ix, Config{Policy: pol, Headroom: 0.2, Load: func(int) float64 { return 0.5 },
		Metrics: metrics, OnRound: func(rep RoundReport) { reports = append(reports, rep) }})
	baseline := r.meter.Read().TotalWatts
	if err := r.loop.Trigger(); err != nil {
		t.Fatal(err)
	}
	if err := r.loop.Trigger(); err != ErrRoundRunning {
		t.Fatalf("second trigger during a round: %v", err)
	}
	r.eng.RunUntil(time.Hour)
	if len(reports) != 1 {
		t.Fatalf("%d rounds reported", len(reports))
	}
	rep := reports[0]
	// Per site, 6 VMs of load 0.5 fit on one host with 20 % headroom (3.0
	// ≤ 3.2): five hosts per site are emptied and powered off.
	if rep.Migrated != 10 || rep.Failed != 0 || len(rep.PoweredOff) != 10 || len(rep.Errors) != 0 {
		t.Fatalf("round %+v", rep)
	}
	if err := r.cluster.Check(); err != nil {
		t.Fatal(err)
	}
	pl := r.loop.Placement()
	sim := r.cluster.Placement()
	for v := range pl {
		if pl[v] != sim[v] {
			t.Fatalf("loop and hypervisor disagree on VM %d: %d vs %d", v, pl[v], sim[v])
		}
	}
	for h, off := range r.loop.Off() {
		st, _ := r.power.State(context.Background(), ix.Host(h).Name)
		if off != (st == power.StateOff) {
			t.Fatalf("host %d: loop says off=%v, controller %s", h, off, st)
		}
	}
	after := r.meter.Read()
	if after.HostsOff != 10 || after.TotalWatts >= baseline {
		t.Fatalf("after consolidation %+v (before %g W)", after, baseline)
	}
	// 2 hosts at 75 % vs 12 hosts at 12.5 %: a clear saving.
	if want := 2 * power.Default().Watts(0.75); after.TotalWatts != want {
		t.Fatalf("total %g W, want %g", after.TotalWatts, want)
	}
	if got := testutil.ToFloat64(metrics.migrated); got != 10 {
		t.Fatalf("migrations metric %g", got)
	}
}

func TestLoopHonoursConcurrencyLimits(t *testing.T) {
	ix := federation(t, 6, 0)
	pol := model.RefugePolicy()
	pol.Concurrency = model.ConcurrencyPolicy{Global: 2}
	r := newRig(t, ix, Config{Policy: pol, Headroom: 0.2, Load: func(int) float64 { return 0.5 }})
	running, peak := 0, 0
	r.loop.onExecutorEvent = func(e executor.Event) {
		switch e.Kind {
		case executor.EvStart:
			running++
			peak = max(peak, running)
		case executor.EvDone, executor.EvFail:
			running--
		}
	}
	if err := r.loop.Trigger(); err != nil {
		t.Fatal(err)
	}
	r.eng.RunUntil(time.Hour)
	if peak != 2 {
		t.Fatalf("peak concurrent migrations %d, want the policy's global limit 2", peak)
	}
}

func TestLoopNeverTouchesThreatenedSite(t *testing.T) {
	ix := federation(t, 4, 0)
	var reports []RoundReport
	r := newRig(t, ix, Config{Policy: model.RefugePolicy(), Headroom: 0.2, Load: func(int) float64 { return 0.5 },
		Threatened: func() map[int]time.Duration { return map[int]time.Duration{1: time.Hour} },
		OnRound:    func(rep RoundReport) { reports = append(reports, rep) }})
	if err := r.loop.Trigger(); err != nil {
		t.Fatal(err)
	}
	r.eng.RunUntil(time.Hour)
	start := ix.VMHost
	for v, h := range r.loop.Placement() {
		if ix.HostSite(start[v]) == 1 && h != start[v] {
			t.Fatalf("VM %d moved off the threatened site", v)
		}
		if ix.HostSite(h) == 1 && ix.HostSite(start[v]) != 1 {
			t.Fatalf("VM %d moved onto the threatened site", v)
		}
	}
	for h, off := range r.loop.Off() {
		if off && ix.HostSite(h) == 1 {
			t.Fatalf("host %d of the threatened site powered off", h)
		}
	}
	if len(reports) != 1 || reports[0].Migrated != 3 {
		t.Fatalf("reports %+v", reports)
	}
}

func TestLoopWakesForCapacity(t *testing.T) {
	ix := federation(t, 3, 1)
	// Start with a1, a2 off and all of site a's VMs on a0 (load 1 each:
	// 4 cores on 4 → beyond 80 %).
	pl := append([]int(nil), ix.VMHost...)
	for v := range pl {
		if ix.HostSite(pl[v]) == 0 {
			pl[v] = 0
		}
	}
	off := make([]bool, len(ix.Hosts))
	off[1], off[2] = true, true
	var reports []RoundReport
	r := newRig(t, ix, Config{Policy: model.RefugePolicy(), Headroom: 0.2, Load: func(int) float64 { return 1 },
		Placement: pl, Off: off, OnRound: func(rep RoundReport) { reports = append(reports, rep) }})
	// The rig's power controller starts all on; align it.
	for _, h := range []int{1, 2} {
		if err := r.power.PowerOff(context.Background(), ix.Host(h).Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.loop.Trigger(); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 1 || len(reports[0].Woken) != 1 || reports[0].Woken[0] != "a1" {
		t.Fatalf("headroom short, want a1 woken: %+v", reports)
	}
	if st, _ := r.power.State(context.Background(), "a1"); st != power.StateBooting {
		t.Fatalf("a1 %s", st)
	}
	// a1, booting, counts as capacity: a request it can take wakes nothing.
	big := placement.Request{Name: "big", VCPU: 2, MemoryMiB: 7000, Load: 1}
	if h, err := r.loop.Wake(big); err != nil || h != -1 {
		t.Fatalf("Wake = %d, %v; want -1 (a1 has room)", h, err)
	}
	if _, err := r.loop.Wake(placement.Request{Name: "huge", VCPU: 1, MemoryMiB: 1 << 20}); err == nil {
		t.Fatal("a request that fits nowhere woke something")
	}
	r.eng.RunUntil(time.Hour)
}

func TestWakeForRequest(t *testing.T) {
	ix := federation(t, 2, 0)
	pl := make([]int, len(ix.Fed.VMs)) // everything on a0
	off := []bool{false, true, true, true}
	r := newRig(t, ix, Config{Policy: model.RefugePolicy(), Placement: pl, Off: off, Load: func(int) float64 { return 0.1 }})
	big := placement.Request{Name: "big", VCPU: 2, MemoryMiB: 7000, Load: 1}
	h, err := r.loop.Wake(big)
	if err != nil || h != 1 {
		t.Fatalf("Wake = %d, %v; want a1, the first powered-off host with room", h, err)
	}
	if r.loop.Off()[1] {
		t.Fatal("a1 still marked off")
	}
}

func TestLoopPeriodicAndStop(t *testing.T) {
	ix := federation(t, 2, 0)
	var reports []RoundReport
	r := newRig(t, ix, Config{Policy: model.RefugePolicy(), Interval: 10 * time.Minute, Headroom: 0.2,
		Load: func(int) float64 { return 0.5 }, OnRound: func(rep RoundReport) { reports = append(reports, rep) }})
	r.loop.Start()
	r.eng.RunUntil(35 * time.Minute)
	r.loop.Stop()
	r.eng.RunUntil(2 * time.Hour)
	if len(reports) != 3 {
		t.Fatalf("%d rounds in 35 min at 10 min intervals, want 3", len(reports))
	}
	if reports[0].Migrated != 2 || reports[1].Skipped == "" {
		t.Fatalf("rounds %+v", reports)
	}
}

func TestNewLoopRejects(t *testing.T) {
	ix := federation(t, 2, 0)
	eng := sim.NewEngine(epoch)
	cl, _ := simhv.New(eng, ix)
	ps, _ := power.NewSim(power.SimConfig{Clock: eng})
	good := Config{Index: ix, Driver: cl, Clock: eng, Power: ps}
	for _, mod := range []func(*Config){
		func(c *Config) { c.Power = nil },
		func(c *Config) { c.Headroom = 1 },
		func(c *Config) { c.Interval = -1 },
		func(c *Config) { c.Load = func(int) float64 { return 5 } },
		func(c *Config) { c.Placement = []int{0} },
	} {
		c := good
		mod(&c)
		if _, err := NewLoop(c); err == nil {
			t.Errorf("config accepted: %+v", c)
		}
	}
}

func TestAbsorbNilHost(t *testing.T) {
	ix := federation(t, 3, 0)
	var reports []RoundReport
	r := newRig(t, ix, Config{Policy: model.RefugePolicy(), Headroom: 0.2, Load: func(int) float64 { return 0.5 },
		OnRound: func(rep RoundReport) { reports = append(reports, rep) }})
	s, err := placement.FromIndex(ix, placement.Config{VCPUOvercommit: 4, Headroom: 0.2}, nil, []float64{0.5, 0.5, 0.5, 0.5, 0.5, 0.5}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Ask power-of-two until it proposes a consolidation.
	p, _ := placement.New(placement.PowerOfTwo, placement.Options{Seed: 1})
	var d placement.Decision
	for range 100 {
		d, err = p.Place(s, placement.Request{Name: "new", VCPU: 1, MemoryMiB: 512, Load: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		if d.NilHost >= 0 {
			break
		}
	}
	if d.NilHost < 0 {
		t.Fatal("power-of-two never proposed a nil-host consolidation")
	}
	if err := r.loop.Absorb(d); err != nil {
		t.Fatal(err)
	}
	r.eng.RunUntil(time.Hour)
	if len(reports) != 1 || reports[0].Migrated != len(d.Migrate) || len(reports[0].PoweredOff) != 1 {
		t.Fatalf("reports %+v for decision %+v", reports, d)
	}
	if !r.loop.Off()[d.NilHost] {
		t.Fatal("nil host still on")
	}
	if err := r.loop.Absorb(placement.Decision{Host: 0, NilHost: 1, Migrate: []int{5}}); err == nil {
		t.Fatal("absorbing a VM that is not on the nil host accepted")
	}
}
