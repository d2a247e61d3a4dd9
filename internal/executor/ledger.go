package executor

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/netpath"
)

// Ledger is the admission that executors running side by side share (the
// evacuations of one controller): one account per unit — the same
// resources (netpath), hosts and links for all — so that the demand they
// admit together respects each unit, one link estimate of the feedback
// controller per link, and the migrations in flight of every executor, so
// that none fills a destination another is moving VMs to.
//
// Lock order: an executor takes its own mutex, then the ledger's; the
// ledger never calls into an executor. When one executor frees capacity
// on a unit where another has moves waiting, the ledger queues a wakeup on
// the other's clock (AfterFunc 0), which that executor handles under its
// own lock.
//
// An executor without Config.Ledger has a ledger of its own.
type Ledger struct {
	mu      sync.Mutex
	units   map[unitKey]*unit
	members []*member
	nextID  int
	flights map[flightKey]*flight
	// inbound lists the flights by destination host.
	inbound map[int][]*flight
	// landed logs where the VMs of ended flights run now, for the other
	// members' views of placement (kept only while there are several):
	// entry i of the log is landed[i-landedBase]; entries every member
	// has applied are dropped.
	landed     []landing
	landedBase int
}

// NewLedger returns an empty ledger for executors that run side by side.
func NewLedger() *Ledger {
	return &Ledger{units: map[unitKey]*unit{}, flights: map[flightKey]*flight{}, inbound: map[int][]*flight{}}
}

// member is one executor of a ledger.
type member struct {
	id int
	// poke queues the executor's wakeup (poked) on its clock.
	poke func()
	// poked: a wakeup is queued; wake: the units it wakes.
	poked bool
	wake  []*unit
	// cursor: the landed entries the executor has applied (a position in
	// the whole log, not in Ledger.landed).
	cursor int
}

type flightKey struct{ vm, member int }

// flight is a migration in flight: its VM's footprint is promised to its
// destination and its path's resources are busy until it ends.
type flight struct {
	owner  *member
	vm, to int
	units  []*unit
	res    []netpath.Resource
	demand float64
	// What it still sends: bytes − rate × (now − since).
	bytes, rate float64
	since       time.Time
	// observed: it was transferring at its executor's latest tick, at
	// obsRate (the feedback controller's input).
	observed bool
	obsRate  float64
}

// left is what f still sends at now.
func (f *flight) left(now time.Time) float64 {
	return f.bytes - f.rate*max(0, now.Sub(f.since).Seconds())
}

// landing records that a member's migration of vm ended with the VM on
// host to (-1: lost).
type landing struct {
	owner  *member
	vm, to int
}

// join registers an executor whose wakeups poke queues.
func (l *Ledger) join(poke func()) *member {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := &member{id: l.nextID, poke: poke, cursor: l.landedBase + len(l.landed)}
	l.nextID++
	l.members = append(l.members, m)
	return m
}

// leave removes m, whose executor ended, from the ledger: it waits on no
// unit and applies no more of the log, so the entries only it had still
// to apply are dropped. Its flights still in the air stay until they end
// (their landings are logged for the others).
func (l *Ledger) leave(m *member) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.members, m)
	if i < 0 {
		return
	}
	l.members = slices.Delete(l.members, i, i+1)
	for _, u := range l.units {
		l.wait(u, m, false, time.Time{})
	}
	m.wake = nil
	l.trim()
}

// landing returns entry i of the log (l.mu held).
func (l *Ledger) landing(i int) landing { return l.landed[i-l.landedBase] }

// logEnd is the position after the log's last entry (l.mu held).
func (l *Ledger) logEnd() int { return l.landedBase + len(l.landed) }

// trim drops the log entries every member has applied (l.mu held). It
// copies only when at least half the log goes, so that trimming after
// every read costs O(1) per entry.
func (l *Ledger) trim() {
	low := l.logEnd()
	for _, m := range l.members {
		low = min(low, m.cursor)
	}
	n := low - l.landedBase
	if n == 0 || 2*n < len(l.landed) {
		return
	}
	l.landed = slices.Delete(l.landed, 0, n)
	l.landedBase = low
}

// fly records f (l.mu held).
func (l *Ledger) fly(f *flight) {
	l.flights[flightKey{f.vm, f.owner.id}] = f
	l.inbound[f.to] = append(l.inbound[f.to], f)
}

// land ends m's flight of vm, whose VM now runs on host to (l.mu held).
func (l *Ledger) land(m *member, vm, to int) {
	k := flightKey{vm, m.id}
	f := l.flights[k]
	if f == nil {
		return
	}
	delete(l.flights, k)
	in := slices.DeleteFunc(l.inbound[f.to], func(g *flight) bool { return g == f })
	if len(in) == 0 {
		delete(l.inbound, f.to)
	} else {
		l.inbound[f.to] = in
	}
	if slices.ContainsFunc(l.members, func(o *member) bool { return o != m }) {
		l.landed = append(l.landed, landing{owner: m, vm: vm, to: to})
	}
}

// sortedFlights returns every member's flights by VM, then member (l.mu
// held).
func (l *Ledger) sortedFlights() []*flight {
	fs := make([]*flight, 0, len(l.flights))
	for _, f := range l.flights {
		fs = append(fs, f)
	}
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].vm != fs[j].vm {
			return fs[i].vm < fs[j].vm
		}
		return fs[i].owner.id < fs[j].owner.id
	})
	return fs
}

// waiter is a member with moves parked on a unit; due is the deadline of
// the first of them in its plan order (zero: none).
type waiter struct {
	m   *member
	due time.Time
}

// wait records that m has moves parked on u, the first of them (in m's
// plan order) due then, or none any more (on false). Members that yield
// to m on u are woken when m stops waiting there or its first move there
// becomes less urgent (l.mu held).
func (l *Ledger) wait(u *unit, m *member, on bool, due time.Time) {
	i := slices.IndexFunc(u.waiting, func(w waiter) bool { return w.m == m })
	switch {
	case on && i < 0:
		u.waiting = append(u.waiting, waiter{m, due})
	case on:
		was := u.waiting[i].due
		u.waiting[i].due = due
		if later(due, was) {
			l.freed(u, m)
		}
	case i >= 0:
		u.waiting = slices.Delete(u.waiting, i, i+1)
		l.freed(u, m)
	}
}

// later reports whether deadline a is less urgent than b (the zero time:
// no deadline, the least urgent).
func later(a, b time.Time) bool {
	return !b.IsZero() && (a.IsZero() || a.After(b))
}

// yields reports whether a move of m due then must let u go, at now, to
// another member first: one whose first move parked on u is due earlier,
// and not yet (a move whose deadline passed is dropped when it comes up)
// (l.mu held). Executors side by side thus share a unit earliest deadline
// first, as each orders its own moves. Only the first move of each
// member counts, and ties do not yield, so two members never yield to
// each other: the earliest of them waits only for capacity.
func (l *Ledger) yields(u *unit, m *member, due, now time.Time) bool {
	for _, w := range u.waiting {
		if w.m != m && later(due, w.due) && w.due.After(now) {
			return true
		}
	}
	return false
}

// freed records that u can admit more: the other members with moves
// parked on it are woken (l.mu held).
func (l *Ledger) freed(u *unit, by *member) {
	for _, w := range u.waiting {
		m := w.m
		if m == by {
			continue
		}
		if !slices.Contains(m.wake, u) {
			m.wake = append(m.wake, u)
		}
		if !m.poked {
			m.poked = true
			m.poke()
		}
	}
}
