package bound

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Term is one constraint's bound on what can be saved. Names: "vms" (the
// candidates themselves), "nic-out" (each source host's NIC), "nic-in" (the
// receiving NICs), "memory" (the free memory of the safe hosts), "flow" (a
// maximum flow through NICs and links), "count" (the priority bound only:
// the highest priorities of as many VMs as can be saved).
type Term struct {
	Name     string  `json:"name"`
	Count    int     `json:"count"`
	Priority float64 `json:"priority"`
}

// SiteSaved is the bound for one threatened site on its own.
type SiteSaved struct {
	Site string `json:"site"`
	// Window is the time to the site's deadline.
	Window time.Duration `json:"window"`
	// AtRisk counts the VMs on the site (on any host, up or down); Movable
	// those that could move at all; Candidates those whose least time fits
	// the window.
	AtRisk     int `json:"at_risk"`
	Movable    int `json:"movable"`
	Candidates int `json:"candidates"`
	// Count and Priority are the site's bounds, and Binding and
	// PriorityBinding the terms that set them.
	Count           int     `json:"count"`
	Binding         string  `json:"binding"`
	Priority        float64 `json:"priority"`
	PriorityBinding string  `json:"priority_binding"`
	Terms           []Term  `json:"terms"`
}

// Saved bounds the VMs any schedule can save before their sites' deadlines.
type Saved struct {
	AtRisk         int `json:"at_risk"`
	PriorityAtRisk int `json:"priority_at_risk"`
	// Count is the most VMs any schedule can save, and Binding says which
	// constraint sets it ("per site (…)" or "union of … : term").
	Count   int    `json:"count"`
	Binding string `json:"binding"`
	// Priority is the largest total priority (model.VM.Priority) any
	// schedule can save, and PriorityBinding the constraint that sets it.
	Priority        int         `json:"priority"`
	PriorityBinding string      `json:"priority_binding"`
	Sites           []SiteSaved `json:"sites"`
}

// tolerance absorbs floating-point rounding in the budget tests.
const tolerance = 1e-9

// countFitting returns the largest number of the weights whose sum fits the
// budget: the smallest ones first.
func countFitting(weights []float64, budget float64) int {
	w := append([]float64(nil), weights...)
	sort.Float64s(w)
	limit := budget * (1 + tolerance)
	var sum float64
	for i, x := range w {
		sum += x
		if sum > limit {
			return i
		}
	}
	return len(w)
}

// item is a VM as a knapsack item.
type item struct{ value, weight float64 }

// fractionalKnapsack returns the optimum of the knapsack's LP relaxation:
// items by value per weight, the last one in part. Every integral choice
// that fits the budget is worth at most this much.
func fractionalKnapsack(items []item, budget float64) float64 {
	its := append([]item(nil), items...)
	sort.Slice(its, func(i, j int) bool {
		// a/b > c/d without dividing (weights may be 0).
		return its[i].value*its[j].weight > its[j].value*its[i].weight
	})
	left := budget * (1 + tolerance)
	var total float64
	for _, it := range its {
		switch {
		case it.value <= 0:
		case it.weight <= left:
			total += it.value
			left -= it.weight
		default:
			return total + it.value*left/it.weight
		}
	}
	return total
}

// topValues returns the sum of the n largest values.
func topValues(values []float64, n int) float64 {
	v := append([]float64(nil), values...)
	sort.Sort(sort.Reverse(sort.Float64Slice(v)))
	var sum float64
	for i := 0; i < n && i < len(v); i++ {
		sum += v[i]
	}
	return sum
}

// budgetTerms evaluates the constraints a group of candidates shares over
// window seconds: "vms", optionally "nic-out" per source host, "nic-in",
// "memory" and "flow". The moves' bytes flow only after their set-up, so the
// byte budgets cover the window less the group's least set-up.
func (st *state) budgetTerms(g group, window float64, perHost bool) []Term {
	if len(g) == 0 {
		return []Term{{Name: "vms"}}
	}
	span := math.Max(0, window-g.minSetup().Seconds())
	bytes := make([]float64, len(g))
	mems := make([]float64, len(g))
	byBytes := make([]item, len(g))
	byMem := make([]item, len(g))
	var prio float64
	for i, v := range g {
		bytes[i], mems[i] = v.Bytes, v.MemoryBytes
		byBytes[i] = item{float64(v.Priority), v.Bytes}
		byMem[i] = item{float64(v.Priority), v.MemoryBytes}
		prio += float64(v.Priority)
	}
	terms := []Term{{Name: "vms", Count: len(g), Priority: prio}}
	if perHost {
		hosts := map[int]group{}
		var order []int
		for _, v := range g {
			if hosts[v.Host] == nil {
				order = append(order, v.Host)
			}
			hosts[v.Host] = append(hosts[v.Host], v)
		}
		t := Term{Name: "nic-out"}
		for _, h := range order {
			hb := make([]float64, len(hosts[h]))
			hi := make([]item, len(hosts[h]))
			for i, v := range hosts[h] {
				hb[i], hi[i] = v.Bytes, item{float64(v.Priority), v.Bytes}
			}
			t.Count += countFitting(hb, st.nicOut[h]*span)
			t.Priority += fractionalKnapsack(hi, st.nicOut[h]*span)
		}
		terms = append(terms, t)
	}
	nic, mem := st.nicInAndMemory(g)
	flow := st.flowBytes(g, window)
	terms = append(terms,
		Term{Name: "nic-in", Count: countFitting(bytes, nic*span), Priority: fractionalKnapsack(byBytes, nic*span)},
		Term{Name: "memory", Count: countFitting(mems, mem), Priority: fractionalKnapsack(byMem, mem)},
		Term{Name: "flow", Count: countFitting(bytes, flow), Priority: fractionalKnapsack(byBytes, flow)},
	)
	// No more than the count bound can be saved, so no more than the
	// largest priorities of that many.
	least := bindingCount(terms)
	values := make([]float64, len(g))
	for i, v := range g {
		values[i] = float64(v.Priority)
	}
	return append(terms, Term{Name: "count", Count: terms[least].Count, Priority: topValues(values, terms[least].Count)})
}

// bindingCount returns the index of the term with the least count (the
// first on ties; "count" itself never binds the count).
func bindingCount(terms []Term) int {
	best := 0
	for i, t := range terms {
		if t.Name != "count" && t.Count < terms[best].Count {
			best = i
		}
	}
	return best
}

// bindingPriority returns the index of the term with the least priority.
func bindingPriority(terms []Term) int {
	best := 0
	for i, t := range terms {
		if t.Priority < terms[best].Priority {
			best = i
		}
	}
	return best
}

// SavedUpperBound returns the most VMs, and the largest total priority, that
// any schedule can save: see the package documentation for the derivation.
func SavedUpperBound(in Input) (Saved, error) {
	st, err := prepare(in)
	if err != nil {
		return Saved{}, err
	}
	ix := st.ix
	var out Saved
	type siteGroup struct {
		site   int
		window float64
		cands  group
		count  int
		prio   float64
	}
	var sites []*siteGroup
	bySite := map[int]*siteGroup{}
	for s := range ix.Fed.Sites {
		if st.threatened[s] {
			sg := &siteGroup{site: s, window: st.window[s]}
			sites = append(sites, sg)
			bySite[s] = sg
		}
	}
	movable := map[int]int{}
	atRisk := map[int]int{}
	for i := range st.vms {
		v := &st.vms[i]
		out.AtRisk++
		out.PriorityAtRisk += v.Priority
		atRisk[v.Site]++
		if !v.Movable {
			continue
		}
		movable[v.Site]++
		if sg := bySite[v.Site]; v.Time.Seconds() <= sg.window {
			sg.cands = append(sg.cands, v)
		}
	}
	var sumCount int
	var sumPrio float64
	var parts []string
	for _, sg := range sites {
		terms := st.budgetTerms(sg.cands, sg.window, true)
		c, p := bindingCount(terms), bindingPriority(terms)
		sg.count, sg.prio = terms[c].Count, terms[p].Priority
		sumCount += sg.count
		sumPrio += sg.prio
		out.Sites = append(out.Sites, SiteSaved{
			Site: ix.Fed.Sites[sg.site].Name, Window: seconds(math.Max(0, sg.window)),
			AtRisk: atRisk[sg.site], Movable: movable[sg.site], Candidates: len(sg.cands),
			Count: sg.count, Binding: terms[c].Name, Priority: sg.prio, PriorityBinding: terms[p].Name, Terms: terms,
		})
		parts = append(parts, fmt.Sprintf("%s: %s", ix.Fed.Sites[sg.site].Name, terms[c].Name))
	}
	out.Count, out.Binding = sumCount, "per site ("+strings.Join(parts, "; ")+")"
	pparts := make([]string, len(out.Sites))
	for i, s := range out.Sites {
		pparts[i] = s.Site + ": " + s.PriorityBinding
	}
	prio, prioBinding := sumPrio, "per site ("+strings.Join(pparts, "; ")+")"

	// Sites whose deadlines come first share the destinations, links and
	// NICs: for each deadline, the sites lost by then as one group.
	sort.SliceStable(sites, func(i, j int) bool { return sites[i].window < sites[j].window })
	for k := 1; k < len(sites); k++ {
		if k+1 < len(sites) && sites[k+1].window == sites[k].window {
			continue
		}
		var union group
		var names []string
		restCount, restPrio := 0, 0.0
		for i, sg := range sites {
			if i <= k {
				union = append(union, sg.cands...)
				names = append(names, ix.Fed.Sites[sg.site].Name)
			} else {
				restCount += sg.count
				restPrio += sg.prio
			}
		}
		terms := st.budgetTerms(union, sites[k].window, false)
		c, p := bindingCount(terms), bindingPriority(terms)
		label := "union of " + strings.Join(names, ", ") + ": "
		if n := terms[c].Count + restCount; n < out.Count {
			out.Count, out.Binding = n, label+terms[c].Name
		}
		if v := terms[p].Priority + restPrio; v < prio {
			prio, prioBinding = v, label+terms[p].Name
		}
	}
	out.Priority = int(math.Floor(prio * (1 + tolerance)))
	out.PriorityBinding = prioBinding
	return out, nil
}
