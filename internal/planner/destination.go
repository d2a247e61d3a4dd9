package planner

import (
	"fmt"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/placement"
)

// Destinations chosen by a placement policy (model.Policy.Placement other
// than earliest-finish): the policy picks among the safe, up hosts that
// are reachable on a route the VM converges on and have room; the plan
// then predicts the move on that host's route as usual.

// destSeed seeds power-of-two's choices: fixed, so that Compute stays a
// pure function of its input.
const destSeed = 1

// setPlacement creates the destination policy (nil: earliest finish).
func (p *planner) setPlacement(name string) error {
	if name == "" || name == model.PlacementEarliestFinish {
		return nil
	}
	pol, err := placement.New(name, placement.Options{Seed: destSeed, NoConsolidation: true})
	if err != nil {
		return fmt.Errorf("policy %q: placement: %w", p.in.Policy.Name, err)
	}
	p.dest = pol
	return nil
}

// destView shows the planner's hosts to a placement policy for one VM.
type destView struct {
	p *planner
	n need
	// routeOf[g] is the route (index into routesFrom) to group g the VM
	// converges on, or -1.
	routeOf []int
}

func (d *destView) NumHosts() int { return d.p.nHost }

func (d *destView) Fits(h int, r placement.Request) bool {
	p := d.p
	g := p.hostGroup[h]
	return g >= 0 && d.routeOf[g] >= 0 && p.freeMem[h] >= d.n.mem && p.freeVCPU[h] >= d.n.cpu &&
		(d.n.disk == 0 || p.freeDisk[h] >= d.n.disk) && !p.blocked(h, &d.n)
}

func (d *destView) Off(int) bool { return false }

// Util is the share of the host's vCPU allowance already committed (the
// planner knows no CPU load).
func (d *destView) Util(h int) float64 {
	capacity := float64(d.p.ix.Host(h).VCPU) * d.p.vcpuRatio
	return 1 - d.p.freeVCPU[h]/capacity
}

func (d *destView) FreeMemMiB(h int) int64 { return d.p.freeMem[h] }

// searchWithPolicy is search for a placement policy.
func (p *planner) searchWithPolicy(v int) cand {
	src := p.place[v]
	d := &destView{p: p, n: p.needOf(v), routeOf: make([]int, len(p.groups))}
	for g := range d.routeOf {
		d.routeOf[g] = -1
	}
	for k, rt := range p.routesFrom(p.ix.HostSite(src)) {
		if d.routeOf[rt.group] < 0 && p.estimateOn(v, k).ok {
			d.routeOf[rt.group] = k
		}
	}
	vm := &p.fed.VMs[v]
	dec, err := p.dest.Place(d, placement.Request{Name: vm.Name, VCPU: max(vm.VCPU, 1), MemoryMiB: max(vm.MemoryMiB, 1)})
	if err != nil {
		return cand{}
	}
	h := dec.Host
	k := d.routeOf[p.hostGroup[h]]
	return cand{ok: true, free: p.freeMem[h], host: h, route: k, est: p.estimateOn(v, k)}
}
