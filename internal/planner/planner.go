package planner

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/placement"
	"github.com/refuge-project/refuge/internal/precopy"
)

// Compute plans the evacuation of every VM at risk in in: the VMs that are
// not Frozen and run on a host of a site listed in in.Deadlines. It is a
// pure, deterministic function of in (see docs/planner.md for the
// algorithm and its bounds). It returns an error only for malformed input;
// a situation in which VMs cannot be saved yields a Plan that lists them in
// Unsaved with a code and a reason.
//
// With the deadline order, a plan that saves every VM it can move is
// compared with one that takes the largest first (longest processing time
// first, the classic rule against a long tail), and the one with the
// shorter predicted makespan is returned.
func Compute(in Input) (*Plan, error) {
	p, err := newPlanner(in)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	plan := p.run()
	if in.Policy.Order != model.OrderDeadline || !savesAll(plan) || len(plan.Moves) < 2 {
		return plan, nil
	}
	q, err := newPlanner(in)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	q.largestFirst = true
	if alt := q.run(); savesAll(alt) && len(alt.Moves) == len(plan.Moves) && alt.Makespan < plan.Makespan {
		return alt, nil
	}
	return plan, nil
}

// savesAll reports whether a plan leaves no VM behind for lack of time.
func savesAll(p *Plan) bool {
	for _, u := range p.Unsaved {
		if u.Code == CodeDeadline {
			return false
		}
	}
	return true
}

// DeadlinesFrom converts a scenario's threats into Input.Deadlines.
func DeadlinesFrom(ix *model.Index, threats []model.Threat) (map[int]time.Duration, error) {
	out := make(map[int]time.Duration, len(threats))
	for i, t := range threats {
		s, ok := ix.SiteByName[t.Site]
		if !ok {
			return nil, fmt.Errorf("threats[%d]: unknown site %q", i, t.Site)
		}
		if prev, dup := out[s]; dup {
			return nil, fmt.Errorf("threats[%d]: site %q is already threatened (deadline %v)", i, t.Site, prev)
		}
		out[s] = t.Deadline.D()
	}
	return out, nil
}

// Resource numbering: every bandwidth resource of the federation has a
// dense index. Host h sends on h and receives on nHost+h; direction d of
// link l is 2*nHost+2*l+d.
func (p *planner) outRes(h int) int     { return h }
func (p *planner) inRes(h int) int      { return p.nHost + h }
func (p *planner) linkRes(l, d int) int { return 2*p.nHost + 2*l + d }

// resource converts a dense index back to a netpath.Resource.
func (p *planner) resource(r int) netpath.Resource {
	switch {
	case r < p.nHost:
		return netpath.Resource{Kind: netpath.HostOut, ID: r}
	case r < 2*p.nHost:
		return netpath.Resource{Kind: netpath.HostIn, ID: r - p.nHost}
	}
	r -= 2 * p.nHost
	return netpath.Resource{Kind: netpath.Link, ID: r / 2, Dir: r % 2}
}

// planner holds the state of one Compute call.
type planner struct {
	in Input
	// Per site: whether it is threatened, and its deadline.
	threatened []bool
	deadline   []time.Duration
	ix         *model.Index
	fed        *model.Federation
	nVM        int
	nHost      int
	place      []int
	down       []bool

	// dest chooses destinations when the policy names a placement policy
	// (nil: the earliest predicted finish).
	dest placement.Policy

	// Source-side count limits of the policy (global, per fabric, per
	// source host) as resources: each move occupies a slot for its solo
	// time, so a limit of n carries the summed solo times over n.
	hasSlots       bool // any count limit
	hasSourceSlots bool // global, per fabric or per source host
	slotWork       map[slotKey]float64
	// The per_link and per_host_in limits' solo times, per dense link
	// resource and per destination host.
	slotLink, slotIn []float64
	// largestFirst: within a deadline, the most bytes first (Compute's
	// second plan) instead of the most priority per byte.
	largestFirst bool
	// Policy, normalised.
	pauseOK   bool   // migration.pause_and_copy
	watchMode string // watch_sites
	watch     []bool // per site: at threat level watch
	anyWatch  bool
	// Per site and source host: pre-copy cannot send everything in time
	// (markPressure).
	pressSite, pressHost []bool
	cfg                  precopy.Config
	// setup0 and switchover: precopy.Setup(0) and the switch-over, seconds.
	setup0, switchover float64
	// siteLimit: per site, its deadline in seconds after Now (threatened
	// sites only).
	siteLimit []float64
	flowCap   float64 // bytes/s per migration (+Inf: none)
	conns     int
	vcpuRatio float64
	margin    float64 // seconds

	// Bandwidth resources (dense, see outRes): capacity (bytes/s), time
	// until in-flight work releases them (s), planned bytes.
	capR, busyR, bytesR []float64
	used                []bool
	// Per threatened site, the virtual egress resource: the capacity of the
	// outgoing link directions its routes to safe hosts start with, and the
	// bytes the planned moves send out of it.
	egressCap, egressBytes []float64

	// Free capacity per host (negative when already overcommitted).
	freeMem  []int64 // MiB
	freeDisk []int64 // GiB
	freeVCPU []float64
	// Anti-affinity: group ids (per VM, -1 for none) and the (group, host)
	// pairs in use.
	aaGroup []int32
	aaNames []string
	aaOn    map[aaKey]struct{}

	// Destinations: groups of safe, up hosts with identical paths, and for
	// each site the routes from it to every group.
	groups    []*group
	hostGroup []int32 // -1: not a destination
	hostLeaf  []int32
	fromSite  [][]route
	routeDone []bool
	// pathLB and lbStamp: the search's lower bound per distinct link list
	// (route.path) of the VM's site, valid when stamped with lbStamp.
	// warm: per threatened site, the route of its last search's best
	// candidate (-1: none), searched first.
	warm    []int
	pathLB  []pathBound
	lbStamp uint64
	// resLB and resStamp: the same per resource (link direction).
	resLB    []float64
	resStamp []uint64
	// resNames caches the resources' names (resName); why is the buffer
	// reasons are built in.
	resNames []string
	why      reasonBuf
	noRoute  []string // per site: why no group is reachable

	// Per-VM facts, filled for at-risk VMs.
	prio    []prioInfo
	depth   []int
	svcOf   []int   // service index per VM, -1 for none
	pre     []vmPre // per at-risk VM, at preIdx[VM] (preOf)
	preIdx  []int32
	classes []*rateClasses // per source host
	ests    []storedEstimate
	nextEst int // the first unallocated estimate of ests
}

type aaKey struct{ group, host int32 }

// slotKey names one count limit: 'g' global, 'f' a fabric (a, b: its
// site and fabric), 'h' a source host (a).
type slotKey struct {
	kind byte
	a, b int
}

// newPlanner checks in and prepares the planner's state.
func newPlanner(in Input) (*planner, error) {
	ix := in.Index
	if ix == nil || ix.Fed == nil {
		return nil, errors.New("input has no federation index")
	}
	fed := ix.Fed
	p := &planner{in: in, ix: ix, fed: fed, nVM: len(fed.VMs), nHost: len(ix.Hosts)}
	if len(ix.VMHost) != p.nVM || len(ix.VMService) != p.nVM {
		return nil, fmt.Errorf("index is stale: it places %d VMs, the federation has %d", len(ix.VMHost), p.nVM)
	}
	if err := p.checkInput(); err != nil {
		return nil, err
	}
	if err := p.setPolicy(in.Policy); err != nil {
		return nil, err
	}
	p.initResources()
	if err := p.initBusy(); err != nil {
		return nil, err
	}
	// Priorities and the hosts' load are independent walks over every VM:
	// one in the background.
	var prioErr error
	var wg sync.WaitGroup
	wg.Go(func() { prioErr = p.initPriorities() })
	p.initHosts()
	p.initGroups()
	wg.Wait()
	if prioErr != nil {
		return nil, prioErr
	}
	return p, nil
}

// checkInput validates the slices of in against the index. Empty slices
// mean the same as nil.
func (p *planner) checkInput() error {
	in := &p.in
	nLink := len(p.fed.Links)
	if len(in.Placement) == 0 && p.nVM > 0 {
		in.Placement = nil
	}
	if len(in.HostDown) == 0 {
		in.HostDown = nil
	}
	if len(in.LinkMbps) == 0 {
		in.LinkMbps = nil
	}
	if len(in.Frozen) == 0 {
		in.Frozen = make([]bool, p.nVM)
	}
	switch {
	case in.Placement != nil && len(in.Placement) != p.nVM:
		return fmt.Errorf("placement has %d entries, want one per VM (%d)", len(in.Placement), p.nVM)
	case in.HostDown != nil && len(in.HostDown) != p.nHost:
		return fmt.Errorf("host_down has %d entries, want one per host (%d)", len(in.HostDown), p.nHost)
	case in.LinkMbps != nil && len(in.LinkMbps) != nLink:
		return fmt.Errorf("link_mbps has %d entries, want one per link (%d)", len(in.LinkMbps), nLink)
	case len(in.Frozen) != p.nVM:
		return fmt.Errorf("frozen has %d entries, want one per VM (%d)", len(in.Frozen), p.nVM)
	}
	p.place = in.Placement
	if p.place == nil {
		p.place = p.ix.VMHost
	}
	for i, h := range p.place {
		if h < -1 || h >= p.nHost {
			return fmt.Errorf("placement[%d] (VM %s) is host %d, want -1 or a host index below %d", i, p.fed.VMs[i].Name, h, p.nHost)
		}
	}
	p.down = in.HostDown
	if p.down == nil {
		p.down = make([]bool, p.nHost)
	}
	for h := range p.nHost {
		if nic := p.ix.Host(h).NICMbps; !(nic > 0) || math.IsInf(nic, 0) {
			return fmt.Errorf("host %s has NIC speed %g Mbit/s, want a finite value > 0", p.ix.Host(h).Name, nic)
		}
	}
	for i, bw := range in.LinkMbps {
		if !(bw >= 0) || math.IsInf(bw, 0) {
			return fmt.Errorf("link_mbps[%d] (link %s) is %g, want a finite value >= 0", i, p.fed.Links[i].Name, bw)
		}
	}
	for i, r := range in.Reserved {
		if r.VM < 0 || r.VM >= p.nVM || r.Host < 0 || r.Host >= p.nHost {
			return fmt.Errorf("reserved[%d] names VM %d on host %d, want a VM below %d and a host below %d", i, r.VM, r.Host, p.nVM, p.nHost)
		}
	}
	if in.Watch != nil && len(in.Watch) != len(p.fed.Sites) {
		return fmt.Errorf("watch has %d entries, want one per site (%d)", len(in.Watch), len(p.fed.Sites))
	}
	p.watch = make([]bool, len(p.fed.Sites))
	copy(p.watch, in.Watch)
	for _, w := range p.watch {
		p.anyWatch = p.anyWatch || w
	}
	p.threatened = make([]bool, len(p.fed.Sites))
	p.deadline = make([]time.Duration, len(p.fed.Sites))
	for _, s := range sortedSites(in.Deadlines) {
		if s < 0 || s >= len(p.fed.Sites) {
			return fmt.Errorf("deadlines names site %d, want a site index below %d", s, len(p.fed.Sites))
		}
		p.threatened[s], p.deadline[s] = true, in.Deadlines[s]
	}
	p.siteLimit = make([]float64, len(p.fed.Sites))
	for s := range p.siteLimit {
		p.siteLimit[s] = (p.deadline[s] - in.Now).Seconds()
	}
	return nil
}

// sortedSites returns the keys of a deadline map in increasing order.
func sortedSites(m map[int]time.Duration) []int {
	out := make([]int, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Ints(out)
	return out
}

// setPolicy checks and normalises the policy fields the planner uses.
func (p *planner) setPolicy(pol model.Policy) error {
	switch pol.Order {
	case model.OrderPriority, model.OrderDeadline, model.OrderFIFO, "":
	default:
		return fmt.Errorf("policy %q: unknown order %q (want %q, %q or %q)", pol.Name, pol.Order, model.OrderPriority, model.OrderDeadline, model.OrderFIFO)
	}
	switch {
	case math.IsNaN(pol.VCPUOvercommit) || pol.VCPUOvercommit < 0:
		return fmt.Errorf("policy %q: vcpu_overcommit is %g, want >= 0 (0 means 1)", pol.Name, pol.VCPUOvercommit)
	case pol.SafetyMargin < 0:
		return fmt.Errorf("policy %q: safety_margin is %v, want >= 0", pol.Name, pol.SafetyMargin.D())
	case math.IsNaN(pol.Migration.MaxBandwidthMiBps) || pol.Migration.MaxBandwidthMiBps < 0:
		return fmt.Errorf("policy %q: max_bandwidth_mibps is %g, want >= 0 (0 means no cap)", pol.Name, pol.Migration.MaxBandwidthMiBps)
	case pol.Migration.MaxDowntime < 0:
		return fmt.Errorf("policy %q: max_downtime is %v, want >= 0", pol.Name, pol.Migration.MaxDowntime.D())
	}
	switch pol.WatchSites {
	case "", model.WatchAllow, model.WatchAvoid, model.WatchExclude:
	default:
		return fmt.Errorf("policy %q: unknown watch_sites %q (want %q, %q or %q)", pol.Name, pol.WatchSites, model.WatchAllow, model.WatchAvoid, model.WatchExclude)
	}
	p.watchMode = pol.WatchSites
	p.pauseOK = pol.Migration.PauseAndCopy
	cc := pol.Concurrency
	p.hasSourceSlots = cc.Global > 0 || cc.PerFabric > 0 || cc.PerHostOut > 0
	p.hasSlots = p.hasSourceSlots || cc.PerLinkLimit > 0 || cc.PerHostIn > 0
	p.slotWork = map[slotKey]float64{}
	p.setup0, p.switchover = precopy.Setup(0).Seconds(), precopy.SwitchoverOverhead.Seconds()
	p.vcpuRatio = pol.VCPUOvercommit
	if p.vcpuRatio == 0 {
		p.vcpuRatio = 1
	}
	p.margin = pol.SafetyMargin.Seconds()
	p.cfg = precopy.Config{MaxDowntime: pol.Migration.MaxDowntime.D(), AutoConverge: pol.Migration.AutoConverge}
	p.flowCap = pol.Migration.MaxBandwidthMiBps * model.MiB
	p.conns = max(1, pol.Migration.ParallelConnections)
	return p.setPlacement(pol.Placement)
}

// initResources sets every resource's capacity.
func (p *planner) initResources() {
	nLink := len(p.fed.Links)
	n := 2*p.nHost + 2*nLink
	p.capR = make([]float64, n)
	p.busyR = make([]float64, n)
	p.bytesR = make([]float64, n)
	p.used = make([]bool, n)
	p.resLB = make([]float64, n)
	p.slotLink = make([]float64, n)
	p.slotIn = make([]float64, p.nHost)
	p.resStamp = make([]uint64, n)
	for r := range n {
		p.capR[r] = netpath.Capacity(p.ix, p.resource(r), p.in.LinkMbps)
	}
	p.egressCap = make([]float64, len(p.fed.Sites))
	p.egressBytes = make([]float64, len(p.fed.Sites))
}

// initBusy converts Input.Busy to the dense resource numbering.
func (p *planner) initBusy() error {
	keys := make([]netpath.Resource, 0, len(p.in.Busy))
	for r := range p.in.Busy {
		keys = append(keys, r)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Dir < b.Dir
	})
	for _, r := range keys {
		d := p.in.Busy[r]
		var i int
		switch {
		case r.Kind == netpath.HostOut && r.ID >= 0 && r.ID < p.nHost && r.Dir == 0:
			i = p.outRes(r.ID)
		case r.Kind == netpath.HostIn && r.ID >= 0 && r.ID < p.nHost && r.Dir == 0:
			i = p.inRes(r.ID)
		case r.Kind == netpath.Link && r.ID >= 0 && r.ID < len(p.fed.Links) && (r.Dir == 0 || r.Dir == 1):
			i = p.linkRes(r.ID, r.Dir)
		default:
			return fmt.Errorf("busy names resource %+v, which the federation does not have", r)
		}
		if d < 0 {
			return fmt.Errorf("busy[%s] is %v, want >= 0", netpath.Name(p.ix, r), d)
		}
		p.busyR[i] = d.Seconds()
	}
	return nil
}

// initHosts accounts for what the hosts already carry: the VMs placed on
// them and the reservations of migrations in flight.
func (p *planner) initHosts() {
	p.freeMem = make([]int64, p.nHost)
	p.freeDisk = make([]int64, p.nHost)
	p.freeVCPU = make([]float64, p.nHost)
	for h := range p.nHost {
		hh := p.ix.Host(h)
		p.freeMem[h] = hh.MemoryMiB
		p.freeDisk[h] = hh.DiskGiB
		p.freeVCPU[h] = float64(hh.VCPU) * p.vcpuRatio
	}
	p.aaGroup = make([]int32, p.nVM)
	ids := map[string]int32{}
	inGroups := 0
	for i := range p.fed.VMs {
		g := p.fed.VMs[i].AntiAffinity
		p.aaGroup[i] = -1
		if g == "" {
			continue
		}
		inGroups++
		id, ok := ids[g]
		if !ok {
			id = int32(len(p.aaNames))
			ids[g] = id
			p.aaNames = append(p.aaNames, g)
		}
		p.aaGroup[i] = id
	}
	// At most a pair per VM in a group, and as many for the moves.
	p.aaOn = make(map[aaKey]struct{}, 2*inGroups)
	for i, h := range p.place {
		if h >= 0 {
			p.occupy(i, h)
		}
	}
	for _, r := range p.in.Reserved {
		p.occupy(r.VM, r.Host)
	}
}

// occupy charges VM v's footprint to host h.
func (p *planner) occupy(v, h int) {
	vm := &p.fed.VMs[v]
	p.freeMem[h] -= vm.MemoryMiB
	p.freeVCPU[h] -= float64(vm.VCPU)
	if vm.CopiesDisk() {
		p.freeDisk[h] -= vm.DiskGiB
	}
	if g := p.aaGroup[v]; g >= 0 {
		p.aaOn[aaKey{g, int32(h)}] = struct{}{}
	}
}

// dur converts seconds to a duration, saturating instead of overflowing.
func dur(s float64) time.Duration {
	const maxSecs = float64(math.MaxInt64) / 1e9
	switch {
	case s >= maxSecs:
		return math.MaxInt64
	case s <= -maxSecs:
		return math.MinInt64
	}
	return time.Duration(math.Round(s * 1e9))
}
