package executor

import (
	"container/heap"
	"math"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/planner"
)

// Admission. Every migration holds, while it runs, a share of each unit it
// needs: the bandwidth resources of its path (source NIC, each WAN link
// direction, destination NIC), in bytes/s, and the policy's count limits
// (global, per fabric, per host out and in, per link). A queued move starts
// only when every unit admits it; otherwise it waits ("parks") on the first
// unit that does not, in plan order, and is woken when that unit frees
// capacity. Each event therefore touches only the moves that wait on what
// it freed: O(log n) per move started or parked, not a scan of the queue.
// Units are accounts of a Ledger, shared with the executors running side
// by side; the moves parked on them are each executor's own.

// unitKind names what a unit limits.
type unitKind uint8

const (
	// Bandwidth units (bytes/s).
	uNICOut unitKind = iota
	uNICIn
	uLink
	// Count units (migrations at once).
	uGlobal
	uFabric
	uHostOutN
	uHostInN
	uLinkN
)

func (k unitKind) bandwidth() bool { return k <= uLink }

type unitKey struct {
	kind unitKind
	a, b int
}

// admissionSlack lets a bandwidth unit admit a little more than its
// capacity, so that a migration limited elsewhere (e.g. by its own 1 Gbit/s
// NIC) can join a link already filled by a faster one: max-min sharing then
// slows the faster one by at most this share.
const admissionSlack = 0.1

// admissionShare is the least share of its demand a migration must find
// free on every bandwidth unit to start: a unit with room for half of a
// migration lets it start (it gets the rest as others end) rather than
// idle, but a full one does not make every migration on it slower.
const admissionShare = 0.5

// admissionIdle: a unit with at least this share of its capacity free
// (within the slack) admits a migration whatever it asks. Migrations are
// capped by their own flow (TCP window over the RTT, the policy's
// bandwidth), so one may leave a fat link a third idle while the next
// waits for half its demand; using that remainder, at the cost of slowing
// the migrations already there to their fair share, saved more on every
// benchmark set measured (refuge bench saved, docs/benchmarks.md) and
// shortened the makespans.
const admissionIdle = 0.25

// unit is one admission-limited thing, an account of a Ledger: its
// fields but key and res are guarded by the ledger's mutex.
type unit struct {
	key unitKey
	res netpath.Resource // bandwidth units: the resource
	// capModel is the bandwidth the model gives the resource now (with
	// announced link changes); est is what admission uses: capModel for
	// NICs, the feedback controller's estimate for links. Count units: the
	// limit, in both.
	capModel, est float64
	used          float64 // admitted demand (bytes/s) or migrations, of every executor
	holders       int
	// waiting: the executors with moves parked on the unit.
	waiting []waiter
	// adaptedBy last changed est (feedback controller), at adaptedAt.
	adaptedBy *member
	adaptedAt time.Time
}

// free is the bandwidth (or count) the unit can still admit.
func (u *unit) free() float64 {
	if !u.key.kind.bandwidth() {
		return u.est - u.used
	}
	return u.est*(1+admissionSlack) - u.used
}

// admits reports whether the unit can take a migration of demand d.
func (u *unit) admits(d float64) bool {
	if !u.key.kind.bandwidth() {
		return u.used+1 <= u.est
	}
	if u.est <= 0 {
		return false
	}
	// A migration that asks for no more than its fair share takes only
	// what it asks (max-min sharing): it joins, and the others each give
	// up a little.
	free := u.free()
	return u.holders == 0 || free >= admissionShare*d || free >= admissionIdle*u.est*(1+admissionSlack) ||
		d <= u.est/float64(u.holders+1)
}

// take and give account for a migration of demand d.
func (u *unit) take(d float64) {
	if !u.key.kind.bandwidth() {
		d = 1
	}
	u.used += d
	u.holders++
}

func (u *unit) give(d float64) {
	if !u.key.kind.bandwidth() {
		d = 1
	}
	u.used -= d
	u.holders--
	if u.holders <= 0 {
		u.used, u.holders = 0, 0
	}
}

// queued is a move waiting to start.
type queued struct {
	m     planner.Move
	seq   int
	path  netpath.Path
	units []*unit
	// transit: the sites path crosses (netpath.Transit), computed once.
	transit []int
	demand  float64 // bytes/s: the path's narrowest admitted capacity, within the flow cap
	idx     int     // heap index
	// due: its VM's deadline when it was queued (zero: none), for the
	// order between executors side by side (Ledger.yields).
	due time.Time
}

// moveHeap orders queued moves by plan position.
type moveHeap []*queued

func (h moveHeap) Len() int           { return len(h) }
func (h moveHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h moveHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *moveHeap) Push(x any)        { q := x.(*queued); q.idx = len(*h); *h = append(*h, q) }
func (h *moveHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	q.idx = -1
	return q
}

// unitFor returns the unit for key: the ledger's, created on first use.
func (e *Executor) unitFor(k unitKey) *unit {
	if u := e.units[k]; u != nil {
		return u
	}
	e.led.mu.Lock()
	u := e.led.units[k]
	if u == nil {
		u = e.newUnit(k)
		e.led.units[k] = u
	}
	e.led.mu.Unlock()
	e.units[k] = u
	return u
}

// newUnit makes the unit for key, with the capacity or limit e's model
// and policy give it.
func (e *Executor) newUnit(k unitKey) *unit {
	u := &unit{key: k}
	cc := e.cfg.Policy.Concurrency
	switch k.kind {
	case uNICOut:
		u.res = netpath.Resource{Kind: netpath.HostOut, ID: k.a}
	case uNICIn:
		u.res = netpath.Resource{Kind: netpath.HostIn, ID: k.a}
	case uLink:
		u.res = netpath.Resource{Kind: netpath.Link, ID: k.a, Dir: k.b}
	case uGlobal:
		u.est = float64(cc.Global)
	case uFabric:
		u.est = float64(cc.PerFabric)
	case uHostOutN:
		u.est = float64(cc.PerHostOut)
	case uHostInN:
		u.est = float64(cc.PerHostIn)
	case uLinkN:
		u.est = float64(cc.PerLinkLimit)
	}
	if k.kind.bandwidth() {
		u.capModel = netpath.Capacity(e.ix, u.res, e.linkMbps)
		u.est = u.capModel
	} else {
		u.capModel = u.est
	}
	return u
}

// unitsOf lists the units a move from host from to host to over path
// needs. Bandwidth units belong to adaptive policies (refuge's); the
// others only have the count limits they set.
func (e *Executor) unitsOf(from, to int, path netpath.Path) []*unit {
	cc := e.cfg.Policy.Concurrency
	us := make([]*unit, 0, len(path.Resources)+4)
	for _, r := range path.Resources {
		switch {
		case r.Kind == netpath.HostOut && cc.Adaptive:
			us = append(us, e.unitFor(unitKey{uNICOut, r.ID, 0}))
		case r.Kind == netpath.HostIn && cc.Adaptive:
			us = append(us, e.unitFor(unitKey{uNICIn, r.ID, 0}))
		case r.Kind == netpath.Link:
			if cc.Adaptive {
				us = append(us, e.unitFor(unitKey{uLink, r.ID, r.Dir}))
			}
			if cc.PerLinkLimit > 0 {
				us = append(us, e.unitFor(unitKey{uLinkN, r.ID, r.Dir}))
			}
		}
	}
	if cc.Global > 0 {
		us = append(us, e.unitFor(unitKey{kind: uGlobal}))
	}
	if cc.PerFabric > 0 {
		fk := e.ix.HostFabricKey(from)
		us = append(us, e.unitFor(unitKey{uFabric, fk[0], fk[1]}))
	}
	if cc.PerHostOut > 0 {
		us = append(us, e.unitFor(unitKey{uHostOutN, from, 0}))
	}
	if cc.PerHostIn > 0 {
		us = append(us, e.unitFor(unitKey{uHostInN, to, 0}))
	}
	return us
}

// demandOf is the rate a migration over path gets when nothing slows it:
// the narrowest resource as admission sees it (the controller's estimate
// for links), within the per-migration cap (policy bandwidth, TCP window
// over the RTT). The ledger's mutex is held.
func (e *Executor) demandOf(path netpath.Path, us []*unit) float64 {
	d := e.pathRate(path)
	for _, u := range us {
		if u.key.kind.bandwidth() {
			d = math.Min(d, u.est)
		}
	}
	return d
}

// pathRate is the fastest a migration over path goes when it has the path
// to itself: the narrowest resource's capacity, within the migration's own
// cap (bandwidth limit and TCP window over the path's RTT).
func (e *Executor) pathRate(path netpath.Path) float64 {
	pol := e.cfg.Policy.Migration
	rate := netpath.FlowCap(pol.MaxBandwidthMiBps*model.MiB, path.RTT, pol.ParallelConnections)
	for _, r := range path.Resources {
		rate = math.Min(rate, netpath.Capacity(e.ix, r, e.linkMbps))
	}
	return rate
}

// blocking returns the first unit of q that does not admit it, or on
// which q yields to a more urgent executor side by side, or nil (the
// ledger's mutex held).
//
// Units do not hold capacity back for moves earlier in the plan that wait
// elsewhere: on the benchmark federations (refuge bench saved) every such
// reservation tried — for all waiting moves, or only for those already
// late — left resources idle and cost more than it gained; a move needing
// much of a unit still gets in through the half-demand and fair-share
// rules of admits, and each unit wakes its own waiting moves in plan
// order.
func (e *Executor) blocking(q *queued) *unit {
	for _, u := range q.units {
		if !e.admitsLocked(u, q) {
			return u
		}
	}
	return nil
}

// admitsLocked reports whether u admits q now: it has room for q's demand
// and no other executor's move waits on it with an earlier deadline (the
// ledger's mutex held).
func (e *Executor) admitsLocked(u *unit, q *queued) bool {
	return u.admits(q.demand) && !e.led.yields(u, e.me, q.due, e.cfg.Clock.Now())
}

// firstDue is the deadline of the first move, in plan order, of those
// parked on u and q (nil: none more).
func (e *Executor) firstDue(u *unit, q *queued) time.Time {
	first := q
	if h := e.parked[u]; h != nil && h.Len() > 0 && (first == nil || (*h)[0].seq < first.seq) {
		first = (*h)[0]
	}
	if first == nil {
		return time.Time{}
	}
	return first.due
}

// rewait updates the ledger's record of the moves parked on u: the
// deadline of the first, or none (the ledger's mutex held).
func (e *Executor) rewait(u *unit) {
	h := e.parked[u]
	e.led.wait(u, e.me, h != nil && h.Len() > 0, e.firstDue(u, nil))
}

// park makes q wait on u (admit has marked u as waited on).
func (e *Executor) park(u *unit, q *queued) {
	h := e.parked[u]
	if h == nil {
		h = &moveHeap{}
		e.parked[u] = h
	}
	heap.Push(h, q)
}

// clearQueue drops every queued move (a new plan replaces them).
func (e *Executor) clearQueue() {
	e.ready = e.ready[:0]
	e.led.mu.Lock()
	for u, h := range e.parked {
		*h = (*h)[:0]
		e.rewait(u)
	}
	e.led.mu.Unlock()
	e.queuedN = 0
}
