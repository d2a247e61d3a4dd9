package power

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/sim"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestDefaultCurve(t *testing.T) {
	c := Default()
	want := []float64{41.6, 46.7, 52.3, 57.9, 65.4, 73, 80.7, 89.5, 99.6, 105, 113}
	for i, w := range want {
		if got := c.Watts(float64(i) / 10); !near(got, w) {
			t.Errorf("Watts(%d%%) = %g, want %g", i*10, got, w)
		}
	}
	cases := []struct{ u, w float64 }{
		{0.05, (41.6 + 46.7) / 2},
		{0.55, (73 + 80.7) / 2},
		{0.99, 105 + 0.9*(113-105)},
		{-1, 41.6},
		{2, 113},
		{math.NaN(), 41.6},
	}
	for _, tc := range cases {
		if got := c.Watts(tc.u); !near(got, tc.w) {
			t.Errorf("Watts(%g) = %g, want %g", tc.u, got, tc.w)
		}
	}
	if c.Idle() != 41.6 || c.Peak() != 113 {
		t.Errorf("idle %g peak %g", c.Idle(), c.Peak())
	}
}

func TestNewCurveRejects(t *testing.T) {
	for _, tc := range []struct {
		watts []float64
		msg   string
	}{
		{[]float64{1, 2}, "2 values, want 11"},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, math.NaN()}, "value 10"},
		{[]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, math.Inf(1)}, "finite"},
		{[]float64{-1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, ">= 0"},
		{[]float64{1, 2, 3, 4, 5, 4, 7, 8, 9, 10, 11}, "below the previous"},
	} {
		_, err := NewCurve("x", tc.watts)
		if !errors.Is(err, ErrBadCurve) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("NewCurve(%v) = %v, want ErrBadCurve mentioning %q", tc.watts, err, tc.msg)
		}
	}
}

func testIndex(t *testing.T) *model.Index {
	t.Helper()
	f := &model.Federation{
		Name:        "p",
		PowerModels: []model.PowerModel{{Name: "big", Watts: []float64{100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200}}},
		Sites: []model.Site{{Name: "s", Fabrics: []model.Fabric{{Name: "f", Hosts: []model.Host{
			{Name: "h0", VCPU: 4, MemoryMiB: 8192, NICMbps: 1000},
			{Name: "h1", VCPU: 4, MemoryMiB: 8192, NICMbps: 1000, PowerModel: "big"},
		}}}}},
	}
	return model.NewIndex(f)
}

func TestHostCurves(t *testing.T) {
	ix := testIndex(t)
	cs, err := HostCurves(ix)
	if err != nil {
		t.Fatal(err)
	}
	if cs[0].Name != model.DefaultPowerModelName || cs[1].Name != "big" || cs[1].Watts(0.25) != 125 {
		t.Fatalf("curves %+v", cs)
	}
	ix.Fed.Sites[0].Fabrics[0].Hosts[1].PowerModel = "nope"
	if _, err := HostCurves(ix); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown model: %v", err)
	}
}

func TestMeterIntegrates(t *testing.T) {
	eng := sim.NewEngine(epoch)
	m, err := NewMeter(MeterConfig{Clock: eng, Hosts: []string{"a", "b"}, Curves: []Curve{Default(), Default()}})
	if err != nil {
		t.Fatal(err)
	}
	// a: idle for 100 s, then 50 % for 100 s, then off for 100 s.
	// b: 100 % throughout.
	if err := m.SetUtil(1, 1); err != nil {
		t.Fatal(err)
	}
	eng.RunUntil(100 * time.Second)
	if err := m.SetUtil(0, 0.5); err != nil {
		t.Fatal(err)
	}
	eng.RunUntil(200 * time.Second)
	if err := m.SetOn(0, false); err != nil {
		t.Fatal(err)
	}
	eng.RunUntil(300 * time.Second)
	r := m.Read()
	wantA := 41.6*100 + 73*100
	wantB := 113.0 * 300
	if !near(r.Hosts[0].Joules, wantA) || !near(r.Hosts[1].Joules, wantB) || !near(r.TotalJoules, wantA+wantB) {
		t.Fatalf("joules %+v, want a %g b %g", r, wantA, wantB)
	}
	if r.HostsOff != 1 || r.HostsOn != 1 || r.TotalWatts != 113 || !near(r.KWh, (wantA+wantB)/3.6e6) {
		t.Fatalf("report %+v", r)
	}
	// Switching back on comes back idle.
	if err := m.SetOn(0, true); err != nil {
		t.Fatal(err)
	}
	if r := m.Read(); r.Hosts[0].Watts != 41.6 || r.Hosts[0].Util != 0 {
		t.Fatalf("after power-on %+v", r.Hosts[0])
	}
	if err := m.Set(5, true, 0); err == nil {
		t.Fatal("Set of unknown host accepted")
	}
	if err := m.Set(0, true, math.NaN()); err == nil {
		t.Fatal("NaN utilisation accepted")
	}
}

func TestMeterMetrics(t *testing.T) {
	eng := sim.NewEngine(epoch)
	m, err := NewMeter(MeterConfig{Clock: eng, Hosts: []string{"a", "b"}, Curves: []Curve{Default(), Default()}, Off: []bool{false, true}, OffWatts: 2})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	eng.RunUntil(10 * time.Second)
	want := `
# HELP refuge_hosts_powered_off Hosts currently powered off.
# TYPE refuge_hosts_powered_off gauge
refuge_hosts_powered_off 1
# HELP refuge_power_watts Current power draw of all metered hosts.
# TYPE refuge_power_watts gauge
refuge_power_watts 43.6
# HELP refuge_energy_joules_total Energy drawn by all metered hosts since metering began.
# TYPE refuge_energy_joules_total counter
refuge_energy_joules_total 436
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "refuge_hosts_powered_off", "refuge_power_watts", "refuge_energy_joules_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m, "refuge_host_power_watts"); n != 2 {
		t.Fatalf("%d host power series", n)
	}
}

func TestNewMeterRejects(t *testing.T) {
	eng := sim.NewEngine(epoch)
	for _, cfg := range []MeterConfig{
		{Hosts: []string{"a"}, Curves: []Curve{Default()}},
		{Clock: eng, Hosts: []string{"a"}},
		{Clock: eng, Hosts: []string{"a"}, Curves: []Curve{Default()}, Off: []bool{true, false}},
		{Clock: eng, Hosts: []string{"a"}, Curves: []Curve{Default()}, OffWatts: -1},
	} {
		if _, err := NewMeter(cfg); err == nil {
			t.Errorf("NewMeter(%+v) accepted", cfg)
		}
	}
}

func TestSimController(t *testing.T) {
	eng := sim.NewEngine(epoch)
	m, _ := NewMeter(MeterConfig{Clock: eng, Hosts: []string{"a", "b"}, Curves: []Curve{Default(), Default()}})
	var changes []string
	s, err := NewSim(SimConfig{Clock: eng, Hosts: []string{"a", "b"}, Off: []string{"b"}, BootTime: time.Minute, Meter: m,
		OnChange: func(h string, st State) { changes = append(changes, h+":"+string(st)) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if st, _ := s.State(ctx, "b"); st != StateOff {
		t.Fatalf("b starts %s", st)
	}
	if r := m.Read(); r.HostsOff != 1 {
		t.Fatalf("meter not told b is off: %+v", r)
	}
	if err := s.PowerOn(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.State(ctx, "b"); st != StateBooting {
		t.Fatalf("b is %s after power-on, want booting", st)
	}
	if err := s.PowerOff(ctx, "b"); !errors.Is(err, ErrBusy) {
		t.Fatalf("power-off while booting: %v", err)
	}
	if err := s.PowerOn(ctx, "b"); err != nil { // idempotent
		t.Fatal(err)
	}
	eng.RunUntil(time.Minute)
	if st, _ := s.State(ctx, "b"); st != StateOn {
		t.Fatalf("b is %s after boot time", st)
	}
	if err := s.PowerOff(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.PowerOff(ctx, "a"); err != nil { // idempotent
		t.Fatal(err)
	}
	if got := s.Off(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("off %v", got)
	}
	if ons, offs := s.Counts(); ons != 1 || offs != 1 {
		t.Fatalf("counts %d %d", ons, offs)
	}
	want := "b:booting b:on a:off"
	if got := strings.Join(changes, " "); got != want {
		t.Fatalf("changes %q, want %q", got, want)
	}
	if _, err := s.State(ctx, "zz"); !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("unknown host: %v", err)
	}
	if err := s.PowerOn(ctx, "zz"); !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("unknown host: %v", err)
	}
	s.InjectFault("a", errors.New("ipmi timeout"))
	if err := s.PowerOn(ctx, "a"); !errors.Is(err, ErrBMC) || !strings.Contains(err.Error(), "ipmi timeout") {
		t.Fatalf("fault: %v", err)
	}
	if st, _ := s.State(ctx, "a"); st != StateOff {
		t.Fatalf("a changed state despite the fault: %s", st)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.PowerOn(cctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	if _, err := NewSim(SimConfig{Clock: eng, Hosts: []string{"a", "a"}}); err == nil {
		t.Fatal("duplicate host accepted")
	}
	if _, err := NewSim(SimConfig{Clock: eng, Hosts: []string{"a"}, Off: []string{"q"}}); err == nil {
		t.Fatal("unknown off host accepted")
	}
}
