package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ResourceID identifies a bandwidth resource of a Network.
type ResourceID int32

// Errors returned by Network.
var (
	ErrBadResource = errors.New("unknown resource")
	ErrBadValue    = errors.New("invalid value")
)

// saturationTol is the relative slack within which a resource counts as
// saturated and a flow as at its cap during water-filling; it only absorbs
// floating-point rounding.
const saturationTol = 1e-12

type resource struct {
	capacity float64
	// carried counts bytes delivered across the resource by flows, up to
	// each flow's last integration time (see flow.at).
	carried float64
	flows   []int32 // active flows crossing the resource
	// Water-filling scratch.
	rem   float64 // capacity not yet handed out
	n     int32   // unfrozen flows crossing the resource
	mark  uint32  // component-search epoch
	dirty bool    // queued for recomputation
}

type flow struct {
	path  []ResourceID
	total float64
	sent  float64 // bytes delivered up to at
	rate  float64
	cap   float64 // +Inf when uncapped
	at    int64   // virtual time up to which sent is integrated
	// finish is when the flow will have sent total bytes at its current
	// rate (never when its rate is 0).
	finish int64
	seq    uint64 // start order; breaks completion ties FIFO
	done   func()
	gen    uint32
	hpos   int32 // position in the completion heap
	mark   uint32
	active bool
	frozen bool
}

// Network shares bandwidth resources among flows. Each flow crosses a path
// of resources and gets a max-min fair rate (progressive filling that
// honours per-flow caps): no flow can get more without taking from a flow
// that has no more. Rates are recomputed, for the connected set of flows
// and resources a change touches, whenever a flow starts, ends or is
// cancelled, or a capacity or cap changes; the recomputation is batched at
// the end of the virtual instant in which the changes happen (or done
// earlier when a rate is asked for). Progress is integrated exactly between
// recomputations. A flow crossing a resource of capacity 0 gets rate 0 and
// makes no progress until the capacity returns.
//
// Create a Network with NewNetwork; it schedules its own events on the
// Engine.
type Network struct {
	eng   *Engine
	res   []resource
	flows []flow
	free  []int32
	heap  []int32 // active flows, min-heap by (finish, seq)
	seq   uint64
	epoch uint32

	dirty       []ResourceID
	flushQueued bool
	next        Timer // the single pending completion event
	nextAt      int64

	// Scratch reused across recomputations.
	compRes   []ResourceID
	compFlows []int32
	capped    []int32
	doneBuf   []func()

	flushFn, completeFn func()
	cmpCapFn            func(a, b int32) int
}

// NewNetwork returns an empty network on eng.
func NewNetwork(eng *Engine) *Network {
	n := &Network{eng: eng, nextAt: never}
	n.flushFn = n.flushEvent
	n.completeFn = n.complete
	n.cmpCapFn = func(a, b int32) int {
		ca, cb := n.flows[a].cap, n.flows[b].cap
		switch {
		case ca < cb:
			return -1
		case ca > cb:
			return 1
		}
		return 0
	}
	return n
}

// validRate reports whether v is a usable capacity or cap: non-negative
// and not NaN (+Inf is allowed).
func validRate(v float64) bool { return v >= 0 }

// AddResource adds a resource with the given capacity in bytes/s (+Inf for
// unlimited) and returns its id.
func (n *Network) AddResource(capacity float64) (ResourceID, error) {
	if !validRate(capacity) {
		return 0, fmt.Errorf("sim: add resource: capacity %v: %w", capacity, ErrBadValue)
	}
	if len(n.res) >= math.MaxInt32 {
		return 0, fmt.Errorf("sim: add resource: too many resources: %w", ErrBadValue)
	}
	n.res = append(n.res, resource{capacity: capacity})
	return ResourceID(len(n.res) - 1), nil
}

// NumResources returns the number of resources.
func (n *Network) NumResources() int { return len(n.res) }

func (n *Network) validID(r ResourceID) bool { return r >= 0 && int(r) < len(n.res) }

// SetCapacity changes a resource's capacity (bytes/s; 0 cuts it).
func (n *Network) SetCapacity(r ResourceID, capacity float64) error {
	if !n.validID(r) {
		return fmt.Errorf("sim: set capacity of resource %d: %w", r, ErrBadResource)
	}
	if !validRate(capacity) {
		return fmt.Errorf("sim: set capacity of resource %d to %v: %w", r, capacity, ErrBadValue)
	}
	if n.res[r].capacity == capacity {
		return nil
	}
	n.res[r].capacity = capacity
	n.markDirty(r)
	return nil
}

// Capacity returns a resource's capacity (0 for an unknown id).
func (n *Network) Capacity(r ResourceID) float64 {
	if !n.validID(r) {
		return 0
	}
	return n.res[r].capacity
}

// Carried returns the bytes delivered across a resource so far by all
// flows, finished or not (0 for an unknown id).
func (n *Network) Carried(r ResourceID) float64 {
	if !n.validID(r) {
		return 0
	}
	rr := &n.res[r]
	c := rr.carried
	for _, fi := range rr.flows {
		c += n.progress(&n.flows[fi])
	}
	return c
}

// Load returns the sum of the current rates of the flows crossing a
// resource (0 for an unknown id).
func (n *Network) Load(r ResourceID) float64 {
	if !n.validID(r) {
		return 0
	}
	n.flush()
	var s float64
	for _, fi := range n.res[r].flows {
		s += n.flows[fi].rate
	}
	return s
}

// Flow is a handle to a flow. Its methods report zero values once the flow
// has completed or was cancelled. The zero Flow is valid and inactive.
type Flow struct {
	n   *Network
	id  int32
	gen uint32
}

// StartFlow starts sending bytes across path (distinct resources), at most
// capBps bytes/s (0 or +Inf: uncapped). done, if not nil, is called from the
// event loop when the last byte is delivered — never from within StartFlow,
// even for zero bytes.
func (n *Network) StartFlow(path []ResourceID, bytes, capBps float64, done func()) (Flow, error) {
	if !(bytes >= 0) || math.IsInf(bytes, 1) {
		return Flow{}, fmt.Errorf("sim: start flow of %v bytes: %w", bytes, ErrBadValue)
	}
	if !validRate(capBps) {
		return Flow{}, fmt.Errorf("sim: start flow with cap %v: %w", capBps, ErrBadValue)
	}
	for i, r := range path {
		if !n.validID(r) {
			return Flow{}, fmt.Errorf("sim: start flow: path element %d: resource %d: %w", i, r, ErrBadResource)
		}
		if slices.Contains(path[:i], r) {
			return Flow{}, fmt.Errorf("sim: start flow: resource %d appears twice in the path: %w", r, ErrBadValue)
		}
	}
	var id int32
	if k := len(n.free); k > 0 {
		id = n.free[k-1]
		n.free = n.free[:k-1]
	} else {
		if len(n.flows) >= math.MaxInt32 {
			return Flow{}, fmt.Errorf("sim: start flow: too many flows: %w", ErrBadValue)
		}
		id = int32(len(n.flows))
		n.flows = append(n.flows, flow{})
	}
	n.seq++
	f := &n.flows[id]
	f.path = append(f.path[:0], path...)
	f.total, f.sent, f.rate, f.cap = bytes, 0, 0, uncapped(capBps)
	f.at, f.finish, f.seq, f.done = n.eng.now, never, n.seq, done
	f.active, f.frozen = true, false
	n.heapPush(id)
	for _, r := range path {
		n.res[r].flows = append(n.res[r].flows, id)
		n.markDirty(r)
	}
	if len(path) == 0 {
		f.rate = f.cap
	}
	// A flow of zero bytes, or one that crosses nothing and is uncapped, is
	// done at once; others get their finish time when rates are computed.
	n.setFinish(id, n.finishAt(f))
	n.setNext()
	return Flow{n: n, id: id, gen: f.gen}, nil
}

func uncapped(c float64) float64 {
	if c == 0 {
		return math.Inf(1)
	}
	return c
}

// get returns the flow behind a handle, or nil if it has ended.
func (h Flow) get() *flow {
	if h.n == nil {
		return nil
	}
	f := &h.n.flows[h.id]
	if f.gen != h.gen || !f.active {
		return nil
	}
	return f
}

// Active reports whether the flow is still sending.
func (h Flow) Active() bool { return h.get() != nil }

// Transferred returns the bytes delivered so far.
func (h Flow) Transferred() float64 {
	f := h.get()
	if f == nil {
		return 0
	}
	return f.sent + h.n.progress(f)
}

// Remaining returns the bytes still to deliver.
func (h Flow) Remaining() float64 {
	f := h.get()
	if f == nil {
		return 0
	}
	return max(0, f.total-f.sent-h.n.progress(f))
}

// Rate returns the flow's current rate in bytes/s.
func (h Flow) Rate() float64 {
	if h.get() == nil {
		return 0
	}
	h.n.flush()
	return h.n.flows[h.id].rate
}

// Cap returns the flow's cap in bytes/s (+Inf when uncapped).
func (h Flow) Cap() float64 {
	f := h.get()
	if f == nil {
		return 0
	}
	return f.cap
}

// SetCap changes the flow's cap (bytes/s; 0 or +Inf: uncapped).
func (h Flow) SetCap(capBps float64) error {
	f := h.get()
	if f == nil {
		return fmt.Errorf("sim: set cap: flow has ended: %w", ErrBadValue)
	}
	if !validRate(capBps) {
		return fmt.Errorf("sim: set cap to %v: %w", capBps, ErrBadValue)
	}
	c := uncapped(capBps)
	if c == f.cap {
		return nil
	}
	f.cap = c
	if len(f.path) == 0 {
		h.n.retime(h.id, c)
		return nil
	}
	for _, r := range f.path {
		h.n.markDirty(r)
	}
	return nil
}

// Cancel stops the flow without calling its done callback and returns the
// bytes it delivered; ok is false if the flow had already ended.
func (h Flow) Cancel() (transferred float64, ok bool) {
	f := h.get()
	if f == nil {
		return 0, false
	}
	n := h.n
	n.advance(f)
	sent := f.sent
	n.remove(h.id)
	n.setNext()
	return sent, true
}

// progress returns the bytes f delivered since its last integration.
func (n *Network) progress(f *flow) float64 {
	dt := n.eng.now - f.at
	if dt <= 0 || f.rate == 0 {
		return 0
	}
	return min(f.rate*float64(dt)/1e9, f.total-f.sent)
}

// advance integrates f's progress up to now and credits its resources.
func (n *Network) advance(f *flow) {
	d := n.progress(f)
	f.at = n.eng.now
	if d <= 0 {
		return
	}
	f.sent += d
	for _, r := range f.path {
		n.res[r].carried += d
	}
}

// remove takes an active flow out of the network, crediting nothing; the
// caller has integrated its progress.
func (n *Network) remove(id int32) {
	f := &n.flows[id]
	for _, r := range f.path {
		rr := &n.res[r]
		if i := slices.Index(rr.flows, id); i >= 0 {
			last := len(rr.flows) - 1
			rr.flows[i] = rr.flows[last]
			rr.flows = rr.flows[:last]
		}
		n.markDirty(r)
	}
	n.heapRemove(f.hpos)
	f.active = false
	f.done = nil
	f.gen++
	n.free = append(n.free, id)
}

// markDirty queues r's component for recomputation at the end of the
// current instant.
func (n *Network) markDirty(r ResourceID) {
	rr := &n.res[r]
	if !rr.dirty {
		rr.dirty = true
		n.dirty = append(n.dirty, r)
	}
	if !n.flushQueued {
		n.flushQueued = true
		n.eng.Schedule(n.eng.Elapsed(), n.flushFn)
	}
}

func (n *Network) flushEvent() {
	n.flushQueued = false
	n.flush()
}

// flush recomputes the rates of every component that has a dirty
// resource.
func (n *Network) flush() {
	if len(n.dirty) == 0 {
		return
	}
	n.epoch++
	ep := n.epoch
	comp := n.compRes[:0]
	for _, r := range n.dirty {
		n.res[r].dirty = false
		if n.res[r].mark != ep {
			n.res[r].mark = ep
			comp = append(comp, r)
		}
	}
	n.dirty = n.dirty[:0]
	flows := n.compFlows[:0]
	for i := 0; i < len(comp); i++ {
		for _, fi := range n.res[comp[i]].flows {
			f := &n.flows[fi]
			if f.mark == ep {
				continue
			}
			f.mark = ep
			flows = append(flows, fi)
			for _, r := range f.path {
				if n.res[r].mark != ep {
					n.res[r].mark = ep
					comp = append(comp, r)
				}
			}
		}
	}
	n.compRes, n.compFlows = comp, flows
	for _, fi := range flows {
		n.advance(&n.flows[fi])
	}
	n.waterfill(comp, flows)
	for _, fi := range flows {
		n.setFinish(fi, n.finishAt(&n.flows[fi]))
	}
	n.setNext()
}

// waterfill sets max-min fair rates for the flows of one or more
// components by progressive filling: all unfrozen flows rise together
// until a resource saturates (its flows freeze) or a flow reaches its cap
// (it freezes there).
func (n *Network) waterfill(comp []ResourceID, flows []int32) {
	for _, r := range comp {
		rr := &n.res[r]
		rr.rem, rr.n = rr.capacity, 0
	}
	capped := n.capped[:0]
	for _, fi := range flows {
		f := &n.flows[fi]
		f.frozen, f.rate = false, 0
		for _, r := range f.path {
			n.res[r].n++
		}
		if !math.IsInf(f.cap, 1) {
			capped = append(capped, fi)
		}
	}
	slices.SortFunc(capped, n.cmpCapFn)
	n.capped = capped
	unfrozen := len(flows)
	level := 0.0
	ci := 0
	for unfrozen > 0 {
		next := math.Inf(1)
		var argmin ResourceID = -1
		for _, r := range comp {
			rr := &n.res[r]
			if rr.n > 0 {
				if t := level + rr.rem/float64(rr.n); t < next {
					next, argmin = t, r
				}
			}
		}
		for ci < len(capped) && n.flows[capped[ci]].frozen {
			ci++
		}
		if ci < len(capped) && n.flows[capped[ci]].cap < next {
			next, argmin = n.flows[capped[ci]].cap, -1
		}
		if math.IsInf(next, 1) {
			// Only unlimited resources and no caps remain.
			for _, fi := range flows {
				if f := &n.flows[fi]; !f.frozen {
					n.freeze(f, next)
				}
			}
			return
		}
		delta := next - level
		for _, r := range comp {
			if rr := &n.res[r]; rr.n > 0 {
				rr.rem -= delta * float64(rr.n)
			}
		}
		level = next
		tol := level * saturationTol
		for ; ci < len(capped); ci++ {
			f := &n.flows[capped[ci]]
			if f.frozen {
				continue
			}
			if f.cap > level+tol {
				break
			}
			n.freeze(f, f.cap)
			unfrozen--
		}
		for _, r := range comp {
			rr := &n.res[r]
			if rr.n == 0 || math.IsInf(rr.rem, 1) || (r != argmin && rr.rem > rr.capacity*saturationTol) {
				continue
			}
			rr.rem = 0
			for _, fi := range rr.flows {
				if f := &n.flows[fi]; !f.frozen {
					n.freeze(f, level)
					unfrozen--
				}
			}
		}
	}
}

// freeze fixes f's rate and removes it from its resources' unfrozen counts.
func (n *Network) freeze(f *flow, rate float64) {
	f.frozen, f.rate = true, rate
	for _, r := range f.path {
		n.res[r].n--
	}
}

// retime sets the rate of a flow with an empty path (which shares nothing)
// and reschedules its completion.
func (n *Network) retime(id int32, rate float64) {
	f := &n.flows[id]
	n.advance(f)
	f.rate = rate
	n.setFinish(id, n.finishAt(f))
	n.setNext()
}

// finishAt returns when f completes at its current rate, rounded up to the
// next nanosecond.
func (n *Network) finishAt(f *flow) int64 {
	left := f.total - f.sent
	if left <= 0 || math.IsInf(f.rate, 1) {
		return n.eng.now
	}
	if f.rate <= 0 {
		return never
	}
	ns := math.Ceil(left / f.rate * 1e9)
	if ns >= float64(never-n.eng.now) {
		return never
	}
	return n.eng.now + int64(ns)
}

// setNext keeps the single completion event at the earliest finish time.
func (n *Network) setNext() {
	at := int64(never)
	if len(n.heap) > 0 {
		at = n.flows[n.heap[0]].finish
	}
	if at == n.nextAt && (at == never || n.next.Pending()) {
		return
	}
	n.next.Stop()
	n.nextAt = at
	if at != never {
		n.next = n.eng.Schedule(time.Duration(at), n.completeFn)
	} else {
		n.next = Timer{}
	}
}

// complete is the completion event: it finishes every flow due now and
// calls their callbacks in order of finish time, then start order.
func (n *Network) complete() {
	n.next, n.nextAt = Timer{}, never
	n.flush()
	now := n.eng.now
	cbs := n.doneBuf[:0]
	for len(n.heap) > 0 {
		id := n.heap[0]
		f := &n.flows[id]
		if f.finish > now {
			break
		}
		n.advance(f)
		if d := f.total - f.sent; d > 0 {
			for _, r := range f.path {
				n.res[r].carried += d
			}
		}
		f.sent = f.total
		if f.done != nil {
			cbs = append(cbs, f.done)
		}
		n.remove(id)
	}
	n.setNext()
	n.doneBuf = cbs[:0]
	for i, cb := range cbs {
		cbs[i] = nil
		cb()
	}
}

// Completion heap: a binary min-heap of flow ids by (finish, seq), with
// each flow's position kept in flow.hpos.

func (n *Network) hless(a, b int32) bool {
	fa, fb := &n.flows[a], &n.flows[b]
	return fa.finish < fb.finish || (fa.finish == fb.finish && fa.seq < fb.seq)
}

func (n *Network) hset(i int, id int32) {
	n.heap[i] = id
	n.flows[id].hpos = int32(i)
}

func (n *Network) heapPush(id int32) {
	n.heap = append(n.heap, id)
	n.hset(len(n.heap)-1, id)
	n.heapUp(len(n.heap) - 1)
}

func (n *Network) heapRemove(pos int32) {
	i := int(pos)
	last := len(n.heap) - 1
	if i != last {
		n.hset(i, n.heap[last])
	}
	n.heap = n.heap[:last]
	if i < last {
		n.heapFix(i)
	}
}

func (n *Network) setFinish(id int32, at int64) {
	f := &n.flows[id]
	if f.finish == at {
		return
	}
	f.finish = at
	n.heapFix(int(f.hpos))
}

func (n *Network) heapFix(i int) {
	if !n.heapUp(i) {
		n.heapDown(i)
	}
}

func (n *Network) heapUp(i int) bool {
	moved := false
	id := n.heap[i]
	for i > 0 {
		p := (i - 1) / 2
		if !n.hless(id, n.heap[p]) {
			break
		}
		n.hset(i, n.heap[p])
		i = p
		moved = true
	}
	n.hset(i, id)
	return moved
}

func (n *Network) heapDown(i int) {
	h := n.heap
	id := h[i]
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && n.hless(h[c+1], h[c]) {
			c++
		}
		if !n.hless(h[c], id) {
			break
		}
		n.hset(i, h[c])
		i = c
	}
	n.hset(i, id)
}
