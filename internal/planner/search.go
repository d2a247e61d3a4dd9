package planner

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/precopy"
)

// group is a set of destination hosts with identical paths from anywhere:
// the up hosts of one safe site whose NICs have the same capacity. A
// migration to any of them crosses the same links at the same rate, so it
// has the same bytes and solo time; the hosts differ only in free capacity
// and in the load on their NIC, which the group's tree aggregates.
type group struct {
	site  int
	capIn float64 // NIC goodput of each host, bytes/s
	hosts []int   // increasing host indices
	t     tree
}

// route is the way from one threatened site to one group.
type route struct {
	group int
	links []int // dense resources of the link directions crossed
	ids   []int // the links, for Move.Route
	rtt   time.Duration
	// setup is what the handshake over this RTT adds to a zero-RTT
	// estimate (precopy.Setup is affine in the RTT).
	setup float64
	// base is the rate every move on this route gets at most: the narrowest
	// link, the destination NIC and the per-migration flow cap.
	base float64
	// transit is the threatened site with the earliest deadline that the
	// route crosses on its way (-1: none).
	transit int
	// path numbers the route's link list among the distinct ones from its
	// site (routes to the groups of one site share their links), so that a
	// search bounds each list once.
	path int
}

// tree is a segment tree over a group's hosts holding, per subtree, the
// smallest NIC-in load time and the largest free memory, vCPU and disk, so
// that the destination search can skip subtrees that cannot hold a VM or
// cannot beat the best host found so far.
type tree struct {
	size int // leaves, a power of two
	minL []float64
	// minS: the smallest per_host_in term of the moves planned into a
	// host (slotInTerm; 0 without that limit).
	minS   []float64
	maxMem []int64
	maxCPU []float64
	maxDsk []int64
}

func newTree(n int) tree {
	size := 1
	for size < n {
		size *= 2
	}
	t := tree{
		size:   size,
		minL:   make([]float64, 2*size),
		minS:   make([]float64, 2*size),
		maxMem: make([]int64, 2*size),
		maxCPU: make([]float64, 2*size),
		maxDsk: make([]int64, 2*size),
	}
	for i := range 2 * size {
		t.minL[i] = math.Inf(1)
		t.minS[i] = math.Inf(1)
		t.maxMem[i] = math.MinInt64
		t.maxCPU[i] = math.Inf(-1)
		t.maxDsk[i] = math.MinInt64
	}
	return t
}

// set updates leaf i and its ancestors.
func (t *tree) set(i int, load, slot float64, mem int64, cpu float64, dsk int64) {
	n := t.size + i
	t.minL[n], t.minS[n], t.maxMem[n], t.maxCPU[n], t.maxDsk[n] = load, slot, mem, cpu, dsk
	for n > 1 {
		n /= 2
		l, r := 2*n, 2*n+1
		t.minL[n] = min(t.minL[l], t.minL[r])
		t.minS[n] = min(t.minS[l], t.minS[r])
		t.maxMem[n] = max(t.maxMem[l], t.maxMem[r])
		t.maxCPU[n] = max(t.maxCPU[l], t.maxCPU[r])
		t.maxDsk[n] = max(t.maxDsk[l], t.maxDsk[r])
	}
}

// firstLeaf returns the index of the leftmost leaf under node.
func (t *tree) firstLeaf(node int) int {
	for node < t.size {
		node *= 2
	}
	return node - t.size
}

// initGroups builds the destination groups: for every site without a
// deadline, its up hosts grouped by NIC capacity.
func (p *planner) initGroups() {
	p.hostGroup = make([]int32, p.nHost)
	p.hostLeaf = make([]int32, p.nHost)
	for h := range p.hostGroup {
		p.hostGroup[h] = -1
	}
	bySite := make([][]int, len(p.fed.Sites))
	for h := range p.nHost {
		s := p.ix.HostSite(h)
		if !p.threatened[s] && !p.down[h] {
			bySite[s] = append(bySite[s], h)
		}
	}
	for s, hosts := range bySite {
		var caps []float64
		for _, h := range hosts {
			caps = append(caps, p.capR[p.inRes(h)])
		}
		sort.Float64s(caps)
		caps = uniq(caps)
		for _, c := range caps {
			g := &group{site: s, capIn: c}
			for _, h := range hosts {
				if p.capR[p.inRes(h)] == c {
					p.hostGroup[h] = int32(len(p.groups))
					p.hostLeaf[h] = int32(len(g.hosts))
					g.hosts = append(g.hosts, h)
				}
			}
			g.t = newTree(len(g.hosts))
			p.groups = append(p.groups, g)
			for _, h := range g.hosts {
				p.refreshLeaf(h)
			}
		}
	}
	p.fromSite = make([][]route, len(p.fed.Sites))
	p.routeDone = make([]bool, len(p.fed.Sites))
	p.warm = make([]int, len(p.fed.Sites))
	for s := range p.warm {
		p.warm[s] = -1
	}
	p.noRoute = make([]string, len(p.fed.Sites))
}

// uniq removes adjacent duplicates from a sorted slice.
func uniq(xs []float64) []float64 {
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// refreshLeaf copies host h's state into its group's tree.
func (p *planner) refreshLeaf(h int) {
	g := p.groups[p.hostGroup[h]]
	in := p.inRes(h)
	g.t.set(int(p.hostLeaf[h]), p.busyR[in]+p.bytesR[in]/p.capR[in], p.slotInTerm(h), p.freeMem[h], p.freeVCPU[h], p.freeDisk[h])
}

// maxRoutesPerGroup bounds the alternative routes the planner considers
// from a threatened site to each destination group.
const maxRoutesPerGroup = 4

// routesFrom returns the routes from threatened site s to every group it
// can reach over links with bandwidth — up to maxRoutesPerGroup simple
// routes per group (netpath.Routes: fewest hops, then widest), so that a
// cut link is routed around and a move can take a longer but faster or
// less loaded way — computing them on first use. It sets the capacity of
// s's egress: the link directions these routes start with (every move
// from s leaves through one of them).
func (p *planner) routesFrom(s int) []route {
	if p.routeDone[s] {
		return p.fromSite[s]
	}
	p.routeDone[s] = true
	src := -1
	for h := range p.nHost {
		if p.ix.HostSite(h) == s {
			src = h
			break
		}
	}
	cut := map[string]bool{}
	firstHops := map[int]bool{}
	safeSites := map[int]bool{}
	usable := func(l int) bool {
		if p.capR[p.linkRes(l, 0)] > 0 && p.capR[p.linkRes(l, 1)] > 0 {
			return true
		}
		cut[p.fed.Links[l].Name] = true
		return false
	}
	bySite := map[int][][]int{}
	var paths [][]int
	for gi, g := range p.groups {
		safeSites[g.site] = true
		if src < 0 {
			continue
		}
		links, ok := bySite[g.site]
		if !ok {
			links = p.frontier(s, netpath.Routes(p.ix, s, g.site, usable, maxRoutesPerGroup))
			bySite[g.site] = links
		}
		for _, ids := range links {
			path, err := netpath.Along(p.ix, src, g.hosts[0], ids)
			if err != nil {
				continue
			}
			rt := route{group: gi, ids: ids, rtt: path.RTT, base: g.capIn, transit: -1, path: len(paths)}
			if i := slices.IndexFunc(paths, func(o []int) bool { return slices.Equal(o, ids) }); i >= 0 {
				rt.path = i
			} else {
				paths = append(paths, ids)
			}
			rt.setup = setupOver(path.RTT)
			at := s
			for _, res := range path.Resources {
				if res.Kind != netpath.Link {
					continue
				}
				r := p.linkRes(res.ID, res.Dir)
				rt.links = append(rt.links, r)
				rt.base = min(rt.base, p.capR[r])
				at = p.ix.LinkPeer(res.ID, at)
				// A transit site that is itself threatened carries the
				// move only until its own deadline.
				if at != g.site && p.threatened[at] && (rt.transit < 0 || p.deadline[at] < p.deadline[rt.transit]) {
					rt.transit = at
				}
			}
			rt.base = min(rt.base, netpath.FlowCap(p.flowCap, path.RTT, p.conns))
			p.fromSite[s] = append(p.fromSite[s], rt)
			if first := rt.links[0]; !firstHops[first] {
				firstHops[first] = true
				p.egressCap[s] += p.capR[first]
			}
		}
	}
	if len(p.fromSite[s]) == 0 {
		name := p.fed.Sites[s].Name
		if len(cut) == 0 {
			p.noRoute[s] = fmt.Sprintf("no network route from %s to any of the %d safe sites", name, len(safeSites))
		} else {
			names := make([]string, 0, len(cut))
			for n := range cut {
				names = append(names, n)
			}
			sort.Strings(names)
			p.noRoute[s] = fmt.Sprintf("every route from %s to a safe site crosses a link without usable bandwidth (%s)", name, strings.Join(names, ", "))
		}
	}
	if len(paths) > len(p.pathLB) {
		p.pathLB = make([]pathBound, len(paths))
	}
	return p.fromSite[s]
}

// frontier keeps, of routes ordered by hops (then width), those that no
// kept route beats on all of: fewer or equal hops, a wider or equally wide
// narrowest link, and a later or equal deadline of the threatened sites it
// crosses. An alternative is worth a search only if it is wider or
// survives longer.
func (p *planner) frontier(from int, routes [][]int) [][]int {
	type key struct {
		hops    int
		width   float64
		transit time.Duration // earliest deadline crossed; MaxInt64: none
	}
	var kept [][]int
	var keys []key
	for _, ids := range routes {
		k := key{hops: len(ids), width: math.Inf(1), transit: math.MaxInt64}
		at := from
		for i, l := range ids {
			d := 0
			if p.ix.SiteByName[p.fed.Links[l].A] != at {
				d = 1
			}
			k.width = min(k.width, p.capR[p.linkRes(l, d)])
			at = p.ix.LinkPeer(l, at)
			if i < len(ids)-1 && p.threatened[at] {
				k.transit = min(k.transit, p.deadline[at])
			}
		}
		dominated := false
		for _, o := range keys {
			if o.hops <= k.hops && o.width >= k.width && o.transit >= k.transit {
				dominated = true
				break
			}
		}
		if !dominated {
			kept = append(kept, ids)
			keys = append(keys, k)
		}
	}
	return kept
}

// transitLimit is the latest finish (seconds after Now) a move on rt may
// have: the deadline of the earliest threatened site it crosses, minus the
// safety margin (+Inf when it crosses none).
func (p *planner) transitLimit(rt *route) float64 {
	if rt.transit < 0 {
		return math.Inf(1)
	}
	return p.siteLimit[rt.transit] - p.margin
}

// pathBound is a search's lower bound of the finish over one distinct link
// list from the VM's site (valid while stamp is the search's).
type pathBound struct {
	stamp uint64
	lb    float64
	res   int
}

// need is what a VM asks of a destination host.
type need struct {
	mem  int64
	cpu  float64
	disk int64 // 0 for shared storage
	aa   int32
}

func (p *planner) needOf(v int) need {
	vm := &p.fed.VMs[v]
	n := need{mem: vm.MemoryMiB, cpu: float64(vm.VCPU), aa: p.aaGroup[v]}
	if vm.CopiesDisk() {
		n.disk = vm.DiskGiB
	}
	return n
}

// fitsAgg reports whether a subtree's aggregates leave room for n.
func (t *tree) fitsAgg(node int, n *need) bool {
	return t.maxMem[node] >= n.mem && t.maxCPU[node] >= n.cpu && (n.disk == 0 || t.maxDsk[node] >= n.disk)
}

// blocked reports whether host h holds a VM of n's anti-affinity group.
func (p *planner) blocked(h int, n *need) bool {
	if n.aa < 0 {
		return false
	}
	_, ok := p.aaOn[aaKey{n.aa, int32(h)}]
	return ok
}

// anyFit reports whether some host of g can take n now.
func (p *planner) anyFit(g *group, node int, n *need) bool {
	t := &g.t
	if !t.fitsAgg(node, n) {
		return false
	}
	if node >= t.size {
		return !p.blocked(g.hosts[node-t.size], n)
	}
	return p.anyFit(g, 2*node, n) || p.anyFit(g, 2*node+1, n)
}

// cand is a candidate destination.
type cand struct {
	// late is set when no candidate was found only because none can finish
	// within the search's limit; lateF is then a lower bound of the
	// earliest finish (seconds after Now) and lateRes the resource that
	// sets it (-1: the VM's own time).
	late    bool
	lateF   float64
	lateRes int
	// lateRoute: the route of that finish (-1: not known).
	lateRoute int
	// lbOnly: every route was ruled out by the lower bound from the VM's
	// least bytes, so no other way of migrating it can be in time either.
	lbOnly bool
	ok     bool
	f      float64 // predicted finish, seconds after Now
	free   int64   // free memory before placement, MiB
	host   int
	route  int // index into routesFrom(site)
	est    estimate
}

// query is one destination search within one group.
type query struct {
	g     *group
	n     need
	a     float64 // finish term common to the group's hosts
	perIn float64 // seconds the move adds to a destination NIC
	// perSlot: what the move adds to a destination's per_host_in term (0
	// without that limit).
	perSlot float64
	limit   float64 // latest finish the route allows (transit deadlines)
	// pruned: some host was skipped only because it could not finish
	// within limit.
	pruned bool
	route  int
	est    estimate
	best   cand
}

// canBeat reports whether a subtree whose hosts finish no earlier than
// bound and have at most maxMem free could hold a better candidate than
// q.best: earlier finish, then more free memory, then a lower host index,
// then a lower route index.
func (q *query) canBeat(t *tree, node int, bound float64) bool {
	b := &q.best
	switch {
	case !b.ok || bound < b.f:
		return true
	case bound > b.f:
		return false
	case t.maxMem[node] != b.free:
		return t.maxMem[node] > b.free
	}
	// Then the lower host index, then (the same host over another route
	// to its group) the lower route index.
	h := q.g.hosts[min(t.firstLeaf(node), len(q.g.hosts)-1)]
	return h < b.host || (h == b.host && q.route < b.route)
}

// bound is the earliest finish of the move on any host under node: its
// route's term, the destination NIC's load and the per_host_in term (exact
// at a leaf).
func (q *query) bound(t *tree, node int) float64 {
	b := max(q.a, t.minL[node]+q.perIn)
	if q.perSlot > 0 {
		b = max(b, t.minS[node]+q.perSlot)
	}
	return b
}

// descend searches the subtree at node for the best host, visiting the
// more promising child first and pruning what cannot fit or cannot win.
func (p *planner) descend(q *query, node int) {
	t := &q.g.t
	if !t.fitsAgg(node, &q.n) {
		return
	}
	bound := q.bound(t, node)
	if bound > q.limit {
		q.pruned = true
		return
	}
	if !q.canBeat(t, node, bound) {
		return
	}
	if node >= t.size {
		h := q.g.hosts[node-t.size]
		if p.blocked(h, &q.n) {
			return
		}
		q.best = cand{ok: true, f: bound, free: p.freeMem[h], host: h, route: q.route, est: q.est}
		return
	}
	l, r := 2*node, 2*node+1
	bl, br := q.bound(t, l), q.bound(t, r)
	if br < bl || (br == bl && t.maxMem[r] > t.maxMem[l]) {
		l, r = r, l
	}
	p.descend(q, l)
	p.descend(q, r)
}

// ownLowerBound is a lower bound of a pre-copy's solo time (seconds, zero
// RTT) at rate for guest g, whose disk and memory are copyBytes: it sends
// the disk, all the memory, and then at least what the guest dirtied
// during that first round (unthrottled, at most its working set: the next
// round or the final copy), at rate, between the set-up (setup0) and the
// switch-over. (The bytes at a higher rate do not bound those at a lower
// one: with auto-converge the throttle can come a round earlier.) The
// slack covers precopy's nanosecond truncations; TestOwnLowerBound holds
// it below precopy.Solo.
func ownLowerBound(g *precopy.Guest, copyBytes, rate, setup0, switchover float64) float64 {
	return setup0 + (copyBytes+firstRoundDirt(g, rate))/rate + switchover - 1e-8
}

// firstRoundDirt is (a hair less than) what guest g dirties while a
// pre-copy at rate sends its memory once, unthrottled: at most its working
// set. Every pre-copy sends it again, in a later round or the final copy;
// the faster the rate, the less it is.
func firstRoundDirt(g *precopy.Guest, rate float64) float64 {
	ws := g.WorkingSet
	if ws <= 0 || ws > g.MemoryBytes {
		ws = g.MemoryBytes
	}
	// precopy truncates the round's time to whole nanoseconds.
	t := max(0, g.MemoryBytes/rate-2e-9)
	return min(g.DirtyRate*t, ws) * (1 - 1e-12)
}

// searchOpts say which estimates and destinations a search may use.
type searchOpts struct {
	// pause: estimate the move as a pause-and-copy (policy
	// migration.pause_and_copy), not pre-copy.
	pause bool
	// watch: sites at threat level watch may receive the VM.
	watch bool
}

// search finds the destination of at-risk VM v (with a placement policy:
// the one the policy picks, see searchWithPolicy) that minimises its
// predicted finish (ties: more free memory, then lower host index) among
// hosts with room, over every route from its site on which it converges
// and that no threatened transit site cuts before the move ends.
func (p *planner) search(v int, o searchOpts, limit float64) cand {
	if p.dest != nil {
		return p.searchWithPolicy(v)
	}
	src := p.place[v]
	out := p.outRes(src)
	pr := p.preOf(v)
	q := query{n: pr.need}
	minB := pr.leastBytes
	cls := p.classesOf(src)
	// lateF is the earliest finish of the routes that are not in time and
	// lateRes its resource; ties go to the lowest route index lateK, so
	// that the order the routes are visited in does not matter.
	lateF, lateRes, lateK := math.Inf(1), -1, -1
	late := func(f float64, res, k int) {
		if f < lateF || (f == lateF && k < lateK) {
			lateF, lateRes, lateK = f, res, k
		}
	}
	lbOnly := true
	routes := p.routesFrom(pr.site)
	// The source NIC's term of every route's lower bound.
	outLB := p.busyR[out] + (p.bytesR[out]+minB)/p.capR[out]
	p.lbStamp++
	visit := func(k int) {
		rt := &routes[k]
		g := p.groups[rt.group]
		if (p.watch[g.site] && !o.watch) || !g.t.fitsAgg(1, &q.n) {
			return
		}
		// A lower bound of the finish on this route, from the VM's least
		// bytes over every route: skip the route before estimating the
		// migration at its rate when it cannot be in time or cannot beat
		// the best host so far. Routes to the groups of one site share
		// their links.
		pb := &p.pathLB[rt.path]
		if pb.stamp != p.lbStamp {
			pb.stamp = p.lbStamp
			pb.lb, pb.res = outLB, out
			for _, r := range rt.links {
				// Paths from a site share links: each link's term once.
				if p.resStamp[r] != p.lbStamp {
					p.resStamp[r], p.resLB[r] = p.lbStamp, p.busyR[r]+(p.bytesR[r]+minB)/p.capR[r]
				}
				if t := p.resLB[r]; t > pb.lb {
					pb.lb, pb.res = t, r
				}
			}
		}
		lb, lbRes := pb.lb, pb.res
		rlimit := min(limit, p.transitLimit(rt))
		if lb > rlimit {
			late(lb, lbRes, k)
			return
		}
		lbOnly = false
		if q.best.ok && lb > q.best.f {
			return
		}
		var e estimate
		if o.pause {
			e = p.pauseAt(v, cls.rates[cls.classOf[k]])
		} else {
			// Skip the estimate when the migration's own time cannot
			// beat the best host nor be the late finish reported.
			own := ownLowerBound(&pr.guest, pr.pauseBytes, cls.rates[cls.classOf[k]], p.setup0, p.switchover) + rt.setup
			if (q.best.ok && own > q.best.f) || (own > rlimit && (own > lateF || (own == lateF && k > lateK))) {
				return
			}
			e = p.estimateOn(v, k)
		}
		if !e.ok {
			return
		}
		b := e.bytes
		a := e.solo + rt.setup
		bott := -1
		if t := p.busyR[out] + (p.bytesR[out]+b)/p.capR[out]; t > a {
			a, bott = t, out
		}
		for _, r := range rt.links {
			if t := p.busyR[r] + (p.bytesR[r]+b)/p.capR[r]; t > a {
				a, bott = t, r
			}
		}
		if t, _ := p.slotTerm(src, -1, rt.links, e.solo+rt.setup); t > a {
			a, bott = t, -1
		}
		q.limit = rlimit
		if a > q.limit {
			late(a, bott, k)
			return
		}
		q.g, q.a, q.perIn, q.route, q.est, q.pruned = g, a, b/g.capIn, k, e, false
		if n := p.in.Policy.Concurrency.PerHostIn; n > 0 {
			q.perSlot = (e.solo + rt.setup) / float64(n)
		}
		p.descend(&q, 1)
		if !q.best.ok && q.pruned {
			// The hosts' NICs pushed every host of the group past the
			// limit.
			late(limit, -1, k)
		}
	}
	// The route that won the site's previous search first: a good best
	// early prunes most of the others before their estimate and search.
	warm := p.warm[pr.site]
	if warm >= 0 {
		visit(warm)
	}
	for k := range routes {
		if k != warm {
			visit(k)
		}
	}
	if q.best.ok {
		p.warm[pr.site] = q.best.route
	}
	if !q.best.ok && !math.IsInf(lateF, 1) {
		q.best.late, q.best.lateF, q.best.lateRes, q.best.lbOnly, q.best.lateRoute = true, lateF, lateRes, lbOnly, lateK
	}
	return q.best
}
