package planner

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/model"
)

// prioInfo is a VM's effective priority: its own, or that of the most
// important VM whose service transitively depends on its service.
type prioInfo struct {
	eff  int
	from int // the VM the priority is inherited from; -1 for its own
}

// prioVM is a priority and the VM that has it (-1: none).
type prioVM struct{ prio, vm int }

// higher returns the more important of a and b: higher priority, then the
// VM listed first.
func higher(a, b prioVM) prioVM {
	switch {
	case a.vm < 0:
		return b
	case b.vm < 0:
		return a
	case a.prio != b.prio:
		if a.prio > b.prio {
			return a
		}
		return b
	case b.vm < a.vm:
		return b
	}
	return a
}

// initPriorities computes every VM's effective priority and dependency
// depth (0 for a service without dependencies, 1 + the deepest dependency
// otherwise), checking the service graph.
func (p *planner) initPriorities() error {
	svcs := p.fed.Services
	nS := len(svcs)
	svcOf := make([]int, p.nVM)
	p.svcOf = svcOf
	own := make([]prioVM, nS) // the most important VM of each service
	for s := range own {
		own[s] = prioVM{vm: -1}
	}
	for v := range p.fed.VMs {
		vm := &p.fed.VMs[v]
		s := p.ix.VMService[v]
		svcOf[v] = s
		if s < 0 {
			if vm.Service != "" {
				return fmt.Errorf("VM %s names unknown service %q", vm.Name, vm.Service)
			}
			continue
		}
		if s >= nS {
			return fmt.Errorf("VM %s: service index %d out of range (stale index)", vm.Name, s)
		}
		own[s] = higher(own[s], prioVM{vm.Priority, v})
	}
	deps := make([][]int, nS)
	dependants := make([][]int, nS)
	for i := range svcs {
		for _, d := range svcs[i].DependsOn {
			j, ok := p.ix.ServiceByName[d]
			if !ok || j >= nS {
				return fmt.Errorf("service %s depends on unknown service %q", svcs[i].Name, d)
			}
			deps[i] = append(deps[i], j)
			dependants[j] = append(dependants[j], i)
		}
	}
	inherited, err := walk(svcs, dependants, prioVM{vm: -1}, func(acc prioVM, d int, sub prioVM) prioVM {
		return higher(acc, higher(own[d], sub))
	})
	if err != nil {
		return err
	}
	depthOf, err := walk(svcs, deps, 0, func(acc, _, sub int) int { return max(acc, sub+1) })
	if err != nil {
		return err
	}
	p.prio = make([]prioInfo, p.nVM)
	p.depth = make([]int, p.nVM)
	for v := range p.fed.VMs {
		p.prio[v] = prioInfo{eff: p.fed.VMs[v].Priority, from: -1}
		s := svcOf[v]
		if s < 0 {
			continue
		}
		p.depth[v] = depthOf[s]
		if in := inherited[s]; in.vm >= 0 && in.prio > p.prio[v].eff {
			p.prio[v] = prioInfo{eff: in.prio, from: in.vm}
		}
	}
	return nil
}

// walk folds, for every service, the values of the services it reaches
// through edges (transitively, each reached service's value being folded
// first), starting from zero; it reports a cycle as an error.
func walk[T any](svcs []model.Service, edges [][]int, zero T, fold func(acc T, next int, sub T) T) ([]T, error) {
	const (
		unseen = iota
		active
		done
	)
	state := make([]uint8, len(svcs))
	out := make([]T, len(svcs))
	var visit func(s int) error
	visit = func(s int) error {
		switch state[s] {
		case active:
			return fmt.Errorf("service dependency cycle through %s", svcs[s].Name)
		case done:
			return nil
		}
		state[s] = active
		acc := zero
		for _, n := range edges[s] {
			if err := visit(n); err != nil {
				return err
			}
			acc = fold(acc, n, out[n])
		}
		out[s] = acc
		state[s] = done
		return nil
	}
	for s := range svcs {
		if err := visit(s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// queue returns the at-risk VMs in the order they are planned. FIFO keeps
// inventory order. Priority order sorts by effective priority (higher
// first), deadline (earlier first), dependency depth (dependencies first),
// predicted bytes (fewer first, so that more VMs fit) and name. Deadline
// order sorts by deadline, then priority density (effective priority over
// least bytes: with equal priorities the smallest first, which saves the
// most VMs through a bottleneck), then dependency depth and name.
func (p *planner) queue(atRisk []int) []int {
	q := append([]int(nil), atRisk...)
	if p.in.Policy.Order == model.OrderFIFO {
		return q
	}
	type key struct {
		prio     int
		deadline time.Duration
		depth    int
		bytes    float64
		// density: priority per byte (a VM without priority counts as 1).
		density float64
		name    string
		vm      int
	}
	keys := make([]key, len(q))
	fill := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := q[i]
			pr := p.preOf(v)
			k := key{prio: p.prio[v].eff, deadline: p.deadline[pr.site], depth: p.depth[v], name: p.fed.VMs[v].Name, vm: v}
			if pr.converges {
				k.bytes = pr.minBytes
			} else {
				k.bytes = pr.pauseBytes
			}
			k.density = float64(max(k.prio, 1)) / max(k.bytes, 1)
			keys[i] = k
		}
	}
	byDeadline := p.in.Policy.Order == model.OrderDeadline
	sortParallel(keys, fill, func(a, b key) int {
		if byDeadline {
			// Earliest deadline, then priority density, then
			// dependencies.
			switch {
			case a.deadline != b.deadline:
				return cmp.Compare(a.deadline, b.deadline)
			case p.largestFirst && a.bytes != b.bytes:
				return cmp.Compare(b.bytes, a.bytes)
			case a.density != b.density:
				return cmp.Compare(b.density, a.density)
			case a.depth != b.depth:
				return cmp.Compare(a.depth, b.depth)
			}
		} else {
			switch {
			case a.prio != b.prio:
				return cmp.Compare(b.prio, a.prio)
			case a.deadline != b.deadline:
				return cmp.Compare(a.deadline, b.deadline)
			case a.depth != b.depth:
				return cmp.Compare(a.depth, b.depth)
			case a.bytes != b.bytes:
				return cmp.Compare(a.bytes, b.bytes)
			}
		}
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return cmp.Compare(a.vm, b.vm)
	})
	for i := range keys {
		q[i] = keys[i].vm
	}
	return q
}

// sortParallel fills xs (fill(i, j) sets xs[i:j]) and sorts it by cmp,
// which must be a total order (then the result is the one slices.SortFunc
// gives): large slices as two halves filled and sorted at once, then
// merged.
func sortParallel[T any](xs []T, fill func(i, j int), cmp func(a, b T) int) {
	if len(xs) < parallelPrepareMin || runtime.GOMAXPROCS(0) < 2 {
		fill(0, len(xs))
		slices.SortFunc(xs, cmp)
		return
	}
	mid := len(xs) / 2
	lo, hi := xs[:mid], xs[mid:]
	var wg sync.WaitGroup
	wg.Go(func() {
		fill(0, mid)
		slices.SortFunc(lo, cmp)
	})
	fill(mid, len(xs))
	slices.SortFunc(hi, cmp)
	wg.Wait()
	merged := make([]T, 0, len(xs))
	i, j := 0, 0
	for i < len(lo) && j < len(hi) {
		if cmp(hi[j], lo[i]) < 0 {
			merged = append(merged, hi[j])
			j++
		} else {
			merged = append(merged, lo[i])
			i++
		}
	}
	merged = append(append(merged, lo[i:]...), hi[j:]...)
	copy(xs, merged)
}
