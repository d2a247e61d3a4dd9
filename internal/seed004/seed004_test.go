package seed004

import (
	"encoding/json"
	"math"
	"testing"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/placement"
	"github.com/refuge-project/refuge/internal/power"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quick() Options {
	o := DefaultOptions()
	o.LMS.Replicates = 1
	o.LMS.Clients = []int{50, 550}
	o.Efficiency.Replicates = 1
	o.Scale = &ScaleConfig{Hosts: 500, VMs: 1500, AssignHosts: 10_000, Headroom: 0.2, Seed: 1}
	return o
}

// TestReportShape: every figure the issue asks for is there, for every
// method, with the paper's value where the paper states one.
func TestReportShape(t *testing.T) {
	o := quick()
	r, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		fig, method, xname string
		x                  float64
	}
	got := map[key]Figure{}
	for _, f := range r.Figures {
		if f.Stat == "mean" || f.Stat == "balance" || f.Stat == "total" {
			got[key{f.Figure, f.Method, f.XName, f.X}] = f
		}
		if math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
			t.Errorf("%+v: not a number", f)
		}
	}
	for _, m := range PlacementMethods {
		for _, c := range o.LMS.Clients {
			for _, fig := range []string{FigFailed, FigSLA, FigUtil} {
				if _, ok := got[key{fig, m, "clients", float64(c)}]; !ok {
					t.Errorf("missing %s %s at %d clients", fig, m, c)
				}
			}
		}
		for _, n := range o.Efficiency.Added {
			for _, fig := range []string{FigUtil, FigPower} {
				if _, ok := got[key{fig, m, "vms", float64(n)}]; !ok {
					t.Errorf("missing %s %s at %d VMs", fig, m, n)
				}
			}
		}
	}
	for _, m := range []string{MasterSlave, QueenL1, QueenL2} {
		for _, n := range o.Boards {
			if _, ok := got[key{FigBalance, m, "board_n", float64(n)}]; !ok {
				t.Errorf("missing balance %s at N=%d", m, n)
			}
		}
	}
	paperAt := func(fig, m, xname string, x float64) *float64 { return got[key{fig, m, xname, x}].Paper }
	for _, c := range []struct {
		fig, m, xname string
		x, want       float64
	}{
		{FigPower, NextFit, "vms", 40, 8750}, {FigPower, PowerOfTwo, "vms", 40, 8710}, {FigPower, PowerOfTwoMig, "vms", 40, 8415},
		{FigBalance, MasterSlave, "board_n", 5, 12.24}, {FigBalance, QueenL2, "board_n", 10, 6.42},
		{FigUtil, NextFit, "clients", 550, 50.58}, {FigUtil, PowerOfTwoMig, "clients", 50, 6.75},
	} {
		if p := paperAt(c.fig, c.m, c.xname, c.x); p == nil || *p != c.want {
			t.Errorf("paper value of %s %s at %g: %v, want %g", c.fig, c.m, c.x, p, c.want)
		}
	}
	if p := paperAt(FigFailed, NextFit, "clients", 550); p != nil {
		t.Errorf("the paper states no failed-task count, got %g", *p)
	}
	// Balance: master-slave and Level 1 match the paper exactly once
	// truncated to two decimals as the paper's are (49.7487 → 49.74,
	// 4.7368 → 4.73); Level 2 counts differently (docs/seed004.md).
	for _, c := range []struct {
		m string
		n float64
	}{{MasterSlave, 5}, {MasterSlave, 10}, {QueenL1, 5}, {QueenL1, 10}} {
		f := got[key{FigBalance, c.m, "board_n", c.n}]
		if f.Paper == nil || f.Value != *f.Paper {
			t.Errorf("balance %s N=%g = %g, want the paper's %v", c.m, c.n, f.Value, f.Paper)
		}
	}
	// LMS utilisation: the paper's figure averages the active hosts; the
	// all-hosts figure is the same work over all 15.
	for _, m := range PlacementMethods {
		for _, c := range o.LMS.Clients {
			act := got[key{FigUtil, m, "clients", float64(c)}].Value
			all := got[key{FigUtilAll, m, "clients", float64(c)}].Value
			if !(act >= all && all > 0) {
				t.Errorf("%s at %d clients: active-host utilisation %g%%, all-host %g%%", m, c, act, all)
			}
		}
	}
	if c := r.Consolidation; c == nil || c.EnergyLoopKWh >= c.EnergyStaticKWh || c.Migrated == 0 || c.Failed != 0 || c.HostsOff == 0 {
		t.Fatalf("consolidation %+v: want migrations, hosts off and less energy", c)
	}
	if r.Scale == nil || len(r.Scale.Policies) != len(ScalePolicies) || r.Scale.AssignBoard != 100 {
		t.Fatalf("scale %+v", r.Scale)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	// Deterministic, whatever the scheduling of the parallel runs.
	r2, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Figures {
		if r.Figures[i].Value != r2.Figures[i].Value {
			t.Fatalf("figure %+v differs between runs: %g", r.Figures[i], r2.Figures[i].Value)
		}
	}
}

func TestLMSBehaviour(t *testing.T) {
	c := DefaultLMS()
	low, err := RunLMS(c, 50, NextFit, 1)
	if err != nil {
		t.Fatal(err)
	}
	if low.Failed != 0 || low.Tasks != 3627 {
		t.Errorf("50 clients: %+v", low)
	}
	nf, err := RunLMS(c, 550, NextFit, 1)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := RunLMS(c, 550, PowerOfTwo, 1)
	if err != nil {
		t.Fatal(err)
	}
	if nf.HostsUsed >= p2.HostsUsed || nf.Failed <= p2.Failed || nf.SLAViolations <= p2.SLAViolations {
		t.Errorf("next-fit %+v vs power-of-two %+v: next-fit should pack onto fewer hosts and fail more", nf, p2)
	}
	// Figure 5's metric divides by the active hosts only, not by all 15.
	for _, r := range []LMSResult{nf, p2} {
		if r.HostsUsed == c.Hosts {
			continue
		}
		want := r.UtilAllHostsPct * float64(c.Hosts) / float64(r.HostsUsed)
		if math.Abs(r.UtilPct-want) > 1e-9*want || r.UtilPct <= r.UtilAllHostsPct {
			t.Errorf("%d active hosts of %d: utilisation %g%%, want the all-host %g%% × %d/%d = %g%%",
				r.HostsUsed, c.Hosts, r.UtilPct, r.UtilAllHostsPct, c.Hosts, r.HostsUsed, want)
		}
	}
	if nf.HostsUsed == c.Hosts {
		t.Errorf("next-fit used all %d hosts at 550 clients: the active-host check above tested nothing", c.Hosts)
	}
	if _, err := RunLMS(c, 0, NextFit, 1); err == nil {
		t.Error("0 clients accepted")
	}
	if _, err := RunLMS(c, 50, "worst-fit", 1); err == nil {
		t.Error("unknown method accepted")
	}
}

func TestEfficiencyBehaviour(t *testing.T) {
	c := DefaultEfficiency()
	p2, err := RunEfficiency(c, PowerOfTwo, 1)
	if err != nil {
		t.Fatal(err)
	}
	c.AbsorbByCapacity = true
	lit, err := RunEfficiency(c, PowerOfTwoMig, 1)
	if err != nil {
		t.Fatal(err)
	}
	last := len(c.Added) - 1
	if lit[last].HostsOff == 0 || lit[last].PowerW >= p2[last].PowerW {
		t.Errorf("capacity-only consolidation: %+v vs power-of-two %+v", lit[last], p2[last])
	}
	if p2[last].HostsOff != 0 || p2[last].Migrations != 0 {
		t.Errorf("power-of-two without migration moved or powered off: %+v", p2[last])
	}
	if got := percentile([]float64{1, 2, 3, 4, 5}, 50); got != 3 {
		t.Errorf("median %g", got)
	}
	if _, err := RunConsolidation(c, 0, 1); err == nil {
		t.Error("0 hours accepted")
	}
	if _, err := newPolicy(placement.FirstFit, 1); err != nil {
		t.Error(err)
	}
}

// TestPowerAgainstNextFit pins the measurement behind docs/seed004.md's
// power discussion, replicate by replicate. refuge's power-of-two draws
// more than next-fit in total (the paper: less) because next-fit leaves
// more demand unserved on overloaded hosts, where the curve is flat at
// 113 W: per core of demand served, power-of-two draws less, and with
// migration less still. Hosts the consolidation empties are off and draw
// nothing; with the paper's capacity-only check the total falls below
// next-fit's, the paper's order.
func TestPowerAgainstNextFit(t *testing.T) {
	c := DefaultEfficiency()
	last := len(c.Added) - 1
	curve := power.Default()
	run := func(c EfficiencyConfig, method string, seed uint64) EfficiencyPoint {
		t.Helper()
		pts, err := RunEfficiency(c, method, seed)
		if err != nil {
			t.Fatal(err)
		}
		p := pts[last]
		// Power accounting: every powered-on host here runs VMs, so the
		// hosts at 0 % are exactly the powered-off ones, and they draw 0 W.
		var w float64
		zero := 0
		for _, u := range p.Util {
			if u == 0 {
				zero++
				continue
			}
			w += curve.Watts(u / 100)
		}
		if zero != p.HostsOff || math.Abs(w-p.PowerW) > 1e-6 {
			t.Errorf("%s seed %d: %d hosts at 0 %%, %d off; %.1f W from the curve, %.1f W reported",
				method, seed, zero, p.HostsOff, w, p.PowerW)
		}
		return p
	}
	perCore := func(p EfficiencyPoint) float64 { return p.PowerW / p.ServedCores }
	capacity := c
	capacity.AbsorbByCapacity = true
	for seed := uint64(1); seed <= 5; seed++ {
		nf, p2, mig := run(c, NextFit, seed), run(c, PowerOfTwo, seed), run(c, PowerOfTwoMig, seed)
		lit := run(capacity, PowerOfTwoMig, seed)
		if nf.UnservedCores <= p2.UnservedCores {
			t.Errorf("seed %d: next-fit leaves %.2f cores unserved, power-of-two %.2f: want next-fit more",
				seed, nf.UnservedCores, p2.UnservedCores)
		}
		if !(perCore(mig) < perCore(p2) && perCore(p2) < perCore(nf)) {
			t.Errorf("seed %d: W per served core: next-fit %.3f, power-of-two %.3f, +migration %.3f: want decreasing",
				seed, perCore(nf), perCore(p2), perCore(mig))
		}
		if mig.HostsOff == 0 || mig.PowerW >= p2.PowerW {
			t.Errorf("seed %d: with migration %d hosts off, %.0f W; without %.0f W: want hosts off and less power",
				seed, mig.HostsOff, mig.PowerW, p2.PowerW)
		}
		if lit.HostsOff <= mig.HostsOff || lit.PowerW >= nf.PowerW {
			t.Errorf("seed %d: capacity-only check: %d hosts off, %.0f W; next-fit %.0f W: want more hosts off than refuge's %d and less than next-fit",
				seed, lit.HostsOff, lit.PowerW, nf.PowerW, mig.HostsOff)
		}
	}
}
