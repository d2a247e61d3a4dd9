package planner

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/precopy"
)

// vmPre holds what the planner learns about an at-risk VM before ordering.
type vmPre struct {
	site int
	// ests[estOff:] holds the VM's estimates, one per rate class of its
	// host (see estimateOn); -1 until the first is needed. best is the
	// estimate at its fastest class, bestClass.
	estOff    int
	best      estimate
	bestClass int32
	// converges: on at least one route; minBytes and minSolo (with the
	// route's set-up) are the least over those routes.
	converges         bool
	minBytes, minSolo float64
	// fits: some reachable safe host has room for it before any move.
	fits bool
	// liveBytes: the least pre-copy bytes over its routes (+Inf: none
	// converges); pauseBytes: its disk (local storage) and memory, what a
	// paused copy sends and the least any pre-copy sends.
	liveBytes, pauseBytes float64
	// need: what it asks of a destination host.
	need need
	// guest: the VM as the pre-copy model sees it.
	guest precopy.Guest
	// leastBytes: the least any way of moving it sends, on any route (the
	// search's bounds): a paused copy sends pauseBytes; a pre-copy also
	// what the guest dirties during its first round, least at the fastest
	// rate. (minBytes, the best rate's estimate, is not a bound: with
	// auto-converge a slower rate can send fewer bytes.)
	leastBytes float64
}

// run computes the plan.
func (p *planner) run() *Plan {
	plan := &Plan{Policy: p.in.Policy.Name, Moves: []Move{}, Unsaved: []Unsaved{}, Resources: []ResourceLoad{}}
	var atRisk []int
	for v, h := range p.place {
		if h < 0 || p.in.Frozen[v] {
			continue
		}
		if p.threatened[p.ix.HostSite(h)] {
			atRisk = append(atRisk, v)
		}
	}
	plan.AtRisk = len(atRisk)
	// Room for every at-risk VM's move (and for half of them left behind)
	// saves growing a large plan step by step.
	plan.Moves = make([]Move, 0, len(atRisk))
	plan.Unsaved = make([]Unsaved, 0, len(atRisk)/2)
	p.prepare(atRisk)
	p.markPressure(atRisk)
	st := &runState{solos: make([]float64, 0, len(atRisk)), finishes: make([]float64, 0, len(atRisk)), lateF: make([]float64, p.nVM)}
	for _, v := range p.queue(atRisk) {
		p.planVM(v, plan, st)
	}
	p.planOpportunistic(plan, st)
	// The bounds and the warnings read the finished plan and fill
	// different fields of it.
	var wg sync.WaitGroup
	wg.Go(func() { p.warn(plan, st) })
	p.bounds(plan, st, atRisk)
	wg.Wait()
	return plan
}

// runState collects what the bounds and warnings need from the main loop.
type runState struct {
	solos    []float64 // per move, seconds
	finishes []float64 // per move, seconds after Now
	late     int
	// lateF: per VM, the predicted finish of a VM left out for its
	// deadline (planOpportunistic retries only those predicted within it).
	lateF []float64
}

// prepare computes, for every at-risk VM, its estimates on the routes from
// its site, the least bytes and solo time over them and whether some safe
// host can take it now.
func (p *planner) prepare(atRisk []int) {
	p.pre = make([]vmPre, len(atRisk))
	p.preIdx = make([]int32, p.nVM)
	for v := range p.preIdx {
		p.preIdx[v] = -1 // not at risk: preOf panics rather than lie
	}
	for i, v := range atRisk {
		p.preIdx[v] = int32(i)
	}
	p.classes = make([]*rateClasses, p.nHost)
	total := 0
	for _, v := range atRisk {
		if src := p.place[v]; !p.down[src] {
			total += len(p.classesOf(src).rates)
		}
	}
	// Estimates are computed when first needed (estimateClass), into a
	// block per VM allocated then, so that the blocks lie in the order the
	// VMs are planned. Only the fastest rate class of each VM is needed
	// here, for its least bytes, least solo time and whether it converges
	// at all (a migration that does not converge at the best rate
	// converges at none).
	p.ests = make([]storedEstimate, total)
	p.nextEst = 0
	// The VMs are independent here (routes and rate classes are computed
	// above; the destination trees are only read): large plans prepare
	// them in parallel, each worker with its own scratch.
	workers := 1
	if len(atRisk) >= parallelPrepareMin {
		workers = runtime.GOMAXPROCS(0)
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(atRisk)/workers, (w+1)*len(atRisk)/workers
		wg.Go(func() {
			seen := make([]int32, len(p.groups))
			for _, v := range atRisk[lo:hi] {
				p.prepareVM(v, seen)
			}
		})
	}
	wg.Wait()
}

// preOf returns at-risk VM v's vmPre.
func (p *planner) preOf(v int) *vmPre { return &p.pre[p.preIdx[v]] }

// parallelPrepareMin is the number of at-risk VMs from which prepare uses
// every CPU (a variable so that tests can run the parallel path on small
// federations).
var parallelPrepareMin = 4096

// prepareVM fills at-risk VM v's vmPre. seen is the caller's scratch: the
// VM (+1) each destination group was last checked for.
func (p *planner) prepareVM(v int, seen []int32) {
	src := p.place[v]
	pr := p.preOf(v)
	pr.site = p.ix.HostSite(src)
	pr.estOff = -1
	pr.minBytes, pr.minSolo, pr.liveBytes = math.Inf(1), math.Inf(1), math.Inf(1)
	if p.down[src] {
		return
	}
	cls := p.classes[src]
	best := 0
	for i, rate := range cls.rates {
		if rate > cls.rates[best] {
			best = i
		}
	}
	pr.guest = guest(&p.fed.VMs[v])
	pr.pauseBytes = pr.guest.DiskBytes + pr.guest.MemoryBytes
	pr.need = p.needOf(v)
	n := pr.need
	setup := math.Inf(1)
	for k, rt := range p.fromSite[pr.site] {
		if int(cls.classOf[k]) == best {
			setup = min(setup, rt.setup)
		}
		if !pr.fits && seen[rt.group] != int32(v)+1 {
			seen[rt.group] = int32(v) + 1
			pr.fits = p.anyFit(p.groups[rt.group], 1, &n)
		}
	}
	if len(cls.rates) == 0 {
		return
	}
	pr.leastBytes = pr.pauseBytes
	if !p.pauseOK {
		pr.leastBytes += firstRoundDirt(&pr.guest, cls.rates[best])
	}
	e := soloAt(pr.guest, p.cfg, cls.rates[best])
	pr.best, pr.bestClass = e, int32(best)
	if e.ok {
		pr.converges = true
		pr.liveBytes, pr.minBytes, pr.minSolo = e.bytes, e.bytes, e.solo+setup
	}
	if pe := p.pauseAt(v, e.rate); p.pauseOK && pe.ok {
		pr.converges = true
		pr.minBytes = min(pr.minBytes, pe.bytes)
		pr.minSolo = min(pr.minSolo, pe.solo+setup)
	}
}

// markPressure finds the threatened sites and source hosts that cannot send
// the pre-copy bytes of all their at-risk VMs before their deadline: their
// egress (the routed first hops) or their NIC is too narrow. There, a
// paused copy of a dirtying guest, which sends each byte once, saves
// bandwidth that pre-copy would spend re-sending dirtied memory.
func (p *planner) markPressure(atRisk []int) {
	p.pressSite = make([]bool, len(p.fed.Sites))
	p.pressHost = make([]bool, p.nHost)
	if !p.pauseOK {
		return
	}
	siteBytes := make([]float64, len(p.fed.Sites))
	hostBytes := map[int]float64{}
	for _, v := range atRisk {
		pr := p.preOf(v)
		if !pr.converges {
			continue
		}
		b := min(pr.liveBytes, pr.pauseBytes*4)
		siteBytes[pr.site] += b
		hostBytes[p.place[v]] += b
	}
	for s, b := range siteBytes {
		if p.threatened[s] {
			t := (p.deadline[s] - p.in.Now).Seconds()
			p.pressSite[s] = b > p.egressCap[s]*t
		}
	}
	for h, b := range hostBytes {
		t := (p.deadline[p.ix.HostSite(h)] - p.in.Now).Seconds()
		p.pressHost[h] = b > p.capR[p.outRes(h)]*t
	}
}

// pausePreferred reports whether VM v should rather be paused and copied:
// its site or host is under pressure (markPressure) and a paused copy
// sends at least a tenth less than pre-copy.
func (p *planner) pausePreferred(v int) bool {
	pr := p.preOf(v)
	return (p.pressSite[pr.site] || p.pressHost[p.place[v]]) && pr.pauseBytes < 0.9*pr.liveBytes
}

// planOpportunistic gives the VMs that a deadline-aware plan leaves out
// because they are predicted to end within the safety margin (not after
// the deadline itself) a second chance: they are planned after every other
// move, so they use only what is left; the executor aborts them if they
// cannot make the deadline after all.
func (p *planner) planOpportunistic(plan *Plan, st *runState) {
	if !p.in.Policy.DeadlineAware || p.margin <= 0 {
		return
	}
	var retry []int
	kept := plan.Unsaved[:0]
	for _, u := range plan.Unsaved {
		// Only a VM predicted to end within its deadline can make it now:
		// more has been charged to every resource since.
		if u.Code == CodeDeadline && st.lateF[u.VM] <= p.siteLimit[p.preOf(u.VM).site] {
			retry = append(retry, u.VM)
			continue
		}
		kept = append(kept, u)
	}
	plan.Unsaved = kept
	margin := p.margin
	p.margin = 0
	for _, v := range retry {
		n := len(plan.Moves)
		p.planVM(v, plan, st)
		if len(plan.Moves) > n {
			plan.Moves[n].Reason += fmt.Sprintf("; planned after the others: predicted within its deadline but not the %s safety margin", short(dur(margin)))
		}
	}
	p.margin = margin
}

// lostFirst returns the threatened site that makes late candidate c from
// site late when it is not the site's own limit but that of a site the
// route crosses, which is lost first (-1 otherwise).
func (p *planner) lostFirst(site int, c cand, limit float64) int {
	if c.lateRoute < 0 || c.lateF > limit {
		return -1
	}
	rt := &p.fromSite[site][c.lateRoute]
	if rt.transit < 0 || p.transitLimit(rt) >= c.lateF {
		return -1
	}
	return rt.transit
}

// planVM plans VM v: it moves it to the best destination or records why
// it stays.
func (p *planner) planVM(v int, plan *Plan, st *runState) {
	vm := &p.fed.VMs[v]
	pr := p.preOf(v)
	src := p.place[v]
	unsaved := func(code, reason string) {
		plan.Unsaved = append(plan.Unsaved, Unsaved{
			VM: v, Name: vm.Name, Site: p.fed.Sites[pr.site].Name, Priority: p.prio[v].eff, Code: code, Reason: reason,
		})
	}
	switch {
	case p.down[src]:
		unsaved(CodeSourceDown, fmt.Sprintf("its host %s is down", p.ix.Host(src).Name))
		return
	case len(p.groups) == 0:
		unsaved(CodeNoSafeSite, "every site with a host that is up is threatened")
		return
	case len(p.routesFrom(pr.site)) == 0:
		unsaved(CodeNoRoute, p.noRoute[pr.site])
		return
	case !pr.converges:
		unsaved(CodeNotConverge, p.notConvergingReason(v))
		return
	}
	deadline := p.deadline[pr.site]
	limit := p.siteLimit[pr.site] - p.margin
	c, f, bott, path := p.choose(v, limit)
	w := p.why.start()
	// late says when v is predicted to finish and which limit that
	// misses: its deadline, or that of lost, a site its way out crosses
	// (-1: none).
	late := func(f float64, orLater string, lost int) *reasonBuf {
		st.lateF[v] = f
		w.str("predicted to finish at ").dur(p.in.Now + dur(f)).str(orLater)
		if lost >= 0 {
			w.str(", after ").str(p.fed.Sites[lost].Name).str(", the site its way out crosses, is lost (deadline ").dur(p.deadline[lost])
		} else {
			w.str(", after its deadline ").dur(deadline)
		}
		w.str(" minus the ").dur(p.in.Policy.SafetyMargin.D()).str(" safety margin")
		if lost >= 0 {
			w.str(")")
		}
		return w.str("; ")
	}
	carrying := func(r int) {
		w.str("bottleneck ").str(p.resName(r)).str(", already carrying ").bytes(p.bytesR[r]).str(" of earlier moves")
	}
	if !c.ok && c.late {
		late(c.lateF, " or later", p.lostFirst(pr.site, c, limit))
		if c.lateRes >= 0 {
			carrying(c.lateRes)
		} else {
			w.str("its own migration time")
		}
		unsaved(CodeDeadline, w.String())
		return
	}
	if !c.ok {
		unsaved(CodeNoCapacity, p.noCapacityReason(v))
		return
	}
	rt := &p.fromSite[pr.site][c.route]
	b := c.est.bytes
	solo := c.est.solo + rt.setup
	bottName := "solo"
	switch {
	case bott >= 0:
		bottName = p.resName(bott)
	case bott == slotBottleneck:
		_, limitName := p.slotTerm(src, c.host, rt.links, solo)
		bottName = "count limit " + limitName
	}
	ownRate := func() {
		w.bytes(c.est.rate).str("/s, limited by ")
		p.limiter(w, path, c.est.rate, rt.rtt)
	}
	if f > limit && p.in.Policy.DeadlineAware {
		late(f, "", -1)
		switch {
		case bott == slotBottleneck:
			w.str(bottName).str(": the moves planned before it hold its slots")
		case bott < 0:
			w.str("even alone it needs ").dur(dur(solo)).str(" at ")
			ownRate()
		default:
			carrying(bott)
		}
		unsaved(CodeDeadline, w.String())
		return
	}
	// A paused copy is planned from the start when pre-copy cannot save
	// the VM even alone, or when the site or host is under pressure
	// (pausePreferred); otherwise it starts live and the executor pauses
	// it if the deadline comes too close.
	mode := ModeLive
	if c.est.pause {
		if live := p.estimateOn(v, c.route); !live.ok || live.solo+rt.setup > limit || p.pausePreferred(v) {
			mode = ModePause
		}
	}
	// Commit: charge the bytes to the path and the footprint to the host.
	for _, r := range path {
		p.bytesR[r] += b
		p.used[r] = true
	}
	p.egressBytes[pr.site] += b
	p.occupySlots(src, c.host, rt.links, solo)
	p.occupy(v, c.host)
	p.refreshLeaf(c.host)

	// start_i = finish_i − max(solo_i, bytes_i/rate_i), at Now at the
	// earliest: the move runs at its own rate up to its predicted finish.
	start := max(0, f-max(solo, b/c.est.rate))
	dst := p.ix.Host(c.host)
	m := Move{
		VM: v, Name: vm.Name,
		From: src, To: c.host,
		FromHost: p.ix.Host(src).Name, ToHost: dst.Name,
		FromSite: p.fed.Sites[pr.site].Name, ToSite: p.fed.Sites[p.ix.HostSite(c.host)].Name,
		Route:      append([]int(nil), rt.ids...),
		Mode:       mode,
		Priority:   p.prio[v].eff,
		Bytes:      b,
		Solo:       dur(solo),
		PredStart:  p.in.Now + dur(start),
		PredFinish: p.in.Now + dur(f),
		Deadline:   deadline,
		Bottleneck: bottName,
	}
	p.whyFirst(w, v, len(plan.Moves)+len(plan.Unsaved))
	w.str(", deadline ").dur(deadline).str("; dest ").str(dst.Name).str(": earliest predicted finish ").dur(m.PredFinish).str(" via ")
	if bott == -1 {
		w.str("its own rate (")
		ownRate()
		w.str(")")
	} else {
		w.str(bottName)
	}
	w.str(", ").whole(100 * float64(p.freeMem[c.host]) / float64(dst.MemoryMiB)).str("% memory free after")
	if f > limit {
		st.late++
		w.str("; predicted late: ").dur(dur(f - limit)).str(" after its deadline minus the ").dur(p.in.Policy.SafetyMargin.D()).str(" safety margin")
	}
	m.Reason = w.String()
	plan.Moves = append(plan.Moves, m)
	st.solos = append(st.solos, solo)
	st.finishes = append(st.finishes, f)
}

// choose picks VM v's destination, route and way of migrating: pre-copy to
// a safe site first; then, when that is not in time (limit: seconds after
// Now) and the policy allows it, a site at watch level (watch_sites:
// avoid), then a pause-and-copy. It returns the candidate, its predicted
// finish, the resource that sets it (-1: its own solo time) and its path
// (dense resources).
func (p *planner) choose(v int, limit float64) (cand, float64, int, []int) {
	opts := []searchOpts{{watch: p.watchMode == model.WatchAllow || p.watchMode == ""}}
	if p.watchMode == model.WatchAvoid && p.anyWatch {
		opts = append(opts, searchOpts{watch: true})
	}
	if p.pauseOK {
		for _, o := range opts {
			opts = append(opts, searchOpts{pause: true, watch: o.watch})
		}
		if p.pausePreferred(v) {
			// Under pressure a paused copy of a dirtying guest saves the
			// bytes pre-copy would re-send: try it first.
			n := len(opts) / 2
			opts = append(opts[n:], opts[:n]...)
		}
	}
	// A deadline-aware plan only wants destinations in time: the search
	// prunes the others (cheaper at scale) and says how late the VM would
	// be. The baselines take the earliest finish, in time or not.
	searchLimit := math.Inf(1)
	if p.in.Policy.DeadlineAware {
		searchLimit = limit
	}
	var first cand
	var ff float64
	var fb int
	var fp []int
	var hopeless [2]bool // per watch setting: no way can be in time
	for i, o := range opts {
		w := 0
		if o.watch {
			w = 1
		}
		if hopeless[w] {
			continue
		}
		c := p.search(v, o, searchLimit)
		if c.late && c.lbOnly {
			hopeless[w] = true
		}
		if !c.ok {
			if c.late && (!first.ok && (!first.late || c.lateF < first.lateF)) {
				first = c
			}
			continue
		}
		f, bott, path := p.finishOf(v, c)
		if f <= limit {
			return c, f, bott, path
		}
		if !first.ok || (i > 0 && f < ff) {
			first, ff, fb, fp = c, f, bott, path
		}
	}
	return first, ff, fb, fp
}

// finishOf predicts when candidate c of VM v finishes: finish_i =
// max(solo_i, busy_r + (B_r + b_i)/C_r over the resources r of its path).
func (p *planner) finishOf(v int, c cand) (float64, int, []int) {
	src := p.place[v]
	rt := &p.fromSite[p.preOf(v).site][c.route]
	b := c.est.bytes
	f, bott := c.est.solo+rt.setup, -1
	path := make([]int, 0, len(rt.links)+2)
	path = append(path, p.outRes(src))
	path = append(path, rt.links...)
	path = append(path, p.inRes(c.host))
	for _, r := range path {
		if t := p.busyR[r] + (p.bytesR[r]+b)/p.capR[r]; t > f {
			f, bott = t, r
		}
	}
	if t, _ := p.slotTerm(src, c.host, rt.links, c.est.solo+rt.setup); t > f {
		f, bott = t, slotBottleneck
	}
	return f, bott, path
}

// slotTerm is the finish a move from host src to host dst (-1: not
// chosen yet) over link directions links, with solo time solo, cannot beat
// under the policy's count limits: the solo times of the moves already
// planned in the same limit, plus its own, over the limit's count. It also
// names the limit (empty when none applies).
func (p *planner) slotTerm(src, dst int, links []int, solo float64) (float64, string) {
	if !p.hasSlots {
		return 0, ""
	}
	cc := p.in.Policy.Concurrency
	best, name := 0.0, ""
	try := func(t float64, what string) {
		if t > best {
			best, name = t, what
		}
	}
	if p.hasSourceSlots {
		fk := p.ix.HostFabricKey(src)
		for _, l := range []struct {
			k    slotKey
			n    int
			what string
		}{
			{slotKey{'g', 0, 0}, cc.Global, "concurrency.global"},
			{slotKey{'f', fk[0], fk[1]}, cc.PerFabric, "concurrency.per_fabric"},
			{slotKey{'h', src, 0}, cc.PerHostOut, "concurrency.per_host_out"},
		} {
			if l.n > 0 {
				try((p.slotWork[l.k]+solo)/float64(l.n), l.what)
			}
		}
	}
	if cc.PerLinkLimit > 0 {
		for _, r := range links {
			try(p.slotLink[r]/float64(cc.PerLinkLimit)+solo/float64(cc.PerLinkLimit), "concurrency.per_link")
		}
	}
	if cc.PerHostIn > 0 && dst >= 0 {
		try(p.slotInTerm(dst)+solo/float64(cc.PerHostIn), "concurrency.per_host_in")
	}
	return best, name
}

// slotInTerm is the part of the per_host_in term that the moves already
// planned into host h set (the destination search's trees hold it per
// host).
func (p *planner) slotInTerm(h int) float64 {
	if n := p.in.Policy.Concurrency.PerHostIn; n > 0 {
		return p.slotIn[h] / float64(n)
	}
	return 0
}

// occupySlots charges a planned move's solo time to its count limits.
func (p *planner) occupySlots(src, dst int, links []int, solo float64) {
	if !p.hasSlots {
		return
	}
	cc := p.in.Policy.Concurrency
	fk := p.ix.HostFabricKey(src)
	if cc.Global > 0 {
		p.slotWork[slotKey{'g', 0, 0}] += solo
	}
	if cc.PerFabric > 0 {
		p.slotWork[slotKey{'f', fk[0], fk[1]}] += solo
	}
	if cc.PerHostOut > 0 {
		p.slotWork[slotKey{'h', src, 0}] += solo
	}
	if cc.PerLinkLimit > 0 {
		for _, r := range links {
			p.slotLink[r] += solo
		}
	}
	if cc.PerHostIn > 0 {
		p.slotIn[dst] += solo
	}
}

// slotBottleneck marks (in finishOf's result) a finish set by a count
// limit.
const slotBottleneck = -2

// limiter appends what sets a move's rate: the narrowest resource of its
// path, or the per-migration bandwidth cap, or the TCP window over the RTT.
func (p *planner) limiter(w *reasonBuf, path []int, rate float64, rtt time.Duration) {
	for _, r := range path {
		if p.capR[r] == rate {
			w.str(p.resName(r))
			return
		}
	}
	if p.flowCap == rate {
		w.str("the policy's bandwidth cap")
		return
	}
	w.str("the TCP window over a ").str(rtt.String()).str(" round trip")
}

// noCapacityReason explains why no reachable safe host can take VM v.
func (p *planner) noCapacityReason(v int) string {
	n := p.needOf(v)
	src := p.place[v]
	mem, cpu, dsk := int64(math.MinInt64), math.Inf(-1), int64(math.MinInt64)
	for k, rt := range p.routesFrom(p.ix.HostSite(src)) {
		if !p.estimateOn(v, k).ok {
			continue
		}
		t := &p.groups[rt.group].t
		mem, cpu, dsk = max(mem, t.maxMem[1]), max(cpu, t.maxCPU[1]), max(dsk, t.maxDsk[1])
	}
	memStr := bytesStr(float64(n.mem) * model.MiB)
	switch {
	case mem < n.mem:
		return fmt.Sprintf("needs %s of memory; the most free on a reachable safe host is %s", memStr, bytesStr(float64(max(mem, 0))*model.MiB))
	case cpu < n.cpu:
		return fmt.Sprintf("needs %.0f vCPU; the most free on a reachable safe host is %.0f (overcommit %gx)", n.cpu, max(cpu, 0), p.vcpuRatio)
	case n.disk > 0 && dsk < n.disk:
		return fmt.Sprintf("needs %d GiB of local disk; the most free on a reachable safe host is %d GiB", n.disk, max(dsk, 0))
	}
	what := fmt.Sprintf("%s of memory, %.0f vCPU", memStr, n.cpu)
	if n.disk > 0 {
		what += fmt.Sprintf(" and %d GiB of disk", n.disk)
	}
	if n.aa >= 0 {
		return fmt.Sprintf("no reachable safe host has %s free without already running a VM of anti-affinity group %q", what, p.aaNames[n.aa])
	}
	return fmt.Sprintf("no reachable safe host has %s free at once", what)
}

// short formats a duration for reasons: whole seconds from a minute up,
// tenths below.
func short(d time.Duration) string {
	if d >= time.Minute || d <= -time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
