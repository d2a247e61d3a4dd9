// Package sim is refuge's discrete-event simulator: an Engine that runs
// callbacks on a virtual clock, and a Network that shares bandwidth
// resources among flows max-min fairly and calls each flow back when it has
// delivered its bytes.
//
// Everything runs on the caller's goroutine: the package starts no
// goroutines and its types are not safe for concurrent use. Given the same
// calls in the same order, a run is exactly reproducible: events due at the
// same virtual instant run in the order they were scheduled.
package sim

import (
	"math"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
)

// never is the virtual time of something that does not happen.
const never = math.MaxInt64

// entry is one scheduled event in the heap. The callback lives in the slot
// table so that the heap moves only these small structs.
type entry struct {
	at   int64  // virtual time, ns since the epoch
	seq  uint64 // insertion order; breaks ties FIFO
	slot int32
}

// slot holds a pending event's callback. seq identifies the event that owns
// the slot; 0 marks a free slot, so heap entries whose seq no longer matches
// were cancelled and are skipped when they surface.
type slot struct {
	f   func()
	seq uint64
}

// Engine is a discrete-event engine on a virtual clock. The zero value is
// not usable; create one with NewEngine. Engine implements clock.Clock.
type Engine struct {
	epoch  time.Time
	now    int64
	seq    uint64
	events uint64
	heap   []entry // 4-ary min-heap by (at, seq)
	slots  []slot
	free   []int32
	dead   int // cancelled entries still in the heap
}

var _ clock.Clock = (*Engine)(nil)

// NewEngine returns an engine whose virtual clock starts at epoch.
func NewEngine(epoch time.Time) *Engine {
	return &Engine{epoch: epoch}
}

// Now returns the virtual time: the epoch plus Elapsed.
func (e *Engine) Now() time.Time { return e.epoch.Add(time.Duration(e.now)) }

// Elapsed returns the virtual time since the epoch.
func (e *Engine) Elapsed() time.Duration { return time.Duration(e.now) }

// Events returns the number of events executed so far.
func (e *Engine) Events() uint64 { return e.events }

// Pending returns the number of events scheduled and not yet run or
// cancelled.
func (e *Engine) Pending() int { return len(e.heap) - e.dead }

// AfterFunc runs f inside the event loop d from now (at once, after the
// events already due now, when d <= 0). The Timer's Stop cancels it.
func (e *Engine) AfterFunc(d time.Duration, f func()) clock.Timer {
	return e.Schedule(e.Elapsed()+max(d, 0), f)
}

// Timer is a handle to a scheduled event. The zero Timer is valid and
// never pending.
type Timer struct {
	e    *Engine
	slot int32
	seq  uint64
}

// Stop cancels the event; it reports whether the event was still pending.
func (t Timer) Stop() bool {
	if !t.Pending() {
		return false
	}
	s := &t.e.slots[t.slot]
	s.f, s.seq = nil, 0
	t.e.free = append(t.e.free, t.slot)
	t.e.dead++
	t.e.maybeCompact()
	return true
}

// Pending reports whether the event has neither run nor been cancelled.
func (t Timer) Pending() bool {
	return t.e != nil && t.seq != 0 && t.e.slots[t.slot].seq == t.seq
}

// Schedule runs f at virtual time at (an offset from the epoch). Times in
// the past are treated as now. Events due at the same time run in the order
// they were scheduled. A nil f schedules nothing and returns the zero Timer.
func (e *Engine) Schedule(at time.Duration, f func()) Timer {
	if f == nil {
		return Timer{}
	}
	t := max(int64(at), e.now)
	e.seq++
	var i int32
	if n := len(e.free); n > 0 {
		i = e.free[n-1]
		e.free = e.free[:n-1]
	} else {
		i = int32(len(e.slots))
		e.slots = append(e.slots, slot{})
	}
	e.slots[i] = slot{f: f, seq: e.seq}
	e.push(entry{at: t, seq: e.seq, slot: i})
	return Timer{e: e, slot: i, seq: e.seq}
}

// Step runs the next event, advancing the clock to its time. It reports
// whether there was one.
func (e *Engine) Step() bool {
	for len(e.heap) > 0 {
		top := e.pop()
		s := &e.slots[top.slot]
		if s.seq != top.seq {
			e.dead--
			continue
		}
		f := s.f
		s.f, s.seq = nil, 0
		e.free = append(e.free, top.slot)
		e.now = top.at
		e.events++
		f()
		return true
	}
	return false
}

// Run runs events until none are left.
func (e *Engine) Run() {
	for e.Step() {
	}
}

// RunUntil runs every event due at or before t, then sets the clock to t
// (if it is not already later).
func (e *Engine) RunUntil(t time.Duration) {
	for {
		at, ok := e.peek()
		if !ok || at > int64(t) {
			break
		}
		e.Step()
	}
	e.now = max(e.now, int64(t))
}

// NextAt returns the time of the next pending event, if any.
func (e *Engine) NextAt() (time.Duration, bool) {
	at, ok := e.peek()
	return time.Duration(at), ok
}

// peek returns the time of the next live event, discarding cancelled
// entries on the way.
func (e *Engine) peek() (int64, bool) {
	for len(e.heap) > 0 {
		top := e.heap[0]
		if e.slots[top.slot].seq == top.seq {
			return top.at, true
		}
		e.pop()
		e.dead--
	}
	return 0, false
}

func less(a, b *entry) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

func (e *Engine) push(x entry) {
	h := append(e.heap, x)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !less(&x, &h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = x
	e.heap = h
}

func (e *Engine) pop() entry {
	h := e.heap
	top := h[0]
	last := h[len(h)-1]
	h = h[:len(h)-1]
	e.heap = h
	if len(h) > 0 {
		e.siftDown(0, last)
	}
	return top
}

// siftDown places x at or below position i.
func (e *Engine) siftDown(i int, x entry) {
	h := e.heap
	n := len(h)
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < c+4 && j < n; j++ {
			if less(&h[j], &h[m]) {
				m = j
			}
		}
		if !less(&h[m], &x) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = x
}

// maybeCompact drops cancelled entries once they outnumber live ones, so
// that a workload that keeps rescheduling (as Network does) does not grow
// the heap without bound.
func (e *Engine) maybeCompact() {
	if e.dead < 64 || e.dead*2 < len(e.heap) {
		return
	}
	h := e.heap[:0]
	for _, x := range e.heap {
		if e.slots[x.slot].seq == x.seq {
			h = append(h, x)
		}
	}
	e.heap = h
	e.dead = 0
	for i := (len(h) - 2) / 4; i >= 0; i-- {
		e.siftDown(i, h[i])
	}
}
