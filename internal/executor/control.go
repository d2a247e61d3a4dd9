package executor

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/planner"
	"github.com/refuge-project/refuge/internal/precopy"
)

// DefaultInterval is the controller period when the policy sets none.
const DefaultInterval = 5 * time.Second

// Modes a running migration can switch to (Report and timeline).
const (
	modePostCopy = "post-copy"
	modePaused   = "paused"
)

func (e *Executor) interval() time.Duration {
	if d := e.cfg.Policy.Concurrency.Interval.D(); d > 0 {
		return d
	}
	return DefaultInterval
}

// armTicker starts the periodic controllers when the policy has any: the
// feedback controller (adaptive) and the deadline checks (deadline-aware).
func (e *Executor) armTicker() {
	pol := e.cfg.Policy
	if e.ticker != nil || !(pol.Concurrency.Adaptive || pol.DeadlineAware) {
		return
	}
	e.ticker = e.cfg.Clock.AfterFunc(e.interval(), e.tick)
}

// tick runs the periodic controllers. Job statistics are read outside the
// lock (they are driver calls).
func (e *Executor) tick() {
	e.mu.Lock()
	e.ticker = nil
	if e.finished {
		e.mu.Unlock()
		return
	}
	var rs []*running
	for _, r := range e.sortedRunning() {
		if r.job != nil {
			rs = append(rs, r)
		}
	}
	e.mu.Unlock()
	infos := make([]hypervisor.JobInfo, len(rs))
	ok := make([]bool, len(rs))
	for i, r := range rs {
		info, err := r.job.Info()
		infos[i], ok[i] = info, err == nil
	}
	e.mu.Lock()
	defer e.unlock()
	if e.finished {
		return
	}
	var live []*running
	for i, r := range rs {
		if e.running[r.vm] != r || !ok[i] {
			continue
		}
		e.observe(r, infos[i])
		live = append(live, r)
	}
	e.led.mu.Lock()
	for _, r := range e.running {
		r.fl.observed = false
	}
	for _, r := range live {
		r.fl.observed, r.fl.obsRate = transferring(r.info), r.info.BytesPerSec()
	}
	e.led.mu.Unlock()
	if e.cfg.Policy.Concurrency.Adaptive {
		e.adaptLinks()
	}
	e.pipeline(live)
	if e.cfg.Policy.DeadlineAware {
		e.checkDeadlines(live)
	}
	e.armTicker()
	e.pump()
}

// transferring reports whether a job's statistics show it moving data at a
// rate that tells something about its path.
func transferring(info hypervisor.JobInfo) bool {
	return info.Type == hypervisor.JobUnbounded && info.Phase != hypervisor.PhaseSetup && info.BytesPerSec() > 0
}

// adaptLinks is the feedback controller (seed 003), per WAN link direction,
// in bytes/s, over the migrations of every executor of the ledger that
// were transferring at their executor's latest tick (this executor's:
// now). The reference is the link's own capacity in the model (what the
// path gives when nothing else is on it), not a rate learnt from
// migrations that already share it:
//   - decrease: when the migrations on the link get, together, clearly
//     less than admission expected of it (the smaller of its admitted
//     bandwidth and their demands), the link delivers less than the model
//     says (degraded, or carrying traffic refuge does not see): the
//     admitted bandwidth falls to what it delivers (but at most by
//     Policy.Concurrency.DecreaseFactor at once); running migrations go on,
//     new ones wait until the link has room again;
//   - relearn: one migration alone on the link shows what it carries;
//   - increase: a link that delivers what it admits, with demand for more,
//     gets a tenth of its capacity more per interval (additive increase),
//     up to its capacity.
//
// A link another executor adapted less than an interval ago is left as it
// is, so that the executors of a ledger together adapt it once per
// interval.
func (e *Executor) adaptLinks() {
	cc := e.cfg.Policy.Concurrency
	type agg struct {
		sum, demand, best float64
		n                 int
	}
	// What each transfer should get on a link: its demand, within its fair
	// share of every other resource it crosses (NICs and other links, as
	// admission sees them), so that a shortfall caused elsewhere is not
	// blamed on this link.
	e.led.mu.Lock()
	fs := e.led.sortedFlights()
	flows := map[*unit]int{}
	for _, f := range fs {
		if f.observed {
			for _, u := range f.units {
				if u.key.kind.bandwidth() {
					flows[u]++
				}
			}
		}
	}
	per := map[*unit]*agg{}
	for _, f := range fs {
		if !f.observed {
			continue
		}
		rate := f.obsRate
		for _, l := range f.units {
			if l.key.kind != uLink {
				continue
			}
			expect := f.demand
			for _, u := range f.units {
				if u != l && u.key.kind.bandwidth() {
					expect = math.Min(expect, u.est/float64(flows[u]))
				}
			}
			a := per[l]
			if a == nil {
				a = &agg{}
				per[l] = a
			}
			a.sum += rate
			a.demand += expect
			a.best = math.Max(a.best, rate)
			a.n++
		}
	}
	e.led.mu.Unlock()
	us := make([]*unit, 0, len(per))
	for u := range per {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool {
		a, b := us[i].key, us[j].key
		if a.a != b.a {
			return a.a < b.a
		}
		return a.b < b.b
	})
	g := math.Max(cc.GainThreshold, 0.01)
	floor := cc.DecreaseFactor
	if !(floor > 0 && floor < 1) {
		floor = 0.3
	}
	now := e.cfg.Clock.Now()
	for _, u := range us {
		a := per[u]
		e.led.mu.Lock()
		if u.adaptedBy != nil && u.adaptedBy != e.me && now.Sub(u.adaptedAt) < e.interval() {
			e.led.mu.Unlock()
			continue
		}
		u.adaptedBy, u.adaptedAt = e.me, now
		old := u.est
		expect := math.Min(u.est, a.demand)
		switch {
		case a.sum < (1-g)*expect:
			u.est = math.Max(a.sum, floor*old)
		case a.n == 1 && a.best > u.est:
			u.est = math.Min(u.capModel, a.best)
		case u.est < u.capModel && a.demand >= (1-g)*u.est && a.sum >= (1-g)*u.est:
			u.est = math.Min(u.capModel, u.est+0.1*u.capModel)
		}
		est, capModel := u.est, u.capModel
		if est > old {
			e.led.freed(u, e.me)
		}
		e.led.mu.Unlock()
		if math.Abs(est-old) > 0.01*old {
			name := netpath.Name(e.ix, u.res)
			e.emit(Event{Kind: EvWindow, Detail: fmt.Sprintf("%s admits %.0f → %.0f Mbit/s (%d migrating at %.0f Mbit/s, link capacity %.0f Mbit/s)",
				name, mbps(old), mbps(est), a.n, mbps(a.sum), mbps(capModel))})
			e.cfg.Metrics.admitted(name, est)
			if est > old {
				e.wake(u)
			}
		}
	}
}

func mbps(bytesPerSec float64) float64 { return bytesPerSec * 8 / 1e6 }

// pipeline corrects the early release of bandwidth (armRelease) with what
// the job statistics show: a released migration that is still far from its
// end takes its bandwidth again.
func (e *Executor) pipeline(live []*running) {
	for _, r := range live {
		rate := r.info.BytesPerSec()
		if !transferring(r.info) || rate <= 0 {
			continue
		}
		left := time.Duration(float64(r.info.DataRemaining) / rate * float64(time.Second))
		setup := precopy.Setup(r.path.RTT)
		if r.released && left > 2*setup+e.interval() {
			e.retakeBandwidth(r)
		}
	}
}

// checkDeadlines looks at every running migration from a threatened site:
//   - if it is predicted to finish in time as it runs (precopy.Predict from
//     its job statistics), nothing;
//   - else, if the policy allows it and the rest can arrive in time without
//     further dirtying, switch to post-copy (when the migration was started
//     with it) or pause the guest so that the migration ends as a copy of
//     what is left — at the last interval at which that still works, since
//     pre-copy may yet converge (auto-converge) and pausing costs downtime;
//   - else, if what it still has to send cannot arrive before the deadline
//     even at its path's full rate, abort it: the site will be lost with
//     it, and its bandwidth can still save others.
func (e *Executor) checkDeadlines(live []*running) {
	now := e.now()
	pol := e.cfg.Policy.Migration
	guard := e.interval()
	for _, r := range live {
		d, via, threatened := e.pathDeadline(r.move.From, r.transit)
		info := r.info
		if !threatened || r.aborting || info.Phase == hypervisor.PhaseSetup || info.Phase == hypervisor.PhaseSwitchover {
			continue
		}
		if rate := info.BytesPerSec(); rate > 0 {
			liveLeft, copyLeft := e.predict(r, rate)
			if now+liveLeft <= d-guard {
				continue
			}
			switchable := r.mode == planner.ModeLive && (pol.PostCopy || pol.PauseAndCopy)
			if copyDone := now + copyLeft; switchable && copyDone <= d-guard {
				if copyDone+2*e.interval() <= d-guard {
					continue // not yet: pre-copy may still make it
				}
				if pol.PostCopy {
					e.switchMode(r, actPostCopy, modePostCopy, d)
				} else {
					e.switchMode(r, actPause, modePaused, d)
				}
				continue
			}
		}
		best := e.pathRate(r.path)
		if best <= 0 {
			continue
		}
		if now+secs(float64(info.DataRemaining)/best) > d {
			e.hopeless[r.vm] = true
			before := "the deadline " + d.Round(time.Second).String()
			if via >= 0 {
				before = fmt.Sprintf("%s, which its path crosses, is lost at %s", e.ix.Fed.Sites[via].Name, d.Round(time.Second))
			}
			e.abort(r, fmt.Sprintf("cannot finish before %s: %s left even at the path's full %.0f MiB/s",
				before, bytesString(info.DataRemaining), best/model.MiB), true)
		}
	}
}

// pathDeadline returns by when a migration from host from whose path
// crosses the sites transit must end: its site's deadline, or that of a
// threatened site it crosses if earlier (via: that site, -1 for the
// source's own). A site lost to a disaster takes its WAN links with it.
func (e *Executor) pathDeadline(from int, transit []int) (d time.Duration, via int, ok bool) {
	d, ok = e.deadlines[e.ix.HostSite(from)]
	via = -1
	for _, t := range transit {
		if dt, threatened := e.deadlines[t]; threatened && (!ok || dt < d) {
			d, via, ok = dt, t, true
		}
	}
	return d, via, ok
}

// switchMode queues a switch of r to post-copy or pause-and-copy.
func (e *Executor) switchMode(r *running, kind actionKind, mode string, d time.Duration) {
	r.mode = mode
	e.pending = append(e.pending, action{kind: kind, r: r})
	e.emit(Event{Kind: EvMode, VM: r.move.Name, Detail: fmt.Sprintf("%s: pre-copy is predicted to miss the deadline %s, the rest (%s) is not",
		mode, d.Round(time.Second), bytesString(r.info.DataRemaining))})
}

// predict returns how long running migration r still needs as it runs now,
// and if it were paused (or switched to post-copy) now, at rate: its disk
// copy, then pre-copy as precopy.Predict (or Solo, before the memory phase)
// sees it; a paused or post-copy migration only sends what is left.
func (e *Executor) predict(r *running, rate float64) (live, copied time.Duration) {
	info := r.info
	vm := &e.ix.Fed.VMs[r.vm]
	cfg := precopy.Config{MaxDowntime: e.cfg.Policy.Migration.MaxDowntime.D(), AutoConverge: e.cfg.Policy.Migration.AutoConverge}
	if r.mode == modePaused || r.mode == modePostCopy {
		t := secs(float64(info.DataRemaining)/rate) + precopy.SwitchoverOverhead
		return t, t
	}
	if info.Phase == hypervisor.PhaseDisk {
		disk := secs(float64(info.DiskRemaining) / rate)
		g := precopy.Guest{MemoryBytes: vm.MemoryBytes(), DirtyRate: vm.DirtyRateMiBps * model.MiB, WorkingSet: vm.WorkingSetMiB * model.MiB}
		mem := precopy.Solo(g, cfg, rate, 0)
		live = maxDuration
		if mem.Converges {
			live = disk + mem.Total - mem.Setup
		}
		return live, disk + secs(vm.MemoryBytes()/rate) + precopy.SwitchoverOverhead
	}
	p := precopy.Predict(info.Progress(vm.WorkingSetMiB*model.MiB, cfg))
	live = maxDuration
	if p.Live.OK {
		live = p.Live.Time
	}
	copied = maxDuration
	if p.Paused.OK {
		copied = p.Paused.Time
	}
	return live, copied
}

// maxDuration stands for "never" in predictions (far from overflowing
// when added to a time).
const maxDuration = time.Duration(math.MaxInt64 / 4)

func secs(s float64) time.Duration {
	if s > 1e9 || math.IsInf(s, 1) {
		return maxDuration
	}
	return time.Duration(s * float64(time.Second))
}
