package executor

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/hypervisor/simhv"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/sim"
)

// A link that silently delivers a third of its capacity (degraded, or
// carrying traffic refuge does not see) makes the feedback controller cut
// what it admits to about what the link delivers; the reference stays the
// link's model capacity, so nothing grows meanwhile.
func TestControllerShrinksOnSilentDegradation(t *testing.T) {
	var b strings.Builder
	b.WriteString(`name: degrade
sites:
  - {name: a, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 64, memory_mib: 524288, nic_mbps: 40000}, {name: a2, vcpu: 64, memory_mib: 524288, nic_mbps: 40000}]}]}
  - {name: b, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 512, memory_mib: 4194304, nic_mbps: 40000}]}]}
links:
  - {name: ab, a: a, b: b, bandwidth_mbps: 9000, rtt_ms: 0.1}
vms:
`)
	for i := range 40 {
		fmt.Fprintf(&b, "  - {name: vm%02d, host: a%d, vcpu: 1, memory_mib: 8192, dirty_rate_mibps: 0}\n", i, i%2+1)
	}
	ix := indexOf(t, b.String())
	eng, cl := simulated(t, ix)
	pol := model.RefugePolicy()
	ex, err := New(Config{Index: ix, Policy: pol, Driver: cl, Clock: eng, Start: epoch})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(map[int]time.Duration{0: time.Hour}); err != nil {
		t.Fatal(err)
	}
	link := netpath.Resource{Kind: netpath.Link, ID: 0, Dir: 0}
	capModel := netpath.Capacity(ix, link, nil)
	eng.AfterFunc(20*time.Second, func() {
		if err := cl.SetLinkMbps(0, 3000); err != nil { // unannounced: the executor is not told
			t.Error(err)
		}
	})
	var before, after float64
	eng.AfterFunc(19*time.Second, func() { before = ex.units[unitKey{uLink, 0, 0}].est })
	eng.AfterFunc(60*time.Second, func() { after = ex.units[unitKey{uLink, 0, 0}].est })
	eng.Run()
	degraded := netpath.Capacity(ix, link, []float64{3000})
	t.Logf("admitted %.0f Mbit/s before, %.0f after; link %.0f, degraded %.0f", mbps(before), mbps(after), mbps(capModel), mbps(degraded))
	if math.Abs(before-capModel) > 0.01*capModel {
		t.Errorf("before the degradation the link admits %.0f Mbit/s, want its capacity %.0f", mbps(before), mbps(capModel))
	}
	// The controller probes upwards by a tenth of the capacity and falls
	// back to what the link delivers: within one probe of the degraded
	// capacity.
	if after > 1.05*degraded+0.1*capModel || after < 0.9*degraded {
		t.Errorf("after a silent 3× degradation the link admits %.0f Mbit/s, want about %.0f", mbps(after), mbps(degraded))
	}
	if st := statuses(ex.Report()); st[StatusMigrated] != 40 {
		t.Errorf("statuses %v, want all 40 migrated", st)
	}
}

// propertyCase is a drawn evacuation for the property tests: a generated
// federation on a new simulated cluster, its threatened sites' deadlines,
// and the refuge policy, with count limits or without.
type propertyCase struct {
	ix  *model.Index
	pol model.Policy
	dl  map[int]time.Duration
	eng *sim.Engine
	cl  *simhv.Cluster
}

func drawPropertyCase(rt *rapid.T) propertyCase {
	seed := rapid.Uint64Range(1, 1<<20).Draw(rt, "seed")
	fed, sc, err := fedgen.Case(fedgen.CaseOptions{Seed: seed, MaxHostsPerSite: 3, VMsPerHost: 6})
	if err != nil {
		rt.Fatal(err)
	}
	pc := propertyCase{ix: model.NewIndex(fed), pol: model.RefugePolicy(), dl: map[int]time.Duration{}}
	if rapid.Bool().Draw(rt, "countLimits") {
		c := &pc.pol.Concurrency
		c.PerHostOut = rapid.IntRange(1, 3).Draw(rt, "perHostOut")
		c.PerHostIn = rapid.IntRange(1, 3).Draw(rt, "perHostIn")
		c.PerLinkLimit = rapid.IntRange(1, 4).Draw(rt, "perLink")
		c.Global = rapid.IntRange(1, 8).Draw(rt, "global")
	}
	for _, th := range sc.Threats {
		pc.dl[pc.ix.SiteByName[th.Site]] = th.Deadline.D()
	}
	pc.eng, pc.cl = simulated(rt, pc.ix)
	return pc
}

// Property: over random federations, threats and the refuge policy, the
// executor never admits a migration onto a bandwidth resource that has
// less than half its demand free (beyond the slack) unless a quarter of
// the resource is free or it asks no more than its fair share there,
// never runs more migrations than a count limit allows, never migrates a
// VM twice, and every VM ends in exactly one place.
func TestPropertyAdmission(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		pc := drawPropertyCase(rt)
		ix, pol, eng, cl := pc.ix, pc.pol, pc.eng, pc.cl
		starts := map[string]int{}
		check := func(ev Event) {
			if ev.Kind == EvStart {
				starts[ev.VM]++
			}
		}
		admit := func(u *unit, d float64) {
			switch {
			case u.key.kind.bandwidth():
				if u.holders > 0 && u.free() < admissionShare*d-1 && u.free() < admissionIdle*u.est*(1+admissionSlack)-1 && d > u.est/float64(u.holders+1)+1 {
					rt.Fatalf("%s: admitted %.0f B/s with %.0f free of %.0f", netpath.Name(ix, u.res), d, u.free(), u.est)
				}
			case u.used+1 > u.est:
				rt.Fatalf("count limit %v: %v running, limit %v", u.key, u.used+1, u.est)
			}
		}
		ex, err := New(Config{Index: ix, Policy: pol, Driver: cl, Clock: eng, Start: epoch, OnEvent: check})
		if err != nil {
			rt.Fatal(err)
		}
		ex.admitted = admit
		if err := ex.Start(pc.dl); err != nil {
			rt.Fatal(err)
		}
		eng.Run()
		rep := ex.Report()
		for _, r := range rep.VMs {
			if r.Status == StatusMigrated && starts[r.Name] == 0 {
				rt.Fatalf("%s migrated without a start", r.Name)
			}
		}
		done := map[string]int{}
		for _, ev := range rep.Timeline {
			if ev.Kind == EvDone {
				done[ev.VM]++
				if done[ev.VM] > 1 {
					rt.Fatalf("%s migrated twice", ev.VM)
				}
			}
		}
		if err := cl.Check(); err != nil {
			rt.Fatalf("the federation is inconsistent: %v", err)
		}
		place := cl.Placement()
		for v, r := range rep.VMs {
			if rep.Placement[v] != place[v] {
				rt.Fatalf("%s: the executor places it on %d, the hypervisors on %d", r.Name, rep.Placement[v], place[v])
			}
		}
	})
}
