package bound

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/precopy"
)

// Input is the state the bounds are computed from. Nothing in it depends on
// a schedule.
type Input struct {
	Index *model.Index
	// Placement is the host each VM runs on (-1: lost); nil means
	// Index.VMHost.
	Placement []int
	// HostDown marks hosts that are down; nil means all are up.
	HostDown []bool
	// LinkMbps overrides the links' bandwidth (degraded or cut links); nil
	// means the federation's.
	LinkMbps []float64
	// Deadlines holds, per threatened site index, the time the site is lost,
	// on the same clock as Now (e.g. offsets from a simulation's epoch).
	// Every other site is safe.
	Deadlines map[int]time.Duration
	// Now is the time the evacuation starts; nothing is in flight.
	Now time.Duration
	// LiveOnly bounds evacuations that keep every guest running while it
	// moves: a VM's least bytes and time are those of pre-copy, and a
	// paused copy counts only for a guest pre-copy cannot move at all.
	// (With deadlines far away no policy pauses a guest, so makespans are
	// compared with this bound.)
	LiveOnly bool
}

// Ways a VM can move at its least time (VM.Mode).
const (
	ModePauseAndCopy = "pause-and-copy"
	ModePreCopy      = "pre-copy"
)

// VM is one at-risk VM's best case: its least bytes and least time over
// every way to move it, at the best rate any path to a safe host with room
// for it gives it alone.
type VM struct {
	VM   int    `json:"vm"`
	Name string `json:"name"`
	Host int    `json:"host"`
	Site int    `json:"site"`
	// Movable is false when no safe host has room for it, no path with
	// bandwidth reaches one, or its host is down.
	Movable bool `json:"movable"`
	// Bytes is the least it must send: disk (local storage) plus memory.
	Bytes float64 `json:"bytes"`
	// MemoryBytes is what it needs at its destination.
	MemoryBytes float64 `json:"memory_bytes"`
	// Rate is the best rate (bytes/s) a path gives it alone.
	Rate float64 `json:"rate_bps"`
	// Time is its least migration time; Setup the least set-up part.
	Time  time.Duration `json:"time"`
	Setup time.Duration `json:"setup"`
	// Mode is the way that reaches Time (ModePauseAndCopy or ModePreCopy).
	Mode     string `json:"mode"`
	Priority int    `json:"priority"`
}

// Migration returns the migration parameters the bounds assume: those of
// model.RefugePolicy (300 ms downtime limit, auto-converge, no bandwidth
// cap, one connection).
func Migration() model.MigrationPolicy { return model.RefugePolicy().Migration }

// state is the input checked and indexed.
type state struct {
	liveOnly   bool
	ix         *model.Index
	place      []int
	up         []bool    // per host
	threatened []bool    // per site
	window     []float64 // per threatened site: deadline − now, seconds
	linkCap    [][2]float64
	nicOut     []float64 // per host, bytes/s
	nicIn      []float64
	freeMem    []float64 // per safe up host, bytes; 0 elsewhere
	safe       []*safeSite
	// widest[s][t]: the largest bottleneck capacity of a route from site s
	// to site t; minRTT[s][t]: the least RTT of a route with bandwidth.
	widest [][]float64
	minRTT [][]time.Duration
	vms    []VM // the at-risk VMs, in federation order
}

// safeSite is a safe site's up hosts, most free memory first, with the
// largest NIC-in capacity of every prefix.
type safeSite struct {
	site    int
	hosts   []int
	free    []float64
	bestNIC []float64
}

// maxNICFor returns the largest NIC-in capacity among the site's hosts with
// at least mem bytes free (0 if none).
func (s *safeSite) maxNICFor(mem float64) float64 {
	n := sort.Search(len(s.free), func(i int) bool { return s.free[i] < mem })
	if n == 0 {
		return 0
	}
	return s.bestNIC[n-1]
}

// ErrBadInput is wrapped by the errors of malformed inputs.
var ErrBadInput = errors.New("bound: invalid input")

func prepare(in Input) (*state, error) {
	ix := in.Index
	if ix == nil {
		return nil, fmt.Errorf("%w: no federation index", ErrBadInput)
	}
	nh, nv, ns, nl := len(ix.Hosts), len(ix.Fed.VMs), len(ix.Fed.Sites), len(ix.Fed.Links)
	st := &state{ix: ix, place: in.Placement, up: make([]bool, nh), threatened: make([]bool, ns), window: make([]float64, ns), liveOnly: in.LiveOnly}
	if st.place == nil {
		st.place = ix.VMHost
	}
	switch {
	case len(st.place) != nv:
		return nil, fmt.Errorf("%w: placement has %d entries for %d VMs", ErrBadInput, len(st.place), nv)
	case in.HostDown != nil && len(in.HostDown) != nh:
		return nil, fmt.Errorf("%w: host-down list has %d entries for %d hosts", ErrBadInput, len(in.HostDown), nh)
	case in.LinkMbps != nil && len(in.LinkMbps) != nl:
		return nil, fmt.Errorf("%w: link bandwidth overrides have %d entries for %d links", ErrBadInput, len(in.LinkMbps), nl)
	}
	for v, h := range st.place {
		if h < -1 || h >= nh {
			return nil, fmt.Errorf("%w: VM %s placed on host %d of %d", ErrBadInput, ix.Fed.VMs[v].Name, h, nh)
		}
	}
	for l, bw := range in.LinkMbps {
		if !(bw >= 0) || math.IsInf(bw, 1) {
			return nil, fmt.Errorf("%w: link %s bandwidth override %g Mbit/s must be finite and >= 0", ErrBadInput, ix.Fed.Links[l].Name, bw)
		}
	}
	for s, d := range in.Deadlines {
		if s < 0 || s >= ns {
			return nil, fmt.Errorf("%w: deadline for site %d of %d", ErrBadInput, s, ns)
		}
		st.threatened[s] = true
		st.window[s] = (d - in.Now).Seconds()
	}
	for h := range st.up {
		st.up[h] = in.HostDown == nil || !in.HostDown[h]
	}
	st.capacities(in.LinkMbps)
	st.routes()
	st.safeHosts()
	st.estimate()
	return st, nil
}

// capacities fills the NIC and link capacities.
func (st *state) capacities(linkMbps []float64) {
	ix := st.ix
	st.nicOut = make([]float64, len(ix.Hosts))
	st.nicIn = make([]float64, len(ix.Hosts))
	for h := range ix.Hosts {
		st.nicOut[h] = netpath.Capacity(ix, netpath.Resource{Kind: netpath.HostOut, ID: h}, nil)
		st.nicIn[h] = netpath.Capacity(ix, netpath.Resource{Kind: netpath.HostIn, ID: h}, nil)
	}
	st.linkCap = make([][2]float64, len(ix.Fed.Links))
	for l := range ix.Fed.Links {
		for dir := range 2 {
			st.linkCap[l][dir] = netpath.Capacity(ix, netpath.Resource{Kind: netpath.Link, ID: l, Dir: dir}, linkMbps)
		}
	}
}

// arc is one direction of a link with bandwidth.
type arc struct {
	from, to int
	cap      float64
	rtt      time.Duration
	link     int
}

// arcs lists the link directions with bandwidth, between distinct sites.
func (st *state) arcs() []arc {
	ix := st.ix
	var out []arc
	for l := range ix.Fed.Links {
		lk := &ix.Fed.Links[l]
		a, okA := ix.SiteByName[lk.A]
		b, okB := ix.SiteByName[lk.B]
		if !okA || !okB || a == b {
			continue
		}
		rtt := time.Duration(lk.RTTMs * float64(time.Millisecond))
		if c := st.linkCap[l][0]; c > 0 {
			out = append(out, arc{a, b, c, rtt, l})
		}
		if c := st.linkCap[l][1]; c > 0 {
			out = append(out, arc{b, a, c, rtt, l})
		}
	}
	return out
}

// routes computes, from every threatened site, the widest bottleneck and
// the least RTT to every site over any route (transit anywhere), using only
// link directions with bandwidth. The two may come from different routes:
// each is a bound on what any single route offers.
func (st *state) routes() {
	n := len(st.ix.Fed.Sites)
	arcs := st.arcs()
	st.widest = make([][]float64, n)
	st.minRTT = make([][]time.Duration, n)
	for s := range n {
		if !st.threatened[s] {
			continue
		}
		wide := make([]float64, n)
		rtt := make([]time.Duration, n)
		done := make([]bool, n)
		for i := range rtt {
			rtt[i] = -1
		}
		wide[s], rtt[s] = math.Inf(1), 0
		// Dijkstra for the widest bottleneck (labels only grow narrower).
		for {
			u := -1
			for i := range n {
				if !done[i] && wide[i] > 0 && (u < 0 || wide[i] > wide[u]) {
					u = i
				}
			}
			if u < 0 {
				break
			}
			done[u] = true
			for _, a := range arcs {
				if a.from == u && !done[a.to] {
					wide[a.to] = math.Max(wide[a.to], math.Min(wide[u], a.cap))
				}
			}
		}
		clear(done)
		// Dijkstra for the least RTT.
		for {
			u := -1
			for i := range n {
				if !done[i] && rtt[i] >= 0 && (u < 0 || rtt[i] < rtt[u]) {
					u = i
				}
			}
			if u < 0 {
				break
			}
			done[u] = true
			for _, a := range arcs {
				if a.from == u && !done[a.to] && (rtt[a.to] < 0 || rtt[u]+a.rtt < rtt[a.to]) {
					rtt[a.to] = rtt[u] + a.rtt
				}
			}
		}
		st.widest[s], st.minRTT[s] = wide, rtt
	}
}

// safeHosts computes the free memory of the safe sites' up hosts.
func (st *state) safeHosts() {
	ix := st.ix
	st.freeMem = make([]float64, len(ix.Hosts))
	for h := range ix.Hosts {
		if st.up[h] && !st.threatened[ix.HostSite(h)] {
			st.freeMem[h] = float64(ix.Host(h).MemoryMiB) * model.MiB
		}
	}
	for v, h := range st.place {
		if h >= 0 {
			st.freeMem[h] -= ix.Fed.VMs[v].MemoryBytes()
		}
	}
	bySite := map[int]*safeSite{}
	for h := range ix.Hosts {
		s := ix.HostSite(h)
		if !st.up[h] || st.threatened[s] {
			continue
		}
		ss := bySite[s]
		if ss == nil {
			ss = &safeSite{site: s}
			bySite[s] = ss
			st.safe = append(st.safe, ss)
		}
		ss.hosts = append(ss.hosts, h)
	}
	for _, ss := range st.safe {
		sort.SliceStable(ss.hosts, func(i, j int) bool { return st.freeMem[ss.hosts[i]] > st.freeMem[ss.hosts[j]] })
		best := 0.0
		for _, h := range ss.hosts {
			best = math.Max(best, st.nicIn[h])
			ss.free = append(ss.free, st.freeMem[h])
			ss.bestNIC = append(ss.bestNIC, best)
		}
	}
	sort.Slice(st.safe, func(i, j int) bool { return st.safe[i].site < st.safe[j].site })
}

// estimate computes every at-risk VM's best case.
func (st *state) estimate() {
	ix := st.ix
	mig := Migration()
	cfg := precopy.Config{MaxDowntime: mig.MaxDowntime.D(), AutoConverge: mig.AutoConverge}
	conns := max(1, mig.ParallelConnections)
	for v, h := range st.place {
		if h < 0 || !st.threatened[ix.HostSite(h)] {
			continue
		}
		vm := &ix.Fed.VMs[v]
		g := precopy.Guest{MemoryBytes: vm.MemoryBytes(), DirtyRate: vm.DirtyRateMiBps * model.MiB, WorkingSet: vm.WorkingSetMiB * model.MiB}
		if vm.CopiesDisk() {
			g.DiskBytes = vm.DiskBytes()
		}
		s := ix.HostSite(h)
		e := VM{VM: v, Name: vm.Name, Host: h, Site: s, Bytes: g.DiskBytes + g.MemoryBytes, MemoryBytes: g.MemoryBytes,
			Priority: vm.Priority, Time: math.MaxInt64, Setup: math.MaxInt64}
		if st.up[h] {
			for _, ss := range st.safe {
				if st.minRTT[s][ss.site] < 0 {
					continue
				}
				rate := math.Min(st.nicOut[h], math.Min(ss.maxNICFor(g.MemoryBytes), st.widest[s][ss.site]))
				rtt := netpath.LANRTT + st.minRTT[s][ss.site]
				rate = math.Min(rate, netpath.FlowCap(mig.MaxBandwidthMiBps*model.MiB, rtt, conns))
				if !(rate > 0) {
					continue
				}
				e.Movable = true
				e.Rate = math.Max(e.Rate, rate)
				e.Setup = min(e.Setup, precopy.Setup(rtt))
				// Pause-and-copy: set-up, one copy of disk and memory, the
				// switch-over.
				pause := addSat(precopy.Setup(rtt)+precopy.SwitchoverOverhead, seconds(e.Bytes/rate))
				live := precopy.Solo(g, cfg, rate, rtt)
				if st.liveOnly && live.Converges {
					if e.Mode != ModePreCopy || live.Total < e.Time {
						e.Time, e.Mode, e.Bytes = live.Total, ModePreCopy, math.Min(live.Bytes, liveBytesOr(e))
					}
					continue
				}
				if pause < e.Time && e.Mode != ModePreCopy {
					e.Time, e.Mode = pause, ModePauseAndCopy
				}
				if !st.liveOnly && live.Converges && live.Total < e.Time {
					e.Time, e.Mode = live.Total, ModePreCopy
				}
			}
		}
		if !e.Movable {
			e.Time, e.Setup = 0, 0
		}
		st.vms = append(st.vms, e)
	}
}

// liveBytesOr returns the least pre-copy bytes found so far for e, or
// +Inf before any.
func liveBytesOr(e VM) float64 {
	if e.Mode == ModePreCopy {
		return e.Bytes
	}
	return math.Inf(1)
}

func seconds(s float64) time.Duration {
	if s >= float64(math.MaxInt64)/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(s * float64(time.Second))
}

// addSat adds durations, saturating at the largest one.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// destinations returns the safe up hosts with at least mem bytes free.
func (st *state) destinations(mem float64) []int {
	var out []int
	for _, ss := range st.safe {
		for i, h := range ss.hosts {
			if ss.free[i] < mem {
				break
			}
			out = append(out, h)
		}
	}
	sort.Ints(out)
	return out
}

// group is a set of movable VMs whose moves share a bound.
type group []*VM

func (g group) minMemory() float64 {
	m := math.Inf(1)
	for _, v := range g {
		m = math.Min(m, v.MemoryBytes)
	}
	return m
}

func (g group) minSetup() time.Duration {
	m := time.Duration(math.MaxInt64)
	for _, v := range g {
		m = min(m, v.Setup)
	}
	return m
}

func (g group) bytes() float64 {
	var b float64
	for _, v := range g {
		b += v.Bytes
	}
	return b
}

// flow returns the maximum flow from the group's source hosts (through
// their NICs) over the link directions with bandwidth, transit through any
// site allowed, into the NICs of the safe hosts that have room for the
// group's smallest VM.
func (st *state) flow(g group) float64 { return st.flowAt(g, math.Inf(-1)) }

// flowAt is flow at `at` seconds from now: the threatened sites whose
// deadline has come by then are gone, with their hosts and their links
// (a site lost to a disaster takes its WAN routers with it).
func (st *state) flowAt(g group, at float64) float64 {
	ix := st.ix
	lost := func(s int) bool { return st.threatened[s] && st.window[s] <= at }
	n := newFlowNet(len(ix.Fed.Sites) + 2)
	src, sink := len(ix.Fed.Sites), len(ix.Fed.Sites)+1
	hostNode := map[int]int{}
	for _, v := range g {
		if _, ok := hostNode[v.Host]; ok || lost(v.Site) {
			continue
		}
		hn := n.addNode()
		hostNode[v.Host] = hn
		n.addEdge(src, hn, st.nicOut[v.Host])
		n.addEdge(hn, v.Site, math.Inf(1))
	}
	for _, a := range st.arcs() {
		if !lost(a.from) && !lost(a.to) {
			n.addEdge(a.from, a.to, a.cap)
		}
	}
	for _, h := range st.destinations(g.minMemory()) {
		hn := n.addNode()
		n.addEdge(ix.HostSite(h), hn, st.nicIn[h])
		n.addEdge(hn, sink, math.Inf(1))
	}
	return n.maxFlow(src, sink)
}

// flowBytes bounds the bytes the group's VMs can send within window
// seconds from now: nothing before the group's least set-up, and at each
// moment after it at most the maximum flow through what is left of the
// network then (flowAt), which changes only when a threatened site's
// deadline comes.
func (st *state) flowBytes(g group, window float64) float64 {
	start := g.minSetup().Seconds()
	cuts := []float64{window}
	for s, w := range st.window {
		if st.threatened[s] && w > start && w < window {
			cuts = append(cuts, w)
		}
	}
	sort.Float64s(cuts)
	total, a := 0.0, start
	for _, b := range cuts {
		if b > a {
			total += st.flowAt(g, a) * (b - a)
			a = b
		}
	}
	return total
}

// nicIn returns the total NIC-in capacity and free memory of the safe
// hosts with room for the group's smallest VM.
func (st *state) nicInAndMemory(g group) (nic, mem float64) {
	for _, h := range st.destinations(g.minMemory()) {
		nic += st.nicIn[h]
		mem += st.freeMem[h]
	}
	return nic, mem
}

// ForScenario returns the input for a scenario's initial state: the
// federation's placement, every host up, the links' own bandwidth, and the
// threats' deadlines (offsets from the scenario's start, Now = 0). The
// scenario's events are not applied.
func ForScenario(ix *model.Index, sc *model.Scenario) Input {
	in := Input{Index: ix, Deadlines: make(map[int]time.Duration, len(sc.Threats))}
	for _, t := range sc.Threats {
		in.Deadlines[ix.SiteByName[t.Site]] = t.Deadline.D()
	}
	return in
}
