package planner

import (
	"fmt"
	"sort"
	"strings"

	"github.com/refuge-project/refuge/internal/netpath"
)

// longest returns the index of the first largest of xs (-1: none).
func longest(xs []float64) int {
	best := -1
	for i, x := range xs {
		if best < 0 || x > xs[best] {
			best = i
		}
	}
	return best
}

// bounds fills the plan's makespan, lower bound, bottleneck, resource
// loads and upper bound.
func (p *planner) bounds(plan *Plan, st *runState, atRisk []int) {
	makespan := 0.0
	for _, f := range st.finishes {
		makespan = max(makespan, f)
	}
	lower, bottleneck := 0.0, ""
	consider := func(t float64, name string) {
		if t > lower {
			lower, bottleneck = t, name
		}
	}
	for r, used := range p.used {
		if !used {
			continue
		}
		name := netpath.Name(p.ix, p.resource(r))
		t := p.busyR[r] + p.bytesR[r]/p.capR[r]
		consider(t, name)
		plan.Resources = append(plan.Resources, ResourceLoad{Name: name, Bytes: p.bytesR[r], CapacityBps: p.capR[r], Time: dur(t)})
	}
	for s, b := range p.egressBytes {
		if b == 0 {
			continue
		}
		name := "egress:" + p.fed.Sites[s].Name
		t := b / p.egressCap[s]
		consider(t, name)
		plan.Resources = append(plan.Resources, ResourceLoad{Name: name, Bytes: b, CapacityBps: p.egressCap[s], Time: dur(t)})
	}
	if i := longest(st.solos); i >= 0 {
		consider(st.solos[i], "solo:"+plan.Moves[i].Name)
	}
	// A site's egress load is a capacity-weighted mean of its links' loads,
	// so it can exceed the makespan only by rounding.
	plan.LowerBound = dur(min(lower, makespan))
	plan.Bottleneck = bottleneck
	plan.Makespan = dur(makespan)
	sort.SliceStable(plan.Resources, func(i, j int) bool {
		a, b := &plan.Resources[i], &plan.Resources[j]
		if a.Time != b.Time {
			return a.Time > b.Time
		}
		return a.Name < b.Name
	})
	plan.UpperBound = p.upperBound(atRisk)
}

// upperBound counts, per threatened site, the most at-risk VMs that could
// be saved at all, and sums over sites. A VM counts only if its host is up,
// it converges on some route, its least solo time fits before the deadline
// and some reachable safe host has room for it
// now; of those, the smallest (least bytes over its routes) are taken while
// their total fits through the site's egress capacity — and the NIC
// capacity of the safe hosts it reaches — before that time.
func (p *planner) upperBound(atRisk []int) int {
	bySite := map[int][]float64{}
	for _, v := range atRisk {
		pr := p.preOf(v)
		limit := (p.deadline[pr.site] - p.in.Now).Seconds()
		if !p.down[p.place[v]] && pr.converges && pr.fits && pr.minSolo <= limit*(1+tolerance) {
			bySite[pr.site] = append(bySite[pr.site], pr.minBytes)
		}
	}
	total := 0
	for _, s := range sortedSites(p.in.Deadlines) {
		sizes := bySite[s]
		limit := (p.deadline[s] - p.in.Now).Seconds()
		if len(sizes) == 0 || limit <= 0 {
			continue
		}
		nicIn := 0.0
		for _, rt := range p.routesFrom(s) {
			g := p.groups[rt.group]
			nicIn += g.capIn * float64(len(g.hosts))
		}
		budget := min(p.egressCap[s], nicIn) * limit * (1 + tolerance)
		sort.Float64s(sizes)
		sum := 0.0
		for _, b := range sizes {
			if sum += b; sum > budget {
				break
			}
			total++
		}
	}
	return total
}

// tolerance widens the upper bound's comparisons so that rounding in the
// plan's own sums cannot push it below the number of planned moves.
const tolerance = 1e-9

// warn adds plan-level warnings: services evacuated without (some of) the
// services they depend on, and moves predicted to be late.
func (p *planner) warn(plan *Plan, st *runState) {
	nS := len(p.fed.Services)
	moved := make([]int, nS)  // per service: moved VMs
	left := make([][]int, nS) // per service: unsaved VMs
	atRisk := make([]int, nS) // per service: at-risk VMs
	for _, m := range plan.Moves {
		if s := p.svcOf[m.VM]; s >= 0 {
			moved[s]++
			atRisk[s]++
		}
	}
	for _, u := range plan.Unsaved {
		if s := p.svcOf[u.VM]; s >= 0 {
			left[s] = append(left[s], u.VM)
			atRisk[s]++
		}
	}
	for s := range p.fed.Services {
		if moved[s] == 0 {
			continue
		}
		for _, dn := range p.fed.Services[s].DependsOn {
			d := p.ix.ServiceByName[dn] // checked by initPriorities
			if len(left[d]) == 0 {
				continue
			}
			var names []string
			for _, v := range left[d][:min(3, len(left[d]))] {
				names = append(names, p.fed.VMs[v].Name)
			}
			if len(left[d]) > 3 {
				names = append(names, "…")
			}
			plan.Warnings = append(plan.Warnings, fmt.Sprintf(
				"service %s is evacuated but its dependency %s is not: %d of its %d at-risk VMs stay behind (%s)",
				p.fed.Services[s].Name, dn, len(left[d]), atRisk[d], strings.Join(names, ", ")))
		}
	}
	if st.late > 0 {
		plan.Warnings = append(plan.Warnings, fmt.Sprintf(
			"%d of %d moves are predicted to finish after their deadline minus the safety margin (policy %q is not deadline-aware)",
			st.late, len(plan.Moves), p.in.Policy.Name))
	}
}
