package seed004

import (
	"encoding/json"
	"math"
	"testing"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/placement"
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
	// Balance: master-slave and Level 1 match the paper exactly.
	for _, c := range []struct {
		m    string
		n, v float64
	}{{MasterSlave, 5, 12.24}, {MasterSlave, 10, 49.75}, {QueenL1, 5, 2.22}, {QueenL1, 10, 4.74}} {
		if v := got[key{FigBalance, c.m, "board_n", c.n}].Value; v != c.v {
			t.Errorf("balance %s N=%g = %g, want %g", c.m, c.n, v, c.v)
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
