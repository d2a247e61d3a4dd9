package bound

import (
	"fmt"
	"sort"
	"time"
)

// Span is one term of the makespan lower bound.
type Span struct {
	// Name is "vm:<name>" (a VM's least time), "nic-out:<host>",
	// "flow:<site>" (a threatened site's maximum flow), "flow:all
	// threatened sites" or "nic-in:safe hosts".
	Name  string        `json:"name"`
	Bound time.Duration `json:"bound"`
}

// Makespan is a lower bound on the time any schedule needs to move a set of
// at-risk VMs, measured from Input.Now.
type Makespan struct {
	// Bound is the largest term, Binding its name.
	Bound   time.Duration `json:"bound"`
	Binding string        `json:"binding"`
	// VMs and Bytes are the VMs that must move and their least bytes.
	VMs   int     `json:"vms"`
	Bytes float64 `json:"bytes"`
	// Fits is false when the safe hosts' free memory cannot hold them all
	// (no schedule moves them all; the bound then holds for any schedule
	// that does, vacuously).
	Fits bool `json:"fits"`
	// Immovable counts at-risk VMs left out because they cannot move at
	// all (host down, no safe host with room, no route with bandwidth).
	Immovable int `json:"immovable"`
	// Terms holds the largest term of each kind, largest first.
	Terms []Span `json:"terms"`
}

// MakespanLowerBound returns a lower bound on the makespan of any schedule
// that moves every at-risk VM that can move at all (deadlines play no part:
// they only say which sites are threatened).
func MakespanLowerBound(in Input) (Makespan, error) {
	return makespan(in, nil)
}

// MakespanLowerBoundOf is MakespanLowerBound for the given VMs only (VM
// indices; each must be at risk and movable), e.g. those a run moved.
func MakespanLowerBoundOf(in Input, vms []int) (Makespan, error) {
	if vms == nil {
		vms = []int{}
	}
	return makespan(in, vms)
}

func makespan(in Input, only []int) (Makespan, error) {
	st, err := prepare(in)
	if err != nil {
		return Makespan{}, err
	}
	ix := st.ix
	byVM := map[int]*VM{}
	for i := range st.vms {
		byVM[st.vms[i].VM] = &st.vms[i]
	}
	var all group
	var out Makespan
	if only == nil {
		for i := range st.vms {
			if v := &st.vms[i]; v.Movable {
				all = append(all, v)
			} else {
				out.Immovable++
			}
		}
	} else {
		seen := map[int]bool{}
		for _, v := range only {
			e := byVM[v]
			switch {
			case v < 0 || v >= len(ix.Fed.VMs):
				return Makespan{}, fmt.Errorf("%w: VM index %d of %d", ErrBadInput, v, len(ix.Fed.VMs))
			case e == nil:
				return Makespan{}, fmt.Errorf("%w: VM %s is not at risk", ErrBadInput, ix.Fed.VMs[v].Name)
			case !e.Movable:
				return Makespan{}, fmt.Errorf("%w: VM %s cannot move (host down, no safe host with room, or no route with bandwidth)", ErrBadInput, e.Name)
			case seen[v]:
				return Makespan{}, fmt.Errorf("%w: VM %s listed twice", ErrBadInput, e.Name)
			}
			seen[v] = true
			all = append(all, e)
		}
	}
	out.VMs, out.Bytes, out.Fits = len(all), all.bytes(), true
	if len(all) == 0 {
		return out, nil
	}
	// best keeps the largest term of each kind.
	best := map[string]Span{}
	consider := func(kind, name string, d time.Duration) {
		if b, ok := best[kind]; !ok || d > b.Bound {
			best[kind] = Span{Name: name, Bound: d}
		}
	}
	// Bytes cross a resource only after the first set-up ends.
	carry := func(g group, capacity float64) time.Duration {
		return addSat(g.minSetup(), seconds(g.bytes()/capacity))
	}
	bySite := map[int]group{}
	byHost := map[int]group{}
	for _, v := range all {
		consider("vm", "vm:"+v.Name, v.Time)
		bySite[v.Site] = append(bySite[v.Site], v)
		byHost[v.Host] = append(byHost[v.Host], v)
	}
	for _, h := range sortedKeys(byHost) {
		consider("nic-out", "nic-out:"+ix.Host(h).Name, carry(byHost[h], st.nicOut[h]))
	}
	sites := sortedKeys(bySite)
	for _, s := range sites {
		consider("flow-site", "flow:"+ix.Fed.Sites[s].Name, carry(bySite[s], st.flow(bySite[s])))
	}
	if len(sites) > 1 {
		consider("flow-all", "flow:all threatened sites", carry(all, st.flow(all)))
	}
	nic, mem := st.nicInAndMemory(all)
	consider("nic-in", "nic-in:safe hosts", carry(all, nic))
	var need float64
	for _, v := range all {
		need += v.MemoryBytes
	}
	out.Fits = need <= mem*(1+tolerance)
	for _, kind := range []string{"vm", "nic-out", "nic-in", "flow-site", "flow-all"} {
		if sp, ok := best[kind]; ok {
			out.Terms = append(out.Terms, sp)
		}
	}
	sort.SliceStable(out.Terms, func(i, j int) bool { return out.Terms[i].Bound > out.Terms[j].Bound })
	out.Bound, out.Binding = out.Terms[0].Bound, out.Terms[0].Name
	return out, nil
}

// sortedKeys returns a map's keys in increasing order.
func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}
