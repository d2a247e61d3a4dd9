package placement

import (
	"slices"
	"sort"
)

// ConsolidationMove is one VM to migrate for consolidation.
type ConsolidationMove struct {
	VM   int `json:"vm"`
	From int `json:"from"`
	To   int `json:"to"`
}

// ConsolidationPlan is what a consolidation round should do.
type ConsolidationPlan struct {
	Moves []ConsolidationMove `json:"moves"`
	// Empty lists the hosts the moves empty; power them off once their
	// VMs have left.
	Empty []int `json:"empty"`
	// Idle lists powered-on hosts that are empty already and may be
	// powered off at once (beyond the spare ones kept on).
	Idle []int `json:"idle"`
}

// ConsolidationOptions tune PlanConsolidation.
type ConsolidationOptions struct {
	// SpareHosts is how many empty powered-on eligible hosts to keep on
	// (per site) for quick placement.
	SpareHosts int
	// MaxMoves caps the migrations of one round (0: no cap). Hosts are
	// emptied whole or not at all.
	MaxMoves int
	// SameSite keeps consolidation within a site (a LAN move), which is
	// what refuge does: consolidating across a WAN costs more than it saves.
	SameSite bool
}

// PlanConsolidation finds hosts whose VMs can all move elsewhere and
// returns the moves that empty them. Sources are powered-on eligible
// hosts, least loaded first; every VM of a source must find a
// destination — a powered-on eligible host that already runs VMs (never
// one on a threatened site, which the State marks ineligible), not a
// source emptied in this round — that keeps the State's headroom, or the
// source is left alone.
// Destinations are chosen best-fit (the most loaded host that can take the
// VM), biggest VMs first. s is not modified.
func PlanConsolidation(s *State, o ConsolidationOptions) ConsolidationPlan {
	w := s.clone()
	var plan ConsolidationPlan
	n := len(w.Hosts)
	emptied := make([]bool, n)
	receiver := make([]bool, n)
	var sources []int
	for h := range n {
		if !w.Hosts[h].Off && !w.Hosts[h].Ineligible && len(w.on[h]) > 0 {
			sources = append(sources, h)
		}
	}
	sort.SliceStable(sources, func(i, j int) bool {
		a, b := sources[i], sources[j]
		if w.Util(a) != w.Util(b) {
			return w.Util(a) < w.Util(b)
		}
		return len(w.on[a]) < len(w.on[b])
	})
	for _, src := range sources {
		if receiver[src] {
			continue // it took VMs in this round: keep it
		}
		vms := w.VMsOn(src)
		if o.MaxMoves > 0 && len(plan.Moves)+len(vms) > o.MaxMoves {
			continue
		}
		sort.SliceStable(vms, func(i, j int) bool {
			a, b := &w.VMs[vms[i]], &w.VMs[vms[j]]
			if a.MemoryMiB != b.MemoryMiB {
				return a.MemoryMiB > b.MemoryMiB
			}
			return vms[i] < vms[j]
		})
		var moved []ConsolidationMove
		ok := true
		for _, v := range vms {
			dst := w.bestDestination(v, src, emptied, o.SameSite)
			if dst < 0 {
				ok = false
				break
			}
			w.detach(v)
			w.attach(v, dst)
			moved = append(moved, ConsolidationMove{VM: v, From: src, To: dst})
		}
		if !ok {
			for i := len(moved) - 1; i >= 0; i-- { // roll back
				w.detach(moved[i].VM)
				w.attach(moved[i].VM, src)
			}
			continue
		}
		emptied[src] = true
		for _, m := range moved {
			receiver[m.To] = true
		}
		plan.Moves = append(plan.Moves, moved...)
		plan.Empty = append(plan.Empty, src)
	}
	// Already-empty powered-on hosts: keep SpareHosts per site on.
	spare := map[int]int{}
	for h := range n {
		hh := &w.Hosts[h]
		if hh.Off || hh.Ineligible || len(s.on[h]) > 0 || len(w.on[h]) > 0 {
			continue
		}
		if spare[hh.Site] < o.SpareHosts {
			spare[hh.Site]++
			continue
		}
		plan.Idle = append(plan.Idle, h)
	}
	slices.Sort(plan.Empty)
	return plan
}

// bestDestination returns the most loaded host that runs VMs already and
// can take VM v from src within the headroom, or -1. Empty hosts are no
// destinations: moving a host's VMs to an empty one frees nothing.
func (s *State) bestDestination(v, src int, emptied []bool, sameSite bool) int {
	vm := &s.VMs[v]
	best, bestLoad := -1, 0.0
	for h := range s.Hosts {
		if h == src || emptied[h] || len(s.on[h]) == 0 || (sameSite && s.Hosts[h].Site != s.Hosts[src].Site) {
			continue
		}
		if !s.canTake(h, vm.VCPU, vm.MemoryMiB, vm.Load, 1) {
			continue
		}
		if l := s.Util(h); best < 0 || l > bestLoad {
			best, bestLoad = h, l
		}
	}
	return best
}

// clone returns a deep copy of s.
func (s *State) clone() *State {
	c := &State{
		cfg:      s.cfg,
		Hosts:    append([]Host(nil), s.Hosts...),
		VMs:      append([]VM(nil), s.VMs...),
		usedVCPU: append([]int(nil), s.usedVCPU...),
		usedMem:  append([]int64(nil), s.usedMem...),
		load:     append([]float64(nil), s.load...),
		on:       make([][]int, len(s.on)),
		pos:      append([]int(nil), s.pos...),
	}
	for h := range s.on {
		c.on[h] = append([]int(nil), s.on[h]...)
	}
	return c
}
