package executor

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/planner"
	"github.com/refuge-project/refuge/internal/precopy"
)

// frozen marks the VMs a plan must leave alone.
func (e *Executor) frozen() []bool {
	now := e.now()
	f := make([]bool, len(e.placement))
	for v := range f {
		f[v] = e.migrated[v] || e.hopeless[v] || e.attempts[v] >= MaxAttempts || e.records[v].Status == StatusFailed
		if h := e.placement[v]; h >= 0 {
			if d, ok := e.deadlines[e.ix.HostSite(h)]; ok && d <= now {
				f[v] = true // its site is lost: nothing leaves it any more
			}
		}
	}
	for v := range e.running {
		f[v] = true
	}
	return f
}

// replan computes a new plan for everything not yet moved and replaces the
// queue with it.
func (e *Executor) replan(why string) {
	if e.stopped {
		return // aborted migrations coming back must not start others
	}
	in := e.planInput()
	t0 := time.Now()
	p, err := e.cfg.Plan(in)
	e.planTime += time.Since(t0)
	e.plans++
	e.clearQueue()
	if err != nil {
		e.log.Error("planning failed", "why", why, "err", err)
		e.emit(Event{Kind: EvPlan, Detail: "planning failed: " + err.Error()})
		return
	}
	if e.firstPlan == nil {
		e.firstPlan = p
	}
	for _, m := range p.Moves {
		e.enqueue(m)
		rec := &e.records[m.VM]
		rec.Predicted = m.PredFinish
		if rec.Status == StatusUnsaved || rec.Status == StatusAborted || rec.Status == StatusStranded {
			rec.Status = StatusPending
		}
	}
	for _, u := range p.Unsaved {
		rec := &e.records[u.VM]
		if rec.Status == StatusPending || rec.Status == StatusAborted || rec.Status == StatusStranded {
			rec.Status = StatusUnsaved
		}
		rec.Reason = u.Reason
	}
	e.emit(Event{Kind: EvPlan, Detail: fmt.Sprintf("%s: %d moves, %d unsaved, lower bound %s, predicted makespan %s",
		why, len(p.Moves), len(p.Unsaved), p.LowerBound.Round(time.Second), p.Makespan.Round(time.Second))})
	e.log.Info("plan", "why", why, "moves", len(p.Moves), "unsaved", len(p.Unsaved),
		"lower_bound", p.LowerBound, "makespan", p.Makespan)
	e.cfg.Metrics.plan(len(p.Moves), len(p.Unsaved))
}

// planInput is the snapshot the planner sees: e's view, where the
// migrations in flight — its own and the other executors' of its ledger —
// are frozen, reserve their destinations and keep their paths busy.
func (e *Executor) planInput() planner.Input {
	e.led.mu.Lock()
	defer e.led.mu.Unlock()
	e.syncLocked()
	in := planner.Input{
		Index:     e.ix,
		Policy:    e.cfg.Policy,
		Now:       e.now(),
		Deadlines: e.liveDeadlines(),
		Placement: append([]int(nil), e.placement...),
		HostDown:  append([]bool(nil), e.hostDown...),
		LinkMbps:  append([]float64(nil), e.linkMbps...),
		Frozen:    e.frozen(),
		Watch:     append([]bool(nil), e.watch...),
	}
	fs := e.led.sortedFlights()
	for _, f := range fs {
		if f.owner != e.me {
			if e.placement[f.vm] == f.to {
				continue // landed: placed there
			}
			in.Frozen[f.vm] = true
		}
		in.Reserved = append(in.Reserved, planner.Reservation{VM: f.vm, Host: f.to})
	}
	in.Busy = e.inFlightBusy(fs)
	return in
}

// pathOf returns the path of move m: its planned route, or the default
// route when the plan names none.
func (e *Executor) pathOf(m planner.Move) (netpath.Path, bool) {
	if len(m.Route) > 0 {
		p, err := netpath.Along(e.ix, m.From, m.To, m.Route)
		return p, err == nil
	}
	return netpath.Between(e.ix, m.From, m.To)
}

// enqueue adds a planned move to the ready queue.
func (e *Executor) enqueue(m planner.Move) {
	q := &queued{m: m, seq: e.seq}
	e.seq++
	if d, ok := e.deadlines[e.ix.HostSite(m.From)]; ok {
		q.due = e.cfg.Start.Add(d)
	}
	if path, ok := e.pathOf(m); ok {
		q.path = path
		q.transit = netpath.Transit(e.ix, path)
		q.units = e.unitsOf(m.From, m.To, path)
	}
	heap.Push(&e.ready, q)
	e.queuedN++
}

// inFlightBusy predicts how long the flights fs keep each resource on
// their paths busy: the bytes they still have to send over its capacity,
// from the latest job statistics (or the plan's prediction before there
// are any). It makes no driver call.
func (e *Executor) inFlightBusy(fs []*flight) map[netpath.Resource]time.Duration {
	now := e.cfg.Clock.Now()
	bytes := map[netpath.Resource]float64{}
	for _, f := range fs {
		left := f.left(now)
		if left <= 0 {
			continue
		}
		for _, res := range f.res {
			bytes[res] += left
		}
	}
	busy := make(map[netpath.Resource]time.Duration, len(bytes))
	for res, b := range bytes {
		if c := netpath.Capacity(e.ix, res, e.linkMbps); c > 0 {
			busy[res] = time.Duration(b / c * float64(time.Second))
		}
	}
	return busy
}

// liveDeadlines returns a copy of the deadlines. Sites whose deadline has
// passed stay threatened: nothing is sent there.
func (e *Executor) liveDeadlines() map[int]time.Duration {
	out := make(map[int]time.Duration, len(e.deadlines))
	for s, d := range e.deadlines {
		out[s] = d
	}
	return out
}

// pump starts, in plan order, every ready move that admission allows;
// the others park on the unit that blocks them.
func (e *Executor) pump() {
	if e.finished || !e.started {
		return
	}
	for e.ready.Len() > 0 {
		q := heap.Pop(&e.ready).(*queued)
		if why := e.try(q); why != "" {
			e.replan(why)
			e.dropInfeasible()
		}
	}
	e.checkFinished()
}

// wake tries the moves parked on u, in plan order, while u admits them;
// then it tells the ledger which of them is first now.
func (e *Executor) wake(u *unit) {
	h := e.parked[u]
	if h == nil {
		return
	}
	defer func() {
		e.led.mu.Lock()
		e.rewait(u)
		e.led.mu.Unlock()
	}()
	for h.Len() > 0 && !e.finished {
		q := (*h)[0]
		e.led.mu.Lock()
		q.demand = e.demandOf(q.path, q.units)
		ok := e.admitsLocked(u, q)
		e.led.mu.Unlock()
		if !ok {
			return
		}
		heap.Pop(h)
		if why := e.try(q); why != "" {
			e.replan(why)
			e.dropInfeasible()
			return
		}
	}
}

// poked tries the moves parked on the units that other executors of the
// ledger freed (their wakeup, queued on e's clock).
func (e *Executor) poked() {
	e.mu.Lock()
	defer e.unlock()
	e.led.mu.Lock()
	us := e.me.wake
	e.me.wake, e.me.poked = nil, false
	e.led.mu.Unlock()
	for _, u := range us {
		e.wake(u)
	}
	e.pump()
}

// try starts queued move q, parks it, or drops it when it is stale. It
// returns a reason to re-plan when the move cannot happen as planned.
func (e *Executor) try(q *queued) string {
	m := q.m
	v := m.VM
	stale := e.migrated[v] || e.running[v] != nil || e.placement[v] != m.From || e.hostDown[m.From]
	if d, ok := e.deadlines[e.ix.HostSite(m.From)]; ok && d <= e.now() {
		stale = true // the site is lost: nothing leaves it any more
	}
	if stale {
		e.queuedN--
		return ""
	}
	if _, threatened := e.deadlines[e.ix.HostSite(m.To)]; threatened || e.hostDown[m.To] {
		return "destination no longer safe"
	}
	if q.units == nil {
		return "route lost"
	}
	if _, via, _ := e.pathDeadline(m.From, q.transit); via >= 0 && e.deadlines[via] <= e.now() {
		return "route lost with " + e.ix.Fed.Sites[via].Name
	}
	u, why := e.admit(q)
	if u != nil {
		e.park(u, q)
	}
	return why
}

// admit starts q when every unit admits it and its destination has room,
// checked and taken at once under the ledger's lock, so that no other
// executor takes them in between. Otherwise it returns the unit q must
// wait on — marked as waited on under the same lock, so that capacity
// another executor frees from then on wakes it — or a reason to re-plan.
func (e *Executor) admit(q *queued) (*unit, string) {
	e.led.mu.Lock()
	defer e.led.mu.Unlock()
	for _, u := range q.units {
		if u.key.kind.bandwidth() && u.capModel <= 0 {
			return nil, "route lost"
		}
	}
	q.demand = e.demandOf(q.path, q.units)
	if u := e.blocking(q); u != nil {
		e.led.wait(u, e.me, true, e.firstDue(u, q))
		return u, ""
	}
	if !e.fitsLocked(q.m.VM, q.m.To) {
		return nil, "destination " + e.ix.Host(q.m.To).Name + " lacks capacity"
	}
	e.queuedN--
	e.reserve(q)
	return nil, ""
}

// dropInfeasible removes, right after a re-plan, the moves that the
// executor's own checks refuse (a threatened or down destination, one
// without room, a route that does not exist): a plan must never make the
// executor exceed capacity, and dropping them guarantees that re-planning
// cannot loop.
func (e *Executor) dropInfeasible() {
	kept := e.ready[:0]
	for _, q := range e.ready {
		m := q.m
		why := ""
		_, threatened := e.deadlines[e.ix.HostSite(m.To)]
		switch {
		case threatened:
			why = "the site is threatened"
		case e.hostDown[m.To]:
			why = "the host is down"
		case q.units == nil:
			why = "no route reaches it"
		case !e.fits(m.VM, m.To):
			why = "it lacks capacity or would break anti-affinity"
		}
		if why == "" {
			kept = append(kept, q)
			continue
		}
		e.queuedN--
		rec := &e.records[m.VM]
		rec.Status = StatusUnsaved
		rec.Reason = fmt.Sprintf("the plan sent it to %s, which the executor refused: %s", e.ix.Host(m.To).Name, why)
		e.log.Error("plan proposed an infeasible move", "vm", m.Name, "to", e.ix.Host(m.To).Name, "why", why)
	}
	for i := len(kept); i < len(e.ready); i++ {
		e.ready[i] = nil
	}
	e.ready = kept
	for i, q := range e.ready {
		q.idx = i
	}
	heap.Init(&e.ready)
}

// reserve admits q: it takes its units and the destination's capacity,
// records its flight in the ledger and queues the driver call that starts
// it. The ledger's mutex is held.
func (e *Executor) reserve(q *queued) {
	m := q.m
	v := m.VM
	vm := &e.ix.Fed.VMs[v]
	pol := e.cfg.Policy.Migration
	req := hypervisor.MigrateRequest{
		Domain:     vm.Name,
		SourceHost: e.ix.Host(m.From).Name,
		DestHost:   e.ix.Host(m.To).Name,
		DestURI:    e.ix.Host(m.To).URI,
		Params: hypervisor.MigrateParams{
			Live:                m.Mode != planner.ModePause,
			PeerToPeer:          true,
			PersistDest:         true,
			UndefineSource:      true,
			BandwidthBytes:      pol.MaxBandwidthMiBps * model.MiB,
			MaxDowntime:         pol.MaxDowntime.D(),
			AutoConverge:        pol.AutoConverge,
			ParallelConnections: pol.ParallelConnections,
			PostCopy:            pol.PostCopy,
		},
	}
	for _, l := range m.Route {
		req.Route = append(req.Route, e.ix.Fed.Links[l].Name)
	}
	if vm.CopiesDisk() {
		req.Params.CopyStorage = hypervisor.CopyStorageAll
	}
	mode := m.Mode
	if mode == "" {
		mode = planner.ModeLive
	}
	r := &running{vm: v, move: m, path: q.path, transit: q.transit, units: q.units, demand: q.demand, started: e.now(), mode: mode}
	for _, u := range r.units {
		if e.admitted != nil {
			e.admitted(u, r.demand)
		}
		u.take(r.demand)
	}
	r.fl = &flight{owner: e.me, vm: v, to: m.To, units: r.units, res: r.path.Resources, demand: r.demand,
		bytes: m.Bytes, rate: r.demand, since: e.cfg.Clock.Now().Add(precopy.Setup(r.path.RTT))}
	e.led.fly(r.fl)
	e.commit(v, m.To, 1)
	e.running[v] = r
	e.attempts[v]++
	rec := &e.records[v]
	rec.Attempts = e.attempts[v]
	rec.Status = StatusRunning
	rec.To = req.DestHost
	rec.Started = r.started
	e.pending = append(e.pending, action{kind: actStart, r: r, req: req})
}

// actionKind names a driver call the executor makes outside its lock.
type actionKind uint8

const (
	actStart actionKind = iota
	actAbort
	actPause
	actPostCopy
	actProbe
	actEnd    // journal a migration's end (no driver call)
	actSwitch // tell the Switcher a VM switched over
)

type action struct {
	kind actionKind
	r    *running
	req  hypervisor.MigrateRequest
	host int // actProbe
	// actEnd: the migration's outcome; actSwitch: the service and sites.
	err              error
	service          string
	fromSite, toSite string
	// fenced: the journal refused the step, which was not taken.
	fenced bool
}

// step describes a for the journal.
func (e *Executor) step(a action) Step {
	st := Step{}
	if r := a.r; r != nil {
		st = Step{VM: r.move.Name, From: e.ix.Host(r.move.From).Name, To: e.ix.Host(r.move.To).Name,
			Attempt: e.attempts[r.vm], Mode: r.mode, Route: a.req.Route}
	}
	switch a.kind {
	case actStart:
		st.Kind = StepStart
	case actAbort:
		st.Kind = StepAbort
	case actPause:
		st.Kind = StepPause
	case actPostCopy:
		st.Kind = StepPostCopy
	case actProbe:
		st.Kind, st.Host = StepProbe, e.ix.Host(a.host).Name
	case actEnd:
		st.Kind = StepEnd
	}
	return st
}

// unlock makes the pending driver calls outside the lock, settles their
// results under it (which may queue more) until none are left, and
// releases the lock. Every method that takes e.mu releases it through
// unlock.
func (e *Executor) unlock() {
	for len(e.pending) > 0 && !e.fenced {
		acts := e.pending
		e.pending = nil
		steps := make([]Step, len(acts))
		for i, a := range acts {
			steps[i] = e.step(a)
		}
		e.mu.Unlock()
		jobs := make([]hypervisor.Job, len(acts))
		errs := make([]error, len(acts))
		fenced := false
		for i := range acts {
			a := &acts[i]
			j := e.cfg.Journal
			switch {
			case fenced:
				a.fenced = true
				continue
			case a.kind == actEnd || a.kind == actSwitch:
			case j != nil:
				if err := j.Intent(steps[i]); err != nil {
					e.log.Warn("journal refused a step: fenced", "step", steps[i].Kind, "vm", steps[i].VM, "err", err)
					a.fenced, fenced = true, true
					continue
				}
			}
			jobs[i], errs[i] = e.call(*a)
			if j != nil && a.kind != actSwitch {
				if a.kind == actEnd {
					errs[i] = a.err
				}
				j.Result(steps[i], errs[i])
			}
		}
		e.mu.Lock()
		for i, a := range acts {
			e.settle(a, jobs[i], errs[i])
		}
		if fenced {
			e.fence()
			break
		}
		e.pump()
	}
	e.mu.Unlock()
}

// fence stops the executor for good without another driver call: the
// journal refused a step (another controller leads now).
func (e *Executor) fence() {
	e.fenced = true
	e.pending = nil
	e.clearQueue()
	e.stopTimers()
	if !e.finished {
		e.finished = true
		e.emit(Event{Kind: EvFinished, Detail: "fenced: the journal refused a step"})
		close(e.done)
	}
}

// call makes one driver call, with a bounded context where it takes one.
func (e *Executor) call(a action) (hypervisor.Job, error) {
	switch a.kind {
	case actStart:
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.CallTimeout)
		defer cancel()
		var obs hypervisor.Observer = observer{e: e, r: a.r}
		if e.cfg.Switcher != nil {
			obs = switchObserver{observer{e: e, r: a.r}} // the driver watches for the switch-over only then
		}
		return e.cfg.Driver.Migrate(ctx, a.req, obs)
	case actAbort:
		return nil, a.r.job.Abort()
	case actPause:
		return nil, a.r.job.Pause()
	case actPostCopy:
		return nil, a.r.job.StartPostCopy()
	case actProbe:
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.CallTimeout)
		defer cancel()
		_, err := e.cfg.Driver.ListDomains(ctx, e.ix.Host(a.host).Name)
		return nil, err
	case actEnd:
		return nil, nil
	case actSwitch:
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.CallTimeout)
		defer cancel()
		return nil, e.cfg.Switcher.Switchover(ctx, a.r.move.Name, a.service, a.fromSite, a.toSite)
	}
	return nil, fmt.Errorf("executor: unknown action %d", a.kind)
}

// settle records the outcome of a driver call.
func (e *Executor) settle(a action, job hypervisor.Job, err error) {
	r := a.r
	if a.fenced {
		if a.kind == actStart && e.running[r.vm] == r {
			e.endRunning(r, r.move.From)
			e.commit(r.vm, r.move.To, -1)
			e.records[r.vm].Status, e.records[r.vm].To = StatusPending, ""
		}
		return
	}
	switch a.kind {
	case actEnd:
		return
	case actSwitch:
		detail := fmt.Sprintf("service %s follows it to %s", a.service, a.toSite)
		if err != nil {
			detail = fmt.Sprintf("service %s: continuity degraded: %v", a.service, err)
			e.log.Warn("switchover failed", "vm", r.move.Name, "service", a.service, "err", err)
		}
		e.emit(Event{Kind: EvContinuity, VM: r.move.Name, From: a.fromSite, To: a.toSite, Detail: detail})
		return
	case actStart:
		if e.running[r.vm] != r {
			return // it already ended (a real driver may report the end first)
		}
		if err != nil {
			e.refused(r, a.req, err)
			return
		}
		r.job = job
		e.emit(Event{Kind: EvStart, VM: a.req.Domain, From: a.req.SourceHost, To: a.req.DestHost,
			Detail: fmt.Sprintf("attempt %d, %s, admitted at %s/s, predicted finish %s", e.attempts[r.vm], r.mode,
				bytesString(uint64(r.demand)), r.move.PredFinish.Round(time.Second))})
		e.cfg.Metrics.started()
		e.armRelease(r)
		if r.aborting {
			e.pending = append(e.pending, action{kind: actAbort, r: r})
		}
	case actAbort:
		if err != nil {
			e.log.Warn("abort failed", "vm", r.move.Name, "err", err)
		}
	case actPause, actPostCopy:
		if err != nil {
			e.log.Warn("mode switch failed", "vm", r.move.Name, "err", err)
			e.emit(Event{Kind: EvMode, VM: r.move.Name, Detail: "switch failed: " + err.Error()})
			if e.running[r.vm] == r {
				r.mode = planner.ModeLive
			}
		}
	case actProbe:
		if errors.Is(err, hypervisor.ErrHostDown) && !e.hostDown[a.host] {
			e.hostDownLocked(a.host)
			e.replan("host down")
		}
	}
}

// refused handles a migration the driver would not start.
func (e *Executor) refused(r *running, req hypervisor.MigrateRequest, err error) {
	v := r.vm
	e.endRunning(r, r.move.From)
	e.commit(v, r.move.To, -1)
	rec := &e.records[v]
	rec.Reason = err.Error()
	rec.To = ""
	rec.Status = StatusPending
	if e.attempts[v] >= MaxAttempts {
		rec.Status = StatusFailed
	}
	e.emit(Event{Kind: EvRefused, VM: req.Domain, From: req.SourceHost, To: req.DestHost, Detail: err.Error()})
	e.log.Warn("migration did not start", "vm", req.Domain, "to", req.DestHost, "err", err)
	if errors.Is(err, hypervisor.ErrHostDown) {
		// Ask about both hosts, so that the next plan avoids the dead one
		// instead of retrying the same move.
		for _, h := range []int{r.move.From, r.move.To} {
			if !e.hostDown[h] {
				e.pending = append(e.pending, action{kind: actProbe, host: h})
			}
		}
	}
	e.replan("start failed")
	e.dropInfeasible()
}

// armRelease gives r's bandwidth back when its data is predicted to end
// within the set-up of the next migration on its path, so that the next
// one's set-up overlaps r's last bytes and the path does not idle. The
// first check comes when the plan's prediction says so; each check reads
// the job's statistics (outside the lock) and, if r is not that close to
// its end yet, comes again when the statistics say it will be.
func (e *Executor) armRelease(r *running) {
	bytes := r.move.Bytes
	if bytes <= 0 {
		vm := &e.ix.Fed.VMs[r.vm]
		bytes = vm.MemoryBytes()
		if vm.CopiesDisk() {
			bytes += vm.DiskBytes()
		}
	}
	if r.demand <= 0 || !e.cfg.Policy.Concurrency.Adaptive {
		return // no bandwidth units to release
	}
	e.armReleaseIn(r, time.Duration(bytes/r.demand*float64(time.Second)))
}

func (e *Executor) armReleaseIn(r *running, d time.Duration) {
	r.release = e.cfg.Clock.AfterFunc(max(d, 0), func() {
		e.mu.Lock()
		if e.running[r.vm] != r || r.released || r.job == nil {
			e.mu.Unlock()
			return
		}
		job := r.job
		e.mu.Unlock()
		info, err := job.Info()
		e.mu.Lock()
		defer e.unlock()
		if e.running[r.vm] != r || r.released {
			return
		}
		setup := precopy.Setup(r.path.RTT)
		rate := info.BytesPerSec()
		if err == nil && info.Phase != hypervisor.PhaseSwitchover && rate > 0 {
			e.observe(r, info)
			left, _ := e.predict(r, rate)
			if info.Phase == hypervisor.PhaseSetup {
				left = setup
			}
			if left > setup {
				e.armReleaseIn(r, min(left-setup, e.interval()))
				return
			}
		}
		e.releaseBandwidth(r)
		e.pump()
	})
}

// observe records r's latest job statistics, here and in its flight.
func (e *Executor) observe(r *running, info hypervisor.JobInfo) {
	r.info = info
	e.led.mu.Lock()
	r.fl.bytes, r.fl.rate, r.fl.since = float64(info.DataRemaining), info.BytesPerSec(), e.cfg.Clock.Now()
	e.led.mu.Unlock()
}

// releaseBandwidth gives r's bandwidth units back and wakes what waits on
// them, here and in the other executors of the ledger.
func (e *Executor) releaseBandwidth(r *running) {
	r.released = true
	e.led.mu.Lock()
	for _, u := range r.units {
		if u.key.kind.bandwidth() {
			u.give(r.demand)
			e.led.freed(u, e.me)
		}
	}
	e.led.mu.Unlock()
	for _, u := range r.units {
		if u.key.kind.bandwidth() {
			e.wake(u)
		}
	}
}

// retakeBandwidth charges a released migration again: it is still sending
// long after the prediction said it would be done.
func (e *Executor) retakeBandwidth(r *running) {
	r.released = false
	e.led.mu.Lock()
	defer e.led.mu.Unlock()
	for _, u := range r.units {
		if u.key.kind.bandwidth() {
			u.take(r.demand)
		}
	}
}

// endRunning removes r from the running set, whose VM now runs on host at
// (-1: lost), gives back every unit it holds and ends its flight (without
// waking e's moves: the caller does, once the state is consistent; the
// other executors' are woken through the ledger).
func (e *Executor) endRunning(r *running, at int) {
	delete(e.running, r.vm)
	if r.release != nil {
		r.release.Stop()
	}
	e.led.mu.Lock()
	for _, u := range r.units {
		if u.key.kind.bandwidth() && r.released {
			continue
		}
		u.give(r.demand)
		e.led.freed(u, e.me)
	}
	e.led.land(e.me, r.vm, at)
	e.led.mu.Unlock()
	r.released = true
}

type observer struct {
	e *Executor
	r *running
}

func (o observer) MigrationDone(res hypervisor.Result) { o.e.migrationDone(o.r, res) }

// switchObserver is the observer of a migration whose services follow
// it (Config.Switcher): a hypervisor.SwitchoverObserver.
type switchObserver struct{ observer }

// SwitchedOver: the driver reports the VM running at its destination,
// its source copy not yet torn down: its services follow it now.
func (o switchObserver) SwitchedOver() { o.e.switchedOver(o.r) }

// switchedOver queues the Switcher's calls for r's services, once.
func (e *Executor) switchedOver(r *running) {
	e.mu.Lock()
	defer e.unlock()
	if e.running[r.vm] == r && !r.switched {
		r.switched = true
		e.queueSwitch(r, r.move.From, r.move.To)
	}
}

// queueSwitch queues the Switcher's call for r's service (if any), which
// moves from host from's site to host to's.
func (e *Executor) queueSwitch(r *running, from, to int) {
	if svc := e.ix.Fed.VMs[r.vm].Service; svc != "" && e.cfg.Switcher != nil {
		e.pending = append(e.pending, action{kind: actSwitch, r: r, service: svc,
			fromSite: e.fed().Sites[e.ix.HostSite(from)].Name, toSite: e.fed().Sites[e.ix.HostSite(to)].Name})
	}
}

// abort asks the driver to abort r; ours says whether it is the executor's
// own decision (then it does not count as a failed attempt).
func (e *Executor) abort(r *running, why string, ours bool) {
	if r.aborting {
		return
	}
	r.aborting, r.abortWhy, r.ours = true, why, ours
	if r.job != nil {
		e.pending = append(e.pending, action{kind: actAbort, r: r})
	}
	e.emit(Event{Kind: EvAbort, VM: r.move.Name, Detail: why})
}

func (e *Executor) migrationDone(r *running, res hypervisor.Result) {
	e.mu.Lock()
	defer e.unlock()
	if e.running[r.vm] != r {
		return
	}
	toName := e.ix.Host(r.move.To).Name
	// Where does the VM run now? Trust the driver's report.
	runningOn := -1
	switch res.RunningOn {
	case toName:
		runningOn = r.move.To
	case e.ix.Host(r.move.From).Name:
		runningOn = r.move.From
	}
	e.endRunning(r, runningOn)
	v := r.vm
	rec := &e.records[v]
	now := e.now()
	rec.Finished = now
	rec.Duration = now - r.started
	rec.Bytes = res.Bytes
	e.cfg.Metrics.bytes(res.Bytes)
	if res.Err == nil && runningOn != r.move.To {
		res.Err = fmt.Errorf("driver reported success but the domain runs on %q", res.RunningOn)
	}
	if runningOn != r.move.To {
		e.commit(v, r.move.To, -1)
	}
	if runningOn != r.move.From {
		e.commit(v, r.move.From, -1)
	}
	e.placement[v] = runningOn
	e.pending = append(e.pending, action{kind: actEnd, r: r, err: res.Err})
	defer func() {
		for _, u := range r.units {
			e.wake(u)
		}
		e.pump()
	}()
	if res.Err == nil {
		e.migrated[v] = true
		rec.Status = StatusMigrated
		rec.Downtime = res.Downtime
		rec.Reason = ""
		e.emit(Event{Kind: EvDone, VM: rec.Name, From: e.ix.Host(r.move.From).Name, To: toName,
			Detail: fmt.Sprintf("%s, downtime %s, %d rounds, %s", rec.Duration.Round(100*time.Millisecond), res.Downtime.Round(time.Millisecond), res.Rounds, r.mode)})
		e.cfg.Metrics.done("migrated", rec.Duration, res.Downtime)
		if !r.switched { // a driver that does not report the switch-over itself
			e.queueSwitch(r, r.move.From, r.move.To)
		}
		return
	}
	if r.switched && runningOn == r.move.From {
		// It switched over, then the migration failed back to the source.
		e.queueSwitch(r, r.move.To, r.move.From)
	}
	if r.aborting && r.ours && !e.hopeless[v] {
		// The executor's own decision is not a failed attempt.
		e.attempts[v]--
		rec.Attempts = e.attempts[v]
	}
	rec.Reason = res.Err.Error()
	switch {
	case runningOn < 0:
		rec.Status = StatusLost
	case r.aborting && e.hopeless[v]:
		rec.Status = StatusMissed
		rec.Reason = r.abortWhy
	case r.aborting:
		rec.Status = StatusAborted
		rec.Reason = r.abortWhy
	case e.attempts[v] >= MaxAttempts:
		rec.Status = StatusFailed
	default:
		rec.Status = StatusPending
	}
	if runningOn >= 0 {
		rec.To = ""
	}
	e.emit(Event{Kind: EvFail, VM: rec.Name, From: e.ix.Host(r.move.From).Name, To: toName, Detail: res.Err.Error()})
	outcome := "failed"
	switch {
	case runningOn < 0:
		outcome = "lost"
	case r.aborting:
		outcome = "aborted"
	}
	e.cfg.Metrics.done(outcome, rec.Duration, 0)
	e.replan("migration of " + rec.Name + " ended without success")
	e.dropInfeasible()
}

// savableLeft reports whether some at-risk VM is still on a threatened site
// whose deadline has not passed, and could be planned again.
func (e *Executor) savableLeft() bool {
	now := e.now()
	for v, h := range e.placement {
		if h < 0 || e.hostDown[h] || e.migrated[v] || e.hopeless[v] || e.attempts[v] >= MaxAttempts {
			continue
		}
		if d, ok := e.deadlines[e.ix.HostSite(h)]; ok && d > now {
			switch e.records[v].Status {
			case StatusPending, StatusUnsaved, StatusAborted:
				return true
			}
		}
	}
	return false
}

func (e *Executor) checkFinished() {
	if e.finished || !e.started || len(e.running) > 0 || e.queuedN > 0 || len(e.pending) > 0 || len(e.resume.inFlight) > 0 {
		return
	}
	// Idle with time left: the plan's predictions were pessimistic (earlier
	// migrations went faster than predicted), so VMs it left behind may
	// still make it. Re-plan once more; finish only when that adds nothing.
	if now := e.now(); e.savableLeft() && (!e.idleReplanned || e.idleReplanAt != now) {
		e.idleReplanned, e.idleReplanAt = true, now
		e.replan("idle before the deadlines")
		e.dropInfeasible()
		if e.queuedN > 0 {
			e.pump()
			return
		}
	}
	e.finished = true
	e.stopTimers()
	for v := range e.records {
		if e.records[v].Status == StatusPending {
			e.records[v].Status = StatusStranded
		}
	}
	e.emit(Event{Kind: EvFinished})
	close(e.done)
}
