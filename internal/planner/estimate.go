package planner

import (
	"fmt"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/precopy"
)

// estimate is one VM's predicted migration at a constant rate over a path
// with zero RTT; a route adds its set-up (route.setup) to solo.
type estimate struct {
	rate  float64 // bytes/s
	bytes float64
	solo  float64 // seconds: set-up, disk copy, memory rounds, downtime
	ok    bool    // the migration converges
	pause bool    // a pause-and-copy estimate (pauseAt)
}

// maxCopySeconds: a migration whose first copy alone would take longer
// (about 11.6 days) is treated as impossible. It also keeps predicted
// times far from time.Duration's range.
const maxCopySeconds = 1e6

// guest describes VM v to the pre-copy model.
func guest(vm *model.VM) precopy.Guest {
	g := precopy.Guest{
		MemoryBytes: vm.MemoryBytes(),
		DirtyRate:   vm.DirtyRateMiBps * model.MiB,
		WorkingSet:  vm.WorkingSetMiB * model.MiB,
	}
	if vm.CopiesDisk() {
		g.DiskBytes = vm.DiskBytes()
	}
	return g
}

// rateClasses are the distinct rates the routes from a source host offer
// (a route's rate is the lower of its base rate and the host's NIC), so
// that each VM is estimated once per rate rather than once per route.
type rateClasses struct {
	rates   []float64
	classOf []int32 // per route of the host's site: index into rates
}

// classesOf returns source host h's rate classes, computing them on first
// use.
func (p *planner) classesOf(h int) *rateClasses {
	if c := p.classes[h]; c != nil {
		return c
	}
	c := &rateClasses{}
	seen := map[float64]int32{}
	out := p.capR[p.outRes(h)]
	for _, rt := range p.routesFrom(p.ix.HostSite(h)) {
		rate := min(rt.base, out)
		k, ok := seen[rate]
		if !ok {
			k = int32(len(c.rates))
			seen[rate] = k
			c.rates = append(c.rates, rate)
		}
		c.classOf = append(c.classOf, k)
	}
	p.classes[h] = c
	return c
}

// estimateOn returns at-risk VM v's estimate on route k of its site.
func (p *planner) estimateOn(v, k int) estimate {
	cls := p.classesOf(p.place[v])
	c := int(cls.classOf[k])
	return p.estimateClass(v, c, cls.rates[c])
}

// storedEstimate is an estimate as ests keeps it (its rate is its class's).
type storedEstimate struct {
	bytes, solo float64
	ok, known   bool
}

// estimateClass returns at-risk VM v's estimate at rate class c of its
// host, whose rate is rate, computing it on first use.
func (p *planner) estimateClass(v, c int, rate float64) estimate {
	pr := p.preOf(v)
	if pr.estOff < 0 {
		pr.estOff = p.nextEst
		p.nextEst += len(p.classes[p.place[v]].rates)
		b := pr.best
		p.ests[pr.estOff+int(pr.bestClass)] = storedEstimate{b.bytes, b.solo, b.ok, true}
	}
	s := &p.ests[pr.estOff+c]
	if !s.known {
		e := soloAt(pr.guest, p.cfg, rate)
		*s = storedEstimate{e.bytes, e.solo, e.ok, true}
		return e
	}
	return estimate{rate: rate, bytes: s.bytes, solo: s.solo, ok: s.ok}
}

// soloAt runs precopy.Solo at rate over a zero-RTT path, unless the
// migration provably cannot converge (see terminates) or would take
// impossibly long.
func soloAt(g precopy.Guest, cfg precopy.Config, rate float64) estimate {
	e := estimate{rate: rate}
	if !(rate > 0) || (g.DiskBytes+g.MemoryBytes)/rate > maxCopySeconds || !terminates(g, cfg, rate) {
		return e
	}
	s := precopy.Solo(g, cfg, rate, 0)
	e.bytes, e.solo, e.ok = s.Bytes, s.Total.Seconds(), s.Converges
	return e
}

// pauseAt is VM v's migration at rate as a pause-and-copy: the guest
// stops, its disk (local storage) and memory (the bytes prepare recorded)
// are sent once, and it resumes at the destination.
func (p *planner) pauseAt(v int, rate float64) estimate {
	b := p.preOf(v).pauseBytes
	if !(rate > 0) || b/rate > maxCopySeconds {
		return estimate{rate: rate, pause: true}
	}
	return estimate{rate: rate, pause: true, ok: true, bytes: b, solo: p.setup0 + b/rate + p.switchover}
}

// setupOver is what the migration handshake over a path with round-trip
// time rtt adds to a zero-RTT estimate (precopy.Setup is affine in the RTT).
func setupOver(rtt time.Duration) float64 { return (precopy.Setup(rtt) - precopy.Setup(0)).Seconds() }

// MoveCost is the planner's prediction of one migration that has its path
// to itself.
type MoveCost struct {
	Path netpath.Path
	// Rate is the migration's rate (bytes/s): the narrowest resource of the
	// path or the per-migration flow cap, whichever is lower.
	Rate float64
	// Bytes is the data sent: the disk (local storage) and every memory round.
	Bytes float64
	// Solo is the migration's duration: set-up, copy and downtime.
	Solo time.Duration
}

// Cost predicts, with the planner's model, migrating VM v from host from to
// host to under policy pol with nothing else on the path; linkMbps
// overrides link bandwidths as Input.LinkMbps does (nil: the model's). It
// reports false when an index is out of range, no path with bandwidth joins
// the hosts, or the migration does not converge.
func Cost(ix *model.Index, pol model.Policy, v, from, to int, linkMbps []float64) (MoveCost, bool) {
	if ix == nil || ix.Fed == nil || v < 0 || v >= len(ix.Fed.VMs) ||
		from < 0 || from >= len(ix.Hosts) || to < 0 || to >= len(ix.Hosts) ||
		(linkMbps != nil && len(linkMbps) != len(ix.Fed.Links)) {
		return MoveCost{}, false
	}
	path, ok := netpath.Between(ix, from, to)
	if !ok {
		return MoveCost{}, false
	}
	rate := netpath.FlowCap(max(0, pol.Migration.MaxBandwidthMiBps)*model.MiB, path.RTT, pol.Migration.ParallelConnections)
	for _, r := range path.Resources {
		rate = min(rate, netpath.Capacity(ix, r, linkMbps))
	}
	cfg := precopy.Config{MaxDowntime: pol.Migration.MaxDowntime.D(), AutoConverge: pol.Migration.AutoConverge}
	e := soloAt(guest(&ix.Fed.VMs[v]), cfg, rate)
	if !e.ok {
		return MoveCost{}, false
	}
	return MoveCost{Path: path, Rate: rate, Bytes: e.bytes, Solo: dur(e.solo + setupOver(path.RTT))}, true
}

// terminates reports whether precopy.Solo reaches a decision in a bounded
// number of rounds. With auto-converge, Solo keeps sending rounds until the
// dirty set fits the downtime budget; when even the maximum throttle leaves
// the guest dirtying memory about as fast as the rate, that never happens.
// The test is conservative: a guest still dirtying more than 99 % of the
// rate at full throttle is reported as not converging even if, after very
// many rounds, it would.
func terminates(g precopy.Guest, cfg precopy.Config, rate float64) bool {
	if !cfg.AutoConverge || g.DirtyRate <= 0 {
		// Without auto-converge Solo gives up after
		// precopy.MaxRoundsWithoutThrottle rounds; a clean guest switches
		// over after the first.
		return true
	}
	ws := g.WorkingSet
	if ws <= 0 || ws > g.MemoryBytes {
		ws = g.MemoryBytes
	}
	if ws < 0.999*rate*cfg.MaxDowntime.Seconds() {
		return true // the first round's dirt already fits the budget
	}
	return cfg.MaxDowntime > 0 && g.DirtyRate*(1-precopy.ThrottleMax) <= 0.99*rate
}

// notConvergingReason explains why VM v converges on no route.
func (p *planner) notConvergingReason(v int) string {
	vm := &p.fed.VMs[v]
	src := p.place[v]
	best := 0.0
	for _, rt := range p.routesFrom(p.ix.HostSite(src)) {
		best = max(best, min(rt.base, p.capR[p.outRes(src)]))
	}
	g := guest(vm)
	if (g.DiskBytes+g.MemoryBytes)/best > maxCopySeconds {
		return fmt.Sprintf("at the best rate to a safe site, %s/s, copying %s would take longer than %s",
			bytesStr(best), bytesStr(g.DiskBytes+g.MemoryBytes), dur(maxCopySeconds))
	}
	ac := "off"
	if p.cfg.AutoConverge {
		ac = "on"
	}
	ws := "all its memory"
	if g.WorkingSet > 0 {
		ws = bytesStr(g.WorkingSet)
	}
	return fmt.Sprintf("dirties %.0f MiB/s (working set %s); at the best rate to a safe site, %s/s, pre-copy does not converge even alone (downtime limit %v, auto-converge %s)",
		vm.DirtyRateMiBps, ws, bytesStr(best), p.cfg.MaxDowntime, ac)
}
