package planner

import (
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
)

// drawInput draws a random generated federation and a random situation:
// threatened sites and deadlines, the current time, a policy (refuge's or a
// baseline's, with varied parameters), down hosts, degraded or cut links,
// frozen VMs with reservations, and busy resources.
func drawInput(t *rapid.T) Input {
	hosts := rapid.IntRange(2, 40).Draw(t, "hosts")
	f, err := fedgen.Generate(fedgen.Options{
		Sites:      rapid.IntRange(1, min(hosts, 8)).Draw(t, "sites"),
		Hosts:      hosts,
		VMs:        rapid.IntRange(1, 300).Draw(t, "vms"),
		Seed:       rapid.Uint64().Draw(t, "fedSeed"),
		MemoryFill: rapid.Float64Range(0.1, 1).Draw(t, "fill"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ix := model.NewIndex(f)
	r := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "situationSeed"), 1))
	in := Input{Index: ix, Deadlines: map[int]time.Duration{}}
	for s := range f.Sites {
		if r.IntN(3) == 0 || (s == 0 && rapid.Bool().Draw(t, "threatenFirst")) {
			in.Deadlines[s] = time.Duration(10+r.IntN(3600)) * time.Second
		}
	}
	if len(in.Deadlines) == len(f.Sites) && r.IntN(4) > 0 {
		delete(in.Deadlines, len(f.Sites)-1) // mostly keep a refuge
	}
	in.Now = time.Duration(rapid.IntRange(0, 300).Draw(t, "now")) * time.Second
	pol, err := model.PolicyByName(rapid.SampledFrom(model.PolicyNames()).Draw(t, "policy"))
	if err != nil {
		t.Fatal(err)
	}
	pol.VCPUOvercommit = rapid.SampledFrom([]float64{0, 1, 2, 4}).Draw(t, "overcommit")
	pol.DeadlineAware = rapid.Bool().Draw(t, "deadlineAware")
	pol.Migration.AutoConverge = rapid.Bool().Draw(t, "autoConverge")
	pol.Migration.MaxBandwidthMiBps = rapid.SampledFrom([]float64{0, 32, 128, 1000}).Draw(t, "maxBandwidth")
	pol.Migration.ParallelConnections = rapid.IntRange(0, 4).Draw(t, "connections")
	// Destination-side and per-link count limits enter the search's
	// bound (the trees' per_host_in term).
	pol.Concurrency.PerHostIn = rapid.SampledFrom([]int{0, 0, 1, 2}).Draw(t, "perHostIn")
	pol.Concurrency.PerLinkLimit = rapid.SampledFrom([]int{pol.Concurrency.PerLinkLimit, 1, 3}).Draw(t, "perLink")
	in.Policy = pol
	if rapid.Bool().Draw(t, "someHostsDown") {
		in.HostDown = make([]bool, len(ix.Hosts))
		for h := range in.HostDown {
			in.HostDown[h] = r.IntN(8) == 0
		}
	}
	if rapid.Bool().Draw(t, "linksChanged") {
		in.LinkMbps = make([]float64, len(f.Links))
		for l := range in.LinkMbps {
			in.LinkMbps[l] = []float64{0, f.Links[l].BandwidthMbps / 10, f.Links[l].BandwidthMbps}[r.IntN(3)]
		}
	}
	if rapid.Bool().Draw(t, "inFlight") {
		in.Frozen = make([]bool, len(f.VMs))
		for v := range in.Frozen {
			if r.IntN(10) == 0 {
				in.Frozen[v] = true
				if r.IntN(2) == 0 {
					in.Reserved = append(in.Reserved, Reservation{VM: v, Host: r.IntN(len(ix.Hosts))})
				}
			}
		}
		in.Busy = map[netpath.Resource]time.Duration{}
		for range r.IntN(4) {
			res := netpath.Resource{Kind: netpath.HostIn, ID: r.IntN(len(ix.Hosts))}
			if len(f.Links) > 0 && r.IntN(2) == 0 {
				res = netpath.Resource{Kind: netpath.Link, ID: r.IntN(len(f.Links)), Dir: r.IntN(2)}
			}
			in.Busy[res] = time.Duration(r.IntN(200)) * time.Second
		}
	}
	return in
}

// footprint is what a set of VMs needs from one host.
type footprint struct {
	mem, disk int64
	cpu       float64
	groups    map[string]int
}

func (fp *footprint) add(vm *model.VM) {
	fp.mem += vm.MemoryMiB
	fp.cpu += float64(vm.VCPU)
	if vm.CopiesDisk() {
		fp.disk += vm.DiskGiB
	}
	if vm.AntiAffinity != "" {
		if fp.groups == nil {
			fp.groups = map[string]int{}
		}
		fp.groups[vm.AntiAffinity]++
	}
}

// fataler is what checkPlan needs of *testing.T and *rapid.T.
type fataler interface {
	Fatalf(format string, args ...any)
}

// checkPlan verifies the invariants every plan must satisfy.
func checkPlan(t fataler, in Input, p *Plan) {
	ix := in.Index
	f := ix.Fed
	place := in.Placement
	if place == nil {
		place = ix.VMHost
	}
	down := func(h int) bool { return in.HostDown != nil && in.HostDown[h] }
	frozen := func(v int) bool { return in.Frozen != nil && in.Frozen[v] }
	atRisk := map[int]bool{}
	for v, h := range place {
		if _, threatened := in.Deadlines[ix.HostSite(h)]; h >= 0 && threatened && !frozen(v) {
			atRisk[v] = true
		}
	}
	if p.AtRisk != len(atRisk) {
		t.Fatalf("AtRisk %d, want %d", p.AtRisk, len(atRisk))
	}
	seen := map[int]string{}
	for _, m := range p.Moves {
		if prev, dup := seen[m.VM]; dup {
			t.Fatalf("VM %s appears twice (%s and move)", m.Name, prev)
		}
		seen[m.VM] = "move"
	}
	for _, u := range p.Unsaved {
		if prev, dup := seen[u.VM]; dup {
			t.Fatalf("VM %s appears twice (%s and unsaved %s)", u.Name, prev, u.Code)
		}
		seen[u.VM] = "unsaved"
		if u.Code == "" || u.Reason == "" {
			t.Fatalf("unsaved %+v lacks a code or reason", u)
		}
	}
	if len(seen) != len(atRisk) {
		t.Fatalf("%d VMs in the plan, %d at risk", len(seen), len(atRisk))
	}
	for v := range seen {
		if !atRisk[v] {
			t.Fatalf("VM %s is in the plan but not at risk", f.VMs[v].Name)
		}
	}
	// Capacity: what each host ends up holding, counting placed VMs,
	// reservations and moves.
	ratio := in.Policy.VCPUOvercommit
	if ratio == 0 {
		ratio = 1
	}
	load := make([]footprint, len(ix.Hosts))
	for v, h := range place {
		if h >= 0 {
			load[h].add(&f.VMs[v])
		}
	}
	for _, r := range in.Reserved {
		load[r.Host].add(&f.VMs[r.VM])
	}
	// Deadline-aware plans finish every move by its deadline (moves within
	// the safety margin come after all the others: opportunistic).
	limit := func(s int) time.Duration { return in.Deadlines[s] }
	for _, m := range p.Moves {
		vm := &f.VMs[m.VM]
		if m.From != place[m.VM] || m.Name != vm.Name {
			t.Fatalf("move %+v does not start where %s runs (%d)", m, vm.Name, place[m.VM])
		}
		if _, threatened := in.Deadlines[ix.HostSite(m.To)]; threatened || down(m.To) {
			t.Fatalf("move %s goes to %s, which is threatened or down", m.Name, m.ToHost)
		}
		if vm.AntiAffinity != "" && load[m.To].groups[vm.AntiAffinity] > 0 {
			t.Fatalf("move %s joins a VM of anti-affinity group %s on %s", m.Name, vm.AntiAffinity, m.ToHost)
		}
		load[m.To].add(vm)
		h := ix.Host(m.To)
		if fp := &load[m.To]; fp.mem > h.MemoryMiB || fp.cpu > float64(h.VCPU)*ratio || (vm.CopiesDisk() && fp.disk > h.DiskGiB) {
			t.Fatalf("move %s overcommits %s: %+v of %d MiB, %d vCPU x %g, %d GiB", m.Name, m.ToHost, fp, h.MemoryMiB, h.VCPU, ratio, h.DiskGiB)
		}
		if m.PredStart < in.Now || m.PredStart > m.PredFinish || m.PredFinish < in.Now+m.Solo || m.Reason == "" {
			t.Fatalf("move %+v: bad times or no reason (now %v)", m, in.Now)
		}
		if in.Policy.DeadlineAware && m.PredFinish > limit(ix.HostSite(m.From)) {
			t.Fatalf("deadline-aware plan moves %s to finish at %v, after %v", m.Name, m.PredFinish, limit(ix.HostSite(m.From)))
		}
	}
	if p.LowerBound > p.Makespan {
		t.Fatalf("lower bound %v > makespan %v", p.LowerBound, p.Makespan)
	}
	if len(p.Moves) > 0 && (p.LowerBound <= 0 || p.Bottleneck == "") {
		t.Fatalf("moves but lower bound %v (%q)", p.LowerBound, p.Bottleneck)
	}
	if in.Policy.DeadlineAware && len(p.Moves) > p.UpperBound {
		t.Fatalf("%d moves > upper bound %d", len(p.Moves), p.UpperBound)
	}
	if p.UpperBound > p.AtRisk {
		t.Fatalf("upper bound %d > %d at risk", p.UpperBound, p.AtRisk)
	}
}

func TestPlanProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := drawInput(t)
		p, err := Compute(in)
		if err != nil {
			t.Fatalf("Compute: %v", err)
		}
		checkPlan(t, in, p)
		again, err := Compute(in)
		if err != nil || !reflect.DeepEqual(p, again) {
			t.Fatalf("Compute is not deterministic (err %v)", err)
		}
		if err := Explain(io.Discard, in.Index, p); err != nil {
			t.Fatalf("Explain: %v", err)
		}
	})
}

// naiveSearch is the destination rule written as a scan of every host: the
// feasible host with the earliest predicted finish, then the most free
// memory, then the lowest index.
func naiveSearch(p *planner, v int) cand {
	src := p.place[v]
	out := p.outRes(src)
	n := p.needOf(v)
	var best cand
	for k, rt := range p.routesFrom(p.ix.HostSite(src)) {
		e := p.estimateOn(v, k)
		if !e.ok {
			continue
		}
		a := e.solo + rt.setup
		a = max(a, p.busyR[out]+(p.bytesR[out]+e.bytes)/p.capR[out])
		for _, r := range rt.links {
			a = max(a, p.busyR[r]+(p.bytesR[r]+e.bytes)/p.capR[r])
		}
		slot, _ := p.slotTerm(src, -1, rt.links, e.solo+rt.setup)
		a = max(a, slot)
		g := p.groups[rt.group]
		for _, h := range g.hosts {
			if p.freeMem[h] < n.mem || p.freeVCPU[h] < n.cpu || (n.disk > 0 && p.freeDisk[h] < n.disk) || p.blocked(h, &n) {
				continue
			}
			in := p.inRes(h)
			f := max(a, p.busyR[in]+p.bytesR[in]/p.capR[in]+e.bytes/g.capIn)
			if n := p.in.Policy.Concurrency.PerHostIn; n > 0 {
				f = max(f, p.slotInTerm(h)+(e.solo+rt.setup)/float64(n))
			}
			if f > p.transitLimit(&rt) {
				continue
			}
			if !best.ok || f < best.f || (f == best.f && (p.freeMem[h] > best.free || (p.freeMem[h] == best.free && h < best.host))) {
				best = cand{ok: true, f: f, free: p.freeMem[h], host: h, route: k, est: e}
			}
		}
	}
	return best
}

// The tree search must find exactly the host a scan of all hosts finds.
func TestSearchMatchesScan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := drawInput(t)
		p, err := newPlanner(in)
		if err != nil {
			t.Fatalf("newPlanner: %v", err)
		}
		var atRisk []int
		for v, h := range p.place {
			if h >= 0 && !p.in.Frozen[v] && p.threatened[p.ix.HostSite(h)] {
				atRisk = append(atRisk, v)
			}
		}
		p.prepare(atRisk)
		p.markPressure(atRisk)
		plan := &Plan{}
		st := &runState{lateF: make([]float64, p.nVM)}
		for _, v := range p.queue(atRisk) {
			if !p.down[p.place[v]] && len(p.groups) > 0 && p.preOf(v).converges {
				got, want := p.search(v, searchOpts{watch: true}, math.Inf(1)), naiveSearch(p, v)
				if got.ok != want.ok || got.host != want.host || got.f != want.f || got.route != want.route {
					t.Fatalf("VM %s: search found %+v, a scan %+v", p.fed.VMs[v].Name, got, want)
				}
			}
			p.planVM(v, plan, st)
		}
	})
}

// FuzzCompute feeds Compute odd situations — any time, link bandwidths,
// overcommit ratio, down hosts and busy times, valid or not — and checks
// that it either rejects the input or returns a plan that keeps every
// invariant, without panicking.
func FuzzCompute(f *testing.F) {
	f.Add(uint64(1), int64(0), 1.0, 4.0, uint64(0), int64(0), true)
	f.Add(uint64(2), int64(600), 0.0, 0.0, uint64(0xff), int64(30), false)
	f.Add(uint64(3), int64(-5), -1.0, -2.0, uint64(1), int64(-1), true)
	f.Fuzz(func(t *testing.T, seed uint64, nowSec int64, linkScale, overcommit float64, downMask uint64, busySec int64, aware bool) {
		fed, err := fedgen.Generate(fedgen.Options{Hosts: 12, VMs: 120, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		ix := model.NewIndex(fed)
		pol := model.RefugePolicy()
		pol.VCPUOvercommit, pol.DeadlineAware = overcommit, aware
		in := Input{Index: ix, Policy: pol, Now: time.Duration(nowSec) * time.Second,
			Deadlines: map[int]time.Duration{0: 20 * time.Minute},
			HostDown:  make([]bool, len(ix.Hosts)),
			LinkMbps:  make([]float64, len(fed.Links)),
			Busy:      map[netpath.Resource]time.Duration{{Kind: netpath.HostIn, ID: int(seed % uint64(len(ix.Hosts)))}: time.Duration(busySec) * time.Second},
		}
		for h := range in.HostDown {
			in.HostDown[h] = downMask&(1<<(h%64)) != 0
		}
		for l := range in.LinkMbps {
			in.LinkMbps[l] = fed.Links[l].BandwidthMbps * linkScale
		}
		p, err := Compute(in)
		if err != nil {
			return
		}
		checkPlan(t, in, p)
		if err := Explain(io.Discard, ix, p); err != nil {
			t.Fatal(err)
		}
	})
}
