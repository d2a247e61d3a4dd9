// Package executor runs evacuation plans through a hypervisor.Driver.
//
// It starts the planned migrations in plan order within per-host, per-fabric,
// global and per-link concurrency limits; with an adaptive policy the number
// of migrations per link follows observed throughput (slow start, additive
// increase, multiplicative decrease — the feedback scheduling of seed 003).
// It re-plans when a migration fails, a deadline moves, a host dies or a link
// changes; it never migrates a VM twice, never sends one to a threatened site
// and never exceeds a destination's capacity.
//
// The executor has no goroutines of its own: it reacts to driver callbacks
// and to timers of an injected clock, under one mutex, so the same code runs
// against the wall clock and inside the simulator's event loop.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/planner"
)

// MaxAttempts bounds how often one VM's migration is tried.
const MaxAttempts = 3

// Config sets up an Executor.
type Config struct {
	Index  *model.Index
	Policy model.Policy
	Driver hypervisor.Driver
	Clock  clock.Clock
	// Start is the evacuation's time origin (deadlines are offsets from it).
	Start time.Time
	// Placement is where VMs run when the executor starts (nil: the
	// federation's placement).
	Placement []int
	// HostDown marks hosts already down at start (nil: all up).
	HostDown []bool
	Logger   *slog.Logger
	// Metrics, if not nil, receives Prometheus metrics.
	Metrics *Metrics
	// OnEvent, if not nil, receives every timeline event (under the
	// executor's lock: it must not call back into the executor).
	OnEvent func(Event)
	// Plan computes plans from snapshots; nil means planner.Compute (the
	// evacuation planner). Other planners (e.g. consolidation) plug in
	// here and get the same limits, controller and re-planning.
	Plan func(planner.Input) (*planner.Plan, error)
}

// Status of one VM in the report.
type Status string

// VM statuses.
const (
	StatusPending  Status = "pending"
	StatusRunning  Status = "running"
	StatusMigrated Status = "migrated"
	StatusFailed   Status = "failed"   // gave up after MaxAttempts or a fatal error
	StatusUnsaved  Status = "unsaved"  // the plan leaves it (no capacity, deadline, …)
	StatusLost     Status = "lost"     // its site or host went down with it
	StatusMissed   Status = "missed"   // still on a threatened site at its deadline
	StatusSafe     Status = "safe"     // never at risk
	StatusAborted  Status = "aborted"  // migration aborted, VM stayed on its source
	StatusStranded Status = "stranded" // at risk, waiting, no plan reached it yet
)

// VMRecord is one VM's outcome.
type VMRecord struct {
	Name      string        `json:"vm"`
	Status    Status        `json:"status"`
	From      string        `json:"from"`
	To        string        `json:"to,omitempty"`
	Attempts  int           `json:"attempts"`
	Started   time.Duration `json:"started"`
	Finished  time.Duration `json:"finished"`
	Duration  time.Duration `json:"duration"`
	Downtime  time.Duration `json:"downtime"`
	Bytes     uint64        `json:"bytes"`
	Predicted time.Duration `json:"predicted_finish"`
	Reason    string        `json:"reason,omitempty"`
	Deadline  time.Duration `json:"deadline,omitempty"`
}

// Event is one entry of the evacuation timeline.
type Event struct {
	At     time.Duration `json:"at"`
	Kind   string        `json:"kind"`
	VM     string        `json:"vm,omitempty"`
	From   string        `json:"from,omitempty"`
	To     string        `json:"to,omitempty"`
	Detail string        `json:"detail,omitempty"`
}

// Event kinds.
const (
	EvPlan     = "plan"
	EvStart    = "start"
	EvDone     = "done"
	EvFail     = "fail"
	EvRefused  = "refused" // the driver would not start the migration
	EvAbort    = "abort"
	EvWindow   = "window"
	EvDeadline = "deadline"
	EvHostDown = "host-down"
	EvLink     = "link"
	EvFinished = "finished"
)

type running struct {
	vm       int
	move     planner.Move
	job      hypervisor.Job
	started  time.Duration
	links    []netpath.Resource
	aborting bool
	abortWhy string
}

// linkCtl is the adaptive controller state of one link direction.
type linkCtl struct {
	window    int
	slowStart bool
	// ref is the best per-migration throughput seen on this link (bytes/s):
	// what a migration gets when it is not slowed by others.
	ref float64
}

// Executor runs plans. Create it with New, then call Start.
type Executor struct {
	cfg Config
	ix  *model.Index
	log *slog.Logger

	mu        sync.Mutex
	started   bool
	finished  bool
	done      chan struct{}
	deadlines map[int]time.Duration
	placement []int
	hostDown  []bool
	linkMbps  []float64
	queue     []planner.Move
	running   map[int]*running
	records   []VMRecord
	migrated  []bool
	attempts  []int
	// hopeless marks VMs whose migration was aborted because it could not
	// finish before its site's deadline; they are not tried again.
	hopeless  []bool
	links     map[netpath.Resource]*linkCtl
	ticker    clock.Timer
	timers    []clock.Timer
	plans     int
	planTime  time.Duration
	firstPlan *planner.Plan
	timeline  []Event
	// usage committed on each host by placed VMs and in-flight migrations
	memUsed  []int64
	cpuUsed  []int
	diskUsed []int64
	// affinity counts, per host, the VMs of each anti-affinity group
	// placed or arriving there.
	affinity []map[string]int
}

// New checks cfg and returns an executor.
func New(cfg Config) (*Executor, error) {
	switch {
	case cfg.Index == nil:
		return nil, errors.New("executor: Config.Index is required")
	case cfg.Driver == nil:
		return nil, errors.New("executor: Config.Driver is required")
	case cfg.Clock == nil:
		return nil, errors.New("executor: Config.Clock is required")
	}
	ix := cfg.Index
	nv, nh := len(ix.Fed.VMs), len(ix.Hosts)
	if cfg.Placement != nil && len(cfg.Placement) != nv {
		return nil, fmt.Errorf("executor: placement has %d entries for %d VMs", len(cfg.Placement), nv)
	}
	if cfg.HostDown != nil && len(cfg.HostDown) != nh {
		return nil, fmt.Errorf("executor: host-down list has %d entries for %d hosts", len(cfg.HostDown), nh)
	}
	if cfg.Policy.Concurrency.Adaptive && cfg.Policy.Concurrency.Interval <= 0 {
		return nil, errors.New("executor: an adaptive policy needs concurrency.interval > 0")
	}
	if cfg.Plan == nil {
		cfg.Plan = planner.Compute
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	e := &Executor{
		cfg:       cfg,
		ix:        ix,
		log:       lg,
		done:      make(chan struct{}),
		deadlines: map[int]time.Duration{},
		placement: make([]int, nv),
		hostDown:  make([]bool, nh),
		linkMbps:  make([]float64, len(ix.Fed.Links)),
		running:   map[int]*running{},
		records:   make([]VMRecord, nv),
		migrated:  make([]bool, nv),
		hopeless:  make([]bool, nv),
		attempts:  make([]int, nv),
		links:     map[netpath.Resource]*linkCtl{},
		memUsed:   make([]int64, nh),
		cpuUsed:   make([]int, nh),
		diskUsed:  make([]int64, nh),
		affinity:  make([]map[string]int, nh),
	}
	copy(e.placement, ix.VMHost)
	if cfg.Placement != nil {
		copy(e.placement, cfg.Placement)
	}
	if cfg.HostDown != nil {
		copy(e.hostDown, cfg.HostDown)
	}
	for l := range ix.Fed.Links {
		e.linkMbps[l] = ix.Fed.Links[l].BandwidthMbps
	}
	for v := range ix.Fed.VMs {
		vm := &ix.Fed.VMs[v]
		e.records[v] = VMRecord{Name: vm.Name, Status: StatusSafe}
		if h := e.placement[v]; h >= 0 {
			e.records[v].From = ix.Host(h).Name
			e.commit(v, h, 1)
		} else {
			e.records[v].Status = StatusLost
		}
	}
	return e, nil
}

// commit adds (sign 1) or removes (sign -1) VM v's footprint on host h.
func (e *Executor) commit(v, h, sign int) {
	vm := &e.ix.Fed.VMs[v]
	e.memUsed[h] += int64(sign) * vm.MemoryMiB
	e.cpuUsed[h] += sign * vm.VCPU
	if vm.CopiesDisk() {
		e.diskUsed[h] += int64(sign) * vm.DiskGiB
	}
	if g := vm.AntiAffinity; g != "" {
		if e.affinity[h] == nil {
			e.affinity[h] = map[string]int{}
		}
		e.affinity[h][g] += sign
	}
}

func (e *Executor) now() time.Duration { return e.cfg.Clock.Now().Sub(e.cfg.Start) }

func (e *Executor) emit(ev Event) {
	ev.At = e.now()
	e.timeline = append(e.timeline, ev)
	if e.cfg.OnEvent != nil {
		e.cfg.OnEvent(ev)
	}
}

// Start sets the threatened sites' deadlines (offsets from Config.Start),
// computes the first plan and starts migrating.
func (e *Executor) Start(deadlines map[int]time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("executor: already started")
	}
	e.started = true
	for s, d := range deadlines {
		if s < 0 || s >= len(e.ix.Fed.Sites) {
			return fmt.Errorf("executor: deadline for unknown site index %d", s)
		}
		e.setDeadlineLocked(s, d)
	}
	e.replan("initial plan")
	if e.cfg.Policy.Concurrency.Adaptive || e.cfg.Policy.DeadlineAware {
		e.armTicker()
	}
	e.pump()
	return nil
}

// Done is closed when nothing is left to do.
func (e *Executor) Done() <-chan struct{} { return e.done }

// SetDeadline moves (or sets) a site's deadline: an updated warning. In-flight
// migrations towards a newly threatened site are aborted and re-planned.
func (e *Executor) SetDeadline(site int, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.finished || site < 0 || site >= len(e.ix.Fed.Sites) {
		return
	}
	e.setDeadlineLocked(site, d)
	e.emit(Event{Kind: EvDeadline, Detail: fmt.Sprintf("%s deadline now %s", e.ix.Fed.Sites[site].Name, d.Round(time.Second))})
	for _, r := range e.sortedRunning() {
		if e.ix.HostSite(r.move.To) == site {
			e.abort(r, "destination site "+e.ix.Fed.Sites[site].Name+" is now threatened")
		}
	}
	e.replan("deadline changed")
	e.pump()
}

func (e *Executor) setDeadlineLocked(site int, d time.Duration) {
	e.deadlines[site] = d
	for v := range e.records {
		if h := e.placement[v]; h >= 0 && e.ix.HostSite(h) == site && e.records[v].Status == StatusSafe {
			e.records[v].Status = StatusPending
		}
		if h := e.placement[v]; h >= 0 && e.ix.HostSite(h) == site {
			e.records[v].Deadline = d
		}
	}
	at := d - e.now()
	e.timers = append(e.timers, e.cfg.Clock.AfterFunc(max(at, 0), func() { e.deadlinePassed(site, d) }))
}

// CancelThreat withdraws a site's threat (a cancelled warning): no new
// migration leaves it; running ones finish, or are aborted when
// abortRunning is set. Its VMs count as safe again.
func (e *Executor) CancelThreat(site int, abortRunning bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.finished || site < 0 || site >= len(e.ix.Fed.Sites) {
		return
	}
	if _, ok := e.deadlines[site]; !ok {
		return
	}
	delete(e.deadlines, site)
	e.emit(Event{Kind: EvDeadline, Detail: e.ix.Fed.Sites[site].Name + " threat withdrawn"})
	for v, h := range e.placement {
		if h < 0 || e.ix.HostSite(h) != site || e.migrated[v] || e.running[v] != nil {
			continue
		}
		rec := &e.records[v]
		rec.Status, rec.Deadline, rec.Reason = StatusSafe, 0, ""
	}
	if abortRunning {
		for _, r := range e.sortedRunning() {
			if e.ix.HostSite(r.move.From) == site {
				e.abort(r, "the threat to "+e.ix.Fed.Sites[site].Name+" was withdrawn")
			}
		}
	}
	e.replan("threat withdrawn")
	e.pump()
}

// deadlinePassed marks VMs still on the site as missed.
func (e *Executor) deadlinePassed(site int, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.deadlines[site] != d {
		return // the deadline moved since
	}
	missed := 0
	for v := range e.records {
		h := e.placement[v]
		if h < 0 || e.ix.HostSite(h) != site || e.migrated[v] {
			continue
		}
		missed++
		switch e.records[v].Status {
		case StatusPending, StatusStranded, StatusAborted:
			e.records[v].Status = StatusMissed
		}
	}
	e.emit(Event{Kind: EvDeadline, Detail: fmt.Sprintf("%s deadline reached; %d VMs not out", e.ix.Fed.Sites[site].Name, missed)})
	// queued moves from this site can no longer happen
	kept := e.queue[:0]
	for _, m := range e.queue {
		if e.ix.HostSite(m.From) != site {
			kept = append(kept, m)
		}
	}
	e.queue = kept
	e.checkFinished()
}

// HostDown records that host h stopped (monitoring noticed it). VMs on it are
// lost; migrations to it fail through the driver and are re-planned.
func (e *Executor) HostDown(h int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.finished || h < 0 || h >= len(e.hostDown) || e.hostDown[h] {
		return
	}
	e.hostDownLocked(h)
	e.replan("host down")
	e.pump()
}

func (e *Executor) hostDownLocked(h int) {
	e.hostDown[h] = true
	e.emit(Event{Kind: EvHostDown, Detail: e.ix.Host(h).Name})
	for v, p := range e.placement {
		if p == h {
			if _, inFlight := e.running[v]; inFlight {
				continue // the driver reports the migration's fate
			}
			e.commit(v, h, -1)
			e.placement[v] = -1
			e.records[v].Status = StatusLost
			e.records[v].Reason = "host " + e.ix.Host(h).Name + " went down"
		}
	}
}

// probeHosts asks the driver about the hosts of a move whose start was
// refused because a host is down, so that the next plan avoids it instead
// of retrying the same move.
func (e *Executor) probeHosts(m planner.Move) {
	for _, h := range []int{m.From, m.To} {
		if e.hostDown[h] {
			continue
		}
		if _, err := e.cfg.Driver.ListDomains(context.Background(), e.ix.Host(h).Name); errors.Is(err, hypervisor.ErrHostDown) {
			e.hostDownLocked(h)
		}
	}
}

// SetLinkMbps records a link's new usable bandwidth (0: cut), as monitoring
// measured it, and re-plans.
func (e *Executor) SetLinkMbps(l int, mbps float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.finished || l < 0 || l >= len(e.linkMbps) {
		return
	}
	e.linkMbps[l] = mbps
	e.emit(Event{Kind: EvLink, Detail: fmt.Sprintf("%s now %g Mbit/s", e.ix.Fed.Links[l].Name, mbps)})
	e.replan("link changed")
	e.pump()
}

// Stop aborts running migrations and stops timers; the VMs stay where they are.
func (e *Executor) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queue = nil
	for _, r := range e.sortedRunning() {
		e.abort(r, "executor stopped")
	}
	e.stopTimers()
	e.checkFinished()
}

func (e *Executor) stopTimers() {
	if e.ticker != nil {
		e.ticker.Stop()
		e.ticker = nil
	}
	for _, t := range e.timers {
		t.Stop()
	}
	e.timers = nil
}

func (e *Executor) frozen() []bool {
	f := make([]bool, len(e.placement))
	for v := range f {
		f[v] = e.migrated[v] || e.hopeless[v] || e.attempts[v] >= MaxAttempts || e.records[v].Status == StatusFailed
	}
	for v := range e.running {
		f[v] = true
	}
	return f
}

// replan computes a new plan for everything not yet moved and replaces the
// queue with it.
func (e *Executor) replan(why string) {
	in := planner.Input{
		Index:     e.ix,
		Policy:    e.cfg.Policy,
		Now:       e.now(),
		Deadlines: e.liveDeadlines(),
		Placement: append([]int(nil), e.placement...),
		HostDown:  append([]bool(nil), e.hostDown...),
		LinkMbps:  append([]float64(nil), e.linkMbps...),
		Frozen:    e.frozen(),
	}
	for _, r := range e.sortedRunning() {
		in.Reserved = append(in.Reserved, planner.Reservation{VM: r.vm, Host: r.move.To})
	}
	in.Busy = e.inFlightBusy()
	t0 := time.Now()
	p, err := e.cfg.Plan(in)
	e.planTime += time.Since(t0)
	e.plans++
	if err != nil {
		e.log.Error("planning failed", "why", why, "err", err)
		e.emit(Event{Kind: EvPlan, Detail: "planning failed: " + err.Error()})
		e.queue = nil
		return
	}
	if e.firstPlan == nil {
		e.firstPlan = p
	}
	e.queue = p.Moves
	for _, m := range p.Moves {
		e.records[m.VM].Predicted = m.PredFinish
		if e.records[m.VM].Status == StatusUnsaved || e.records[m.VM].Status == StatusAborted {
			e.records[m.VM].Status = StatusPending
		}
	}
	for _, u := range p.Unsaved {
		rec := &e.records[u.VM]
		if rec.Status == StatusPending || rec.Status == StatusAborted {
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

// inFlightBusy predicts how long running migrations keep each resource on
// their paths busy: the bytes they still have to send over its capacity.
func (e *Executor) inFlightBusy() map[netpath.Resource]time.Duration {
	bytes := map[netpath.Resource]float64{}
	for _, r := range e.sortedRunning() {
		if r.job == nil {
			continue
		}
		info, err := r.job.Info()
		if err != nil {
			continue
		}
		path, ok := netpath.Between(e.ix, r.move.From, r.move.To)
		if !ok {
			continue
		}
		for _, res := range path.Resources {
			bytes[res] += float64(info.DataRemaining)
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

func (e *Executor) sortedRunning() []*running {
	rs := make([]*running, 0, len(e.running))
	for _, r := range e.running {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].vm < rs[j].vm })
	return rs
}

// limits counts running migrations per constrained unit.
type limits struct {
	global  int
	fabric  map[[2]int]int
	hostOut map[int]int
	hostIn  map[int]int
	link    map[netpath.Resource]int
}

func (e *Executor) counts() limits {
	c := limits{fabric: map[[2]int]int{}, hostOut: map[int]int{}, hostIn: map[int]int{}, link: map[netpath.Resource]int{}}
	for _, r := range e.running {
		e.count(&c, r.move.From, r.move.To, r.links, 1)
	}
	return c
}

func (e *Executor) count(c *limits, from, to int, links []netpath.Resource, n int) {
	c.global += n
	c.fabric[e.ix.HostFabricKey(from)] += n
	c.hostOut[from] += n
	c.hostIn[to] += n
	for _, l := range links {
		c.link[l] += n
	}
}

func linkResources(p netpath.Path) []netpath.Resource {
	var out []netpath.Resource
	for _, r := range p.Resources {
		if r.Kind == netpath.Link {
			out = append(out, r)
		}
	}
	return out
}

// windowFor returns the concurrency allowed on a link direction.
func (e *Executor) windowFor(r netpath.Resource) int {
	cc := e.cfg.Policy.Concurrency
	if !cc.Adaptive {
		return cc.PerLinkLimit // 0: unlimited
	}
	lc := e.links[r]
	if lc == nil {
		lc = &linkCtl{window: max(cc.InitialPerLink, 1), slowStart: true}
		e.links[r] = lc
	}
	return lc.window
}

func under(limit, n int) bool { return limit <= 0 || n < limit }

// fits reports whether VM v can be placed on host h now.
func (e *Executor) fits(v, h int) bool {
	vm := &e.ix.Fed.VMs[v]
	host := e.ix.Host(h)
	if e.memUsed[h]+vm.MemoryMiB > host.MemoryMiB {
		return false
	}
	if float64(e.cpuUsed[h]+vm.VCPU) > float64(host.VCPU)*max(e.cfg.Policy.VCPUOvercommit, 1) {
		return false
	}
	if vm.CopiesDisk() && e.diskUsed[h]+vm.DiskGiB > host.DiskGiB {
		return false
	}
	return vm.AntiAffinity == "" || e.affinity[h][vm.AntiAffinity] == 0
}

// pump starts every queued move that the limits allow, in queue order.
func (e *Executor) pump() {
	if e.finished {
		return
	}
	cc := e.cfg.Policy.Concurrency
	c := e.counts()
	kept := e.queue[:0]
	needReplan := ""
	for qi, m := range e.queue {
		if needReplan != "" {
			kept = append(kept, e.queue[qi:]...)
			break
		}
		v := m.VM
		if e.migrated[v] || e.running[v] != nil || e.placement[v] != m.From {
			continue // stale entry
		}
		if e.hostDown[m.From] {
			continue
		}
		if _, threatened := e.deadlines[e.ix.HostSite(m.To)]; threatened || e.hostDown[m.To] {
			needReplan = "destination no longer safe"
			kept = append(kept, m)
			continue
		}
		path, ok := netpath.Between(e.ix, m.From, m.To)
		if !ok {
			needReplan = "route lost"
			kept = append(kept, m)
			continue
		}
		links := linkResources(path)
		allowed := under(cc.Global, c.global) &&
			under(cc.PerFabric, c.fabric[e.ix.HostFabricKey(m.From)]) &&
			under(cc.PerHostOut, c.hostOut[m.From]) &&
			under(cc.PerHostIn, c.hostIn[m.To])
		for _, l := range links {
			allowed = allowed && under(e.windowFor(l), c.link[l])
		}
		if !allowed {
			kept = append(kept, m)
			continue
		}
		if !e.fits(v, m.To) {
			needReplan = "destination " + e.ix.Host(m.To).Name + " lacks capacity"
			kept = append(kept, m)
			continue
		}
		if err := e.startMove(m, links); err != nil {
			e.log.Warn("migration did not start", "vm", m.Name, "err", err)
			if errors.Is(err, hypervisor.ErrHostDown) {
				e.probeHosts(m)
			}
			needReplan = "start failed"
			continue
		}
		e.count(&c, m.From, m.To, links, 1)
	}
	e.queue = kept
	if needReplan != "" {
		e.replan(needReplan)
		e.dropInfeasible()
		e.pump()
		return
	}
	e.checkFinished()
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

// dropInfeasible removes, right after a re-plan, the moves that the
// executor's own checks refuse (a threatened or down destination, one
// without room, a route that does not exist): a plan must never make the
// executor exceed capacity, and dropping them guarantees that re-planning
// cannot loop.
func (e *Executor) dropInfeasible() {
	kept := e.queue[:0]
	for _, m := range e.queue {
		why := ""
		_, threatened := e.deadlines[e.ix.HostSite(m.To)]
		_, routed := netpath.Between(e.ix, m.From, m.To)
		switch {
		case threatened:
			why = "the site is threatened"
		case e.hostDown[m.To]:
			why = "the host is down"
		case !routed:
			why = "no route reaches it"
		case !e.fits(m.VM, m.To):
			why = "it lacks capacity or would break anti-affinity"
		}
		if why == "" {
			kept = append(kept, m)
			continue
		}
		rec := &e.records[m.VM]
		rec.Status = StatusUnsaved
		rec.Reason = fmt.Sprintf("the plan sent it to %s, which the executor refused: %s", e.ix.Host(m.To).Name, why)
		e.log.Error("plan proposed an infeasible move", "vm", m.Name, "to", e.ix.Host(m.To).Name, "why", why)
	}
	e.queue = kept
}

func (e *Executor) startMove(m planner.Move, links []netpath.Resource) error {
	v := m.VM
	vm := &e.ix.Fed.VMs[v]
	pol := e.cfg.Policy.Migration
	req := hypervisor.MigrateRequest{
		Domain:     vm.Name,
		SourceHost: e.ix.Host(m.From).Name,
		DestHost:   e.ix.Host(m.To).Name,
		DestURI:    e.ix.Host(m.To).URI,
		Params: hypervisor.MigrateParams{
			Live:                true,
			PeerToPeer:          true,
			PersistDest:         true,
			UndefineSource:      true,
			BandwidthBytes:      pol.MaxBandwidthMiBps * model.MiB,
			MaxDowntime:         pol.MaxDowntime.D(),
			AutoConverge:        pol.AutoConverge,
			ParallelConnections: pol.ParallelConnections,
		},
	}
	if vm.CopiesDisk() {
		req.Params.CopyStorage = hypervisor.CopyStorageAll
	}
	e.attempts[v]++
	rec := &e.records[v]
	rec.Attempts = e.attempts[v]
	r := &running{vm: v, move: m, started: e.now(), links: links}
	// Reserve the destination before the driver can call back.
	e.commit(v, m.To, 1)
	e.running[v] = r
	job, err := e.cfg.Driver.Migrate(context.Background(), req, observer{e: e, r: r})
	if err != nil {
		e.commit(v, m.To, -1)
		delete(e.running, v)
		rec.Reason = err.Error()
		if e.attempts[v] >= MaxAttempts {
			rec.Status = StatusFailed
		}
		e.emit(Event{Kind: EvRefused, VM: vm.Name, From: req.SourceHost, To: req.DestHost, Detail: err.Error()})
		return fmt.Errorf("migrate %s to %s: %w", vm.Name, req.DestHost, err)
	}
	r.job = job
	rec.Status = StatusRunning
	rec.To = req.DestHost
	rec.Started = r.started
	e.emit(Event{Kind: EvStart, VM: vm.Name, From: req.SourceHost, To: req.DestHost,
		Detail: fmt.Sprintf("attempt %d, predicted finish %s", e.attempts[v], m.PredFinish.Round(time.Second))})
	e.cfg.Metrics.started()
	return nil
}

type observer struct {
	e *Executor
	r *running
}

func (o observer) MigrationDone(res hypervisor.Result) { o.e.migrationDone(o.r, res) }

func (e *Executor) abort(r *running, why string) {
	if r.aborting || r.job == nil {
		return
	}
	r.aborting = true
	r.abortWhy = why
	if err := r.job.Abort(); err != nil {
		e.log.Warn("abort failed", "vm", r.move.Name, "err", err)
	}
	e.emit(Event{Kind: EvAbort, VM: r.move.Name, Detail: why})
}

func (e *Executor) migrationDone(r *running, res hypervisor.Result) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[r.vm] != r {
		return
	}
	delete(e.running, r.vm)
	v := r.vm
	rec := &e.records[v]
	now := e.now()
	rec.Finished = now
	rec.Duration = now - r.started
	rec.Bytes = res.Bytes
	e.cfg.Metrics.bytes(res.Bytes)
	toName := e.ix.Host(r.move.To).Name
	// Where does the VM run now? Trust the driver's report.
	runningOn := -1
	switch res.RunningOn {
	case toName:
		runningOn = r.move.To
	case e.ix.Host(r.move.From).Name:
		runningOn = r.move.From
	}
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
	if res.Err == nil {
		e.migrated[v] = true
		rec.Status = StatusMigrated
		rec.Downtime = res.Downtime
		rec.Reason = ""
		e.emit(Event{Kind: EvDone, VM: rec.Name, From: e.ix.Host(r.move.From).Name, To: toName,
			Detail: fmt.Sprintf("%s, downtime %s, %d rounds", rec.Duration.Round(100*time.Millisecond), res.Downtime.Round(time.Millisecond), res.Rounds)})
		e.cfg.Metrics.done("migrated", rec.Duration, res.Downtime)
		e.pump()
		return
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
	e.pump()
}

func (e *Executor) checkFinished() {
	if e.finished || !e.started || len(e.running) > 0 || len(e.queue) > 0 {
		return
	}
	// Idle with time left: the plan's predictions were pessimistic (earlier
	// migrations went faster than predicted), so VMs it left behind may
	// still make it. Re-plan once more; finish only when that adds nothing.
	if e.savableLeft() {
		e.replan("idle before the deadlines")
		e.dropInfeasible()
		if len(e.queue) > 0 {
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

// DefaultInterval is the controller period when the policy sets none.
const DefaultInterval = 5 * time.Second

func (e *Executor) armTicker() {
	d := e.cfg.Policy.Concurrency.Interval.D()
	if d <= 0 {
		d = DefaultInterval
	}
	e.ticker = e.cfg.Clock.AfterFunc(d, e.tick)
}

// tick runs the periodic controllers: the per-link feedback controller
// (adaptive policies) and the deadline check of running migrations
// (deadline-aware policies).
func (e *Executor) tick() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.finished {
		return
	}
	if e.cfg.Policy.Concurrency.Adaptive {
		e.adaptWindows()
	}
	if e.cfg.Policy.DeadlineAware {
		e.abortHopeless()
	}
	e.armTicker()
	e.pump()
}

// adaptWindows is the feedback controller (seed 003): per link direction, compare
// the throughput migrations get with what one migration gets alone.
//   - slow start: while every migration runs at the reference rate, double
//     the window;
//   - additive increase: while the link is not saturated (migrations are
//     not slowing each other), add one;
//   - multiplicative decrease: when migrations get less than half the
//     reference rate (too many for the link, or the link degraded),
//     multiply the window by Policy.Concurrency.DecreaseFactor;
//   - otherwise hold: the link is saturated by about as few migrations as
//     can saturate it, which keeps individual migrations short.
func (e *Executor) adaptWindows() {
	cc := e.cfg.Policy.Concurrency
	type agg struct {
		sum  float64
		n    int
		best float64
	}
	per := map[netpath.Resource]*agg{}
	for _, r := range e.sortedRunning() {
		info, err := r.job.Info()
		if err != nil || info.Phase == hypervisor.PhaseSetup || info.Type != hypervisor.JobUnbounded {
			continue
		}
		rate := info.BytesPerSec()
		for _, l := range r.links {
			a := per[l]
			if a == nil {
				a = &agg{}
				per[l] = a
			}
			a.sum += rate
			a.n++
			a.best = math.Max(a.best, rate)
		}
	}
	keys := make([]netpath.Resource, 0, len(per))
	for l := range per {
		keys = append(keys, l)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ID != keys[j].ID {
			return keys[i].ID < keys[j].ID
		}
		return keys[i].Dir < keys[j].Dir
	})
	for _, l := range keys {
		a := per[l]
		lc := e.links[l]
		if lc == nil {
			continue
		}
		lc.ref = math.Max(lc.ref, a.best)
		mean := a.sum / float64(a.n)
		old := lc.window
		gain := max(cc.GainThreshold, 0.01)
		limit := cc.PerLinkLimit
		switch {
		case mean >= (1-gain)*lc.ref:
			if a.n >= lc.window { // only grow a window that is in use
				if lc.slowStart {
					lc.window *= 2
				} else {
					lc.window++
				}
			}
		case mean < 0.5*lc.ref:
			lc.slowStart = false
			lc.window = max(1, int(math.Floor(float64(lc.window)*cc.DecreaseFactor)))
			// the link changed: what one migration gets alone must be re-learned
			lc.ref = a.best
		default:
			lc.slowStart = false
		}
		if limit > 0 {
			lc.window = min(lc.window, limit)
		}
		if lc.window != old {
			e.emit(Event{Kind: EvWindow, Detail: fmt.Sprintf("%s: %d → %d (%d migrating at %.0f MiB/s total)",
				netpath.Name(e.ix, l), old, lc.window, a.n, a.sum/model.MiB)})
			e.cfg.Metrics.window(netpath.Name(e.ix, l), lc.window)
		}
	}
}

// abortHopeless aborts running migrations that cannot finish before their
// site's deadline even if they had their path to themselves from now on and
// sent nothing more than what is left now: the site will be lost with them,
// and their bandwidth can still save others.
func (e *Executor) abortHopeless() {
	now := e.now()
	for _, r := range e.sortedRunning() {
		d, threatened := e.deadlines[e.ix.HostSite(r.move.From)]
		if !threatened || r.aborting || r.job == nil {
			continue
		}
		info, err := r.job.Info()
		if err != nil || info.Phase == hypervisor.PhaseSetup || info.Phase == hypervisor.PhaseSwitchover {
			continue
		}
		rate := e.bestRate(r)
		if rate <= 0 {
			continue
		}
		left := time.Duration(float64(info.DataRemaining) / rate * float64(time.Second))
		if now+left > d {
			e.hopeless[r.vm] = true
			e.abort(r, fmt.Sprintf("cannot finish before the deadline %s: %s left even at the path's full %.0f MiB/s",
				d.Round(time.Second), bytesString(info.DataRemaining), rate/model.MiB))
		}
	}
}

// bestRate is the fastest a running migration could go if it had its path
// to itself: the narrowest resource's capacity, within the migration's own
// cap (bandwidth limit and TCP window over the path's RTT).
func (e *Executor) bestRate(r *running) float64 {
	path, ok := netpath.Between(e.ix, r.move.From, r.move.To)
	if !ok {
		return 0
	}
	pol := e.cfg.Policy.Migration
	rate := netpath.FlowCap(pol.MaxBandwidthMiBps*model.MiB, path.RTT, pol.ParallelConnections)
	for _, res := range path.Resources {
		rate = math.Min(rate, netpath.Capacity(e.ix, res, e.linkMbps))
	}
	return rate
}

func bytesString(b uint64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// Report is the executor's account of the evacuation.
type Report struct {
	VMs       []VMRecord    `json:"vms"`
	Timeline  []Event       `json:"timeline"`
	FirstPlan *planner.Plan `json:"-"`
	Plans     int           `json:"plans"`
	PlanTime  time.Duration `json:"plan_time"`
	Placement []int         `json:"-"`
}

// Report returns a copy of the current state.
func (e *Executor) Report() Report {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Report{
		VMs:       append([]VMRecord(nil), e.records...),
		Timeline:  append([]Event(nil), e.timeline...),
		FirstPlan: e.firstPlan,
		Plans:     e.plans,
		PlanTime:  e.planTime,
		Placement: append([]int(nil), e.placement...),
	}
}
