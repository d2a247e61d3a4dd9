// Package executor runs evacuation plans through a hypervisor.Driver.
//
// It starts the planned migrations in plan order when every resource they
// cross admits them: bandwidth on the source NIC, each WAN link direction
// and the destination NIC (bytes/s, from one resource model shared with the
// planner), and the policy's count limits. With an adaptive policy a
// feedback controller (seed 003) adjusts the bandwidth each link admits to
// what it is seen to deliver. Migrations that pre-copy cannot finish before
// their site's deadline are switched to post-copy or paused and copied when
// the policy allows it and the prediction says that saves them. It re-plans
// when a migration fails, a deadline moves, a host dies or a link changes;
// it never migrates a VM twice, never sends one to a threatened site and
// never exceeds a destination's capacity.
//
// The executor has no goroutines of its own: it reacts to driver callbacks
// and to timers of an injected clock. Its state is guarded by one mutex,
// but driver calls (start, abort, pause, job statistics, inventory) are
// made outside it with bounded contexts, so a slow hypervisor cannot freeze
// timers and deadlines. The same code runs against the wall clock and
// inside the simulator's event loop.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/planner"
)

// MaxAttempts bounds how often one VM's migration is tried. Only real
// failures count: aborts the executor decides itself (a destination became
// threatened, a re-plan, a stop) do not.
const MaxAttempts = 3

// DefaultCallTimeout bounds each driver call when Config.CallTimeout is 0.
const DefaultCallTimeout = 30 * time.Second

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
	// Watch marks sites already at threat level watch at start (nil:
	// none); SetWatch changes them later.
	Watch  []bool
	Logger *slog.Logger
	// Metrics, if not nil, receives Prometheus metrics.
	Metrics *Metrics
	// OnEvent, if not nil, receives every timeline event (under the
	// executor's lock: it must not call back into the executor).
	OnEvent func(Event)
	// Plan computes plans from snapshots; nil means planner.Compute (the
	// evacuation planner). Other planners (e.g. consolidation) plug in
	// here and get the same limits, controller and re-planning.
	Plan func(planner.Input) (*planner.Plan, error)
	// CallTimeout bounds every driver call (0: DefaultCallTimeout).
	CallTimeout time.Duration
	// Journal, if not nil, records every driver step before it is taken
	// and its result after (see Journal).
	Journal Journal
	// Switcher, if not nil, is told, for each service of a VM, when the VM
	// has switched over to its destination, so that the service's name
	// follows it (package continuity's Coordinator): when the driver
	// reports the domain running at the destination while the source copy
	// still exists (hypervisor.SwitchoverObserver), else when the
	// migration succeeds; back to the source if it fails after the
	// switch-over. Its failures are reported in the timeline, never fatal
	// to the evacuation.
	Switcher Switcher
	// Resume, if not nil, carries over an earlier executor's attempts and
	// migrated VMs (see Resume).
	Resume *Resume
	// Ledger, if not nil, is the admission shared with the executors that
	// run beside this one on the same federation, index and clock (see
	// Ledger); nil: the executor's own.
	Ledger *Ledger
}

// Switcher keeps a service reachable when one of its VMs moves; package
// continuity's Coordinator implements it.
type Switcher interface {
	Switchover(ctx context.Context, vm, service, fromSite, toSite string) error
}

// Step is one driver step of the executor, as a Journal sees it.
type Step struct {
	// Kind is StepStart, StepAbort, StepPause, StepPostCopy, StepProbe or
	// StepEnd (a migration ended; recorded with Result only).
	Kind    string   `json:"kind"`
	VM      string   `json:"vm,omitempty"`
	From    string   `json:"from,omitempty"`
	To      string   `json:"to,omitempty"`
	Attempt int      `json:"attempt,omitempty"`
	Mode    string   `json:"mode,omitempty"`
	Route   []string `json:"route,omitempty"`
	// Host is the host a probe asks about.
	Host string `json:"host,omitempty"`
}

// Step kinds.
const (
	StepStart    = "start"
	StepAbort    = "abort"
	StepPause    = "pause"
	StepPostCopy = "post-copy"
	StepProbe    = "probe"
	StepEnd      = "end"
)

// Journal makes the executor's steps durable, so that another controller
// can resume an evacuation exactly where this one stopped. Both methods
// are called outside the executor's lock, in the order the steps happen.
type Journal interface {
	// Intent is called before a step is taken. An error — typically that
	// this controller is no longer the leader — cancels the step and
	// fences the executor: it takes no further step of any kind, and Done
	// is closed.
	Intent(Step) error
	// Result records how a step ended (err nil: it succeeded).
	Result(Step, error)
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
	EvMode     = "mode" // a running migration switched to post-copy or was paused
	EvWatch    = "watch"
	// EvContinuity: the Switcher was told a VM's service moved (or failed).
	EvContinuity = "continuity"
)

// running is one migration in flight.
type running struct {
	vm      int
	move    planner.Move
	path    netpath.Path
	transit []int // the sites path crosses
	units   []*unit
	demand  float64
	job     hypervisor.Job // nil until the driver call that starts it returns
	started time.Duration
	// released: its bandwidth units were given back before it ended (its
	// data is predicted to end within the next migration's set-up).
	released bool
	release  clock.Timer
	aborting bool
	abortWhy string
	// ours: the abort was the executor's own decision (not a failure).
	ours bool
	// mode: planner.ModeLive or ModePause at start; "post-copy" or
	// "paused" once switched.
	mode string
	// last job statistics from the controller (observe).
	info hypervisor.JobInfo
	// fl is its entry in the ledger (guarded by the ledger's mutex).
	fl *flight
	// switched: the driver reported the switch-over (SwitchedOver) and the
	// Switcher has been called for it.
	switched bool
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
	watch     []bool
	placement []int
	hostDown  []bool
	linkMbps  []float64
	running   map[int]*running
	records   []VMRecord
	migrated  []bool
	attempts  []int
	// hopeless marks VMs whose migration was aborted because it could not
	// finish before its site's deadline; they are not tried again.
	hopeless []bool
	// Admission: the ledger and this executor's membership, the units it
	// uses by key, the moves ready to try and those parked on each unit,
	// and how many moves are queued (ready or parked).
	led     *Ledger
	me      *member
	units   map[unitKey]*unit
	ready   moveHeap
	parked  map[*unit]*moveHeap
	queuedN int
	seq     int
	// pending driver calls, made by unlock outside the mutex.
	pending []action
	// admitted, if set (tests), sees every unit a move takes, before
	// (the ledger's mutex held).
	admitted func(u *unit, demand float64)
	// fenced: the journal refused a step; nothing more is done.
	fenced bool
	// the last idle re-plan (at most one per moment)
	idleReplanned bool
	idleReplanAt  time.Duration

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
	// resume: migrations of an earlier executor still in flight.
	resume resumeState
	// stopped: Stop was called; nothing is planned or started any more.
	stopped bool
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
	case cfg.CallTimeout < 0:
		return nil, fmt.Errorf("executor: Config.CallTimeout is %v, want >= 0 (0: %v)", cfg.CallTimeout, DefaultCallTimeout)
	}
	ix := cfg.Index
	nv, nh := len(ix.Fed.VMs), len(ix.Hosts)
	if cfg.Placement != nil && len(cfg.Placement) != nv {
		return nil, fmt.Errorf("executor: placement has %d entries for %d VMs", len(cfg.Placement), nv)
	}
	if cfg.HostDown != nil && len(cfg.HostDown) != nh {
		return nil, fmt.Errorf("executor: host-down list has %d entries for %d hosts", len(cfg.HostDown), nh)
	}
	if cfg.Watch != nil && len(cfg.Watch) != len(ix.Fed.Sites) {
		return nil, fmt.Errorf("executor: watch list has %d entries for %d sites", len(cfg.Watch), len(ix.Fed.Sites))
	}
	if cfg.Policy.Concurrency.Adaptive && cfg.Policy.Concurrency.Interval <= 0 {
		return nil, errors.New("executor: an adaptive policy needs concurrency.interval > 0")
	}
	if cfg.Plan == nil {
		cfg.Plan = planner.Compute
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
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
		watch:     make([]bool, len(ix.Fed.Sites)),
		placement: make([]int, nv),
		hostDown:  make([]bool, nh),
		linkMbps:  make([]float64, len(ix.Fed.Links)),
		running:   map[int]*running{},
		records:   make([]VMRecord, nv),
		migrated:  make([]bool, nv),
		hopeless:  make([]bool, nv),
		attempts:  make([]int, nv),
		led:       cfg.Ledger,
		units:     map[unitKey]*unit{},
		parked:    map[*unit]*moveHeap{},
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
	copy(e.watch, cfg.Watch)
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
	if err := e.checkResume(cfg.Resume); err != nil {
		return nil, err
	}
	if e.led == nil {
		e.led = NewLedger()
	}
	e.me = e.led.join(func() { e.cfg.Clock.AfterFunc(0, e.poked) })
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

func (e *Executor) fed() *model.Federation { return e.ix.Fed }

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
	defer e.unlock()
	if e.started {
		return errors.New("executor: already started")
	}
	for s := range deadlines {
		if s < 0 || s >= len(e.ix.Fed.Sites) {
			return fmt.Errorf("executor: deadline for unknown site index %d", s)
		}
	}
	e.started = true
	for s, w := range e.watch {
		if w {
			e.emit(Event{Kind: EvWatch, Detail: e.ix.Fed.Sites[s].Name + " at watch level"})
		}
	}
	for _, s := range sortedKeys(deadlines) {
		e.setDeadlineLocked(s, deadlines[s])
	}
	e.applyResume(e.cfg.Resume) // after the deadlines: a resumed evacuation is not a new one
	e.replan("initial plan")
	e.armTicker()
	e.pump()
	return nil
}

func sortedKeys(m map[int]time.Duration) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	return ks
}

// Done is closed when nothing is left to do. A later change of targets
// (SetDeadline, SetWatch) re-opens the executor, and Done then returns a
// new channel.
func (e *Executor) Done() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.done
}

// reopen makes a finished executor accept work again: a new warning for
// another site arrived after everything earlier was settled.
func (e *Executor) reopen() {
	if !e.finished {
		return
	}
	e.finished = false
	e.done = make(chan struct{})
	for v := range e.records {
		if e.records[v].Status == StatusStranded {
			e.records[v].Status = StatusPending
		}
	}
	e.armTicker()
}

// SetDeadline moves (or sets) a site's deadline: an updated warning or a new
// one, also after the executor finished (it then resumes). In-flight
// migrations towards a newly threatened site are aborted and re-planned.
func (e *Executor) SetDeadline(site int, d time.Duration) {
	e.mu.Lock()
	defer e.unlock()
	if !e.started || site < 0 || site >= len(e.ix.Fed.Sites) {
		return
	}
	e.reopen()
	e.setDeadlineLocked(site, d)
	e.emit(Event{Kind: EvDeadline, Detail: fmt.Sprintf("%s deadline now %s", e.ix.Fed.Sites[site].Name, d.Round(time.Second))})
	for _, r := range e.sortedRunning() {
		if e.ix.HostSite(r.move.To) == site {
			e.abort(r, "destination site "+e.ix.Fed.Sites[site].Name+" is now threatened", true)
		}
	}
	e.replan("deadline changed")
	e.pump()
}

func (e *Executor) setDeadlineLocked(site int, d time.Duration) {
	_, already := e.deadlines[site]
	e.deadlines[site] = d
	for v := range e.records {
		h := e.placement[v]
		if h < 0 || e.ix.HostSite(h) != site || e.running[v] != nil {
			continue
		}
		rec := &e.records[v]
		if !already && e.migrated[v] {
			// It was moved here by an earlier warning; this one is a new
			// evacuation for it (never twice within one).
			e.migrated[v], e.hopeless[v], e.attempts[v] = false, false, 0
			*rec = VMRecord{Name: rec.Name, Status: StatusPending, From: e.ix.Host(h).Name}
		}
		if rec.Status == StatusSafe {
			rec.Status = StatusPending
		}
		rec.Deadline = d
	}
	at := d - e.now()
	e.timers = append(e.timers, e.cfg.Clock.AfterFunc(max(at, 0), func() { e.deadlinePassed(site, d) }))
}

// SetWatch marks a site as being at threat level watch (or no longer): the
// policy's watch_sites decides whether it still receives VMs.
func (e *Executor) SetWatch(site int, on bool) {
	e.mu.Lock()
	defer e.unlock()
	if !e.started || site < 0 || site >= len(e.watch) || e.watch[site] == on {
		return
	}
	e.watch[site] = on
	state := "no longer at watch level"
	if on {
		state = "at watch level"
	}
	e.emit(Event{Kind: EvWatch, Detail: e.ix.Fed.Sites[site].Name + " " + state})
	if e.finished {
		return // nothing is moving; the next warning re-plans with it
	}
	e.replan("watch level changed")
	e.pump()
}

// CancelThreat withdraws a site's threat (a cancelled warning): no new
// migration leaves it; running ones finish, or are aborted when
// abortRunning is set. Its VMs count as safe again.
func (e *Executor) CancelThreat(site int, abortRunning bool) {
	e.mu.Lock()
	defer e.unlock()
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
				e.abort(r, "the threat to "+e.ix.Fed.Sites[site].Name+" was withdrawn", true)
			}
		}
	}
	e.replan("threat withdrawn")
	e.pump()
}

// deadlinePassed marks VMs still on the site as missed.
func (e *Executor) deadlinePassed(site int, d time.Duration) {
	e.mu.Lock()
	defer e.unlock()
	if dd, ok := e.deadlines[site]; !ok || dd != d {
		return // the deadline moved or was withdrawn since
	}
	missed := 0
	for v := range e.records {
		h := e.placement[v]
		if h < 0 || e.ix.HostSite(h) != site || e.migrated[v] {
			continue
		}
		missed++
		switch e.records[v].Status {
		case StatusPending, StatusStranded, StatusAborted, StatusUnsaved:
			e.records[v].Status = StatusMissed
		}
	}
	e.emit(Event{Kind: EvDeadline, Detail: fmt.Sprintf("%s deadline reached; %d VMs not out", e.ix.Fed.Sites[site].Name, missed)})
	// queued moves from this site can no longer happen: they are dropped
	// when they come up (pump checks the deadline).
	e.checkFinished()
}

// HostDown records that host h stopped (monitoring noticed it). VMs on it are
// lost; migrations to it fail through the driver and are re-planned.
func (e *Executor) HostDown(h int) {
	e.mu.Lock()
	defer e.unlock()
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

// SetLinkMbps records a link's new usable bandwidth (0: cut), as monitoring
// measured it, and re-plans. Admission on the link starts again from the
// new capacity.
func (e *Executor) SetLinkMbps(l int, mbps float64) {
	e.mu.Lock()
	defer e.unlock()
	if e.finished || l < 0 || l >= len(e.linkMbps) {
		return
	}
	e.linkMbps[l] = mbps
	e.led.mu.Lock()
	for dir := range 2 {
		if u := e.led.units[unitKey{uLink, l, dir}]; u != nil {
			old := u.est
			u.capModel = netpath.Capacity(e.ix, u.res, e.linkMbps)
			u.est = u.capModel
			if u.est > old {
				e.led.freed(u, e.me)
			}
		}
	}
	e.led.mu.Unlock()
	e.emit(Event{Kind: EvLink, Detail: fmt.Sprintf("%s now %g Mbit/s", e.ix.Fed.Links[l].Name, mbps)})
	e.replan("link changed")
	e.pump()
}

// Stop aborts running migrations and stops timers; the VMs stay where they are.
func (e *Executor) Stop() {
	e.mu.Lock()
	defer e.unlock()
	e.stopped = true
	e.clearQueue()
	for _, r := range e.sortedRunning() {
		e.abort(r, "executor stopped", true)
	}
	e.stopTimers()
	e.checkFinished()
}

// Close stops the executor (as Stop) and ends its share of the ledger:
// call it once nothing more will be asked of it, so that a ledger shared
// for a long time does not keep what only ended executors needed.
func (e *Executor) Close() {
	e.Stop()
	e.led.leave(e.me)
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

func (e *Executor) sortedRunning() []*running {
	rs := make([]*running, 0, len(e.running))
	for _, r := range e.running {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].vm < rs[j].vm })
	return rs
}

// fits reports whether VM v can be placed on host h now.
func (e *Executor) fits(v, h int) bool {
	e.led.mu.Lock()
	defer e.led.mu.Unlock()
	return e.fitsLocked(v, h)
}

// fitsLocked is fits with the ledger's mutex held: besides what this
// executor has placed and in flight, the other executors' migrations in
// flight to h take their room.
func (e *Executor) fitsLocked(v, h int) bool {
	e.syncLocked()
	vm := &e.ix.Fed.VMs[v]
	host := e.ix.Host(h)
	mem, cpu, disk := e.memUsed[h], e.cpuUsed[h], e.diskUsed[h]
	group := 0
	if vm.AntiAffinity != "" {
		group = e.affinity[h][vm.AntiAffinity]
	}
	for _, f := range e.led.inbound[h] {
		if f.owner == e.me || e.placement[f.vm] == h {
			continue // its own are committed; a landed one is placed
		}
		o := &e.ix.Fed.VMs[f.vm]
		mem, cpu = mem+o.MemoryMiB, cpu+o.VCPU
		if o.CopiesDisk() {
			disk += o.DiskGiB
		}
		if vm.AntiAffinity != "" && o.AntiAffinity == vm.AntiAffinity {
			group++
		}
	}
	if mem+vm.MemoryMiB > host.MemoryMiB {
		return false
	}
	if float64(cpu+vm.VCPU) > float64(host.VCPU)*max(e.cfg.Policy.VCPUOvercommit, 1) {
		return false
	}
	if vm.CopiesDisk() && disk+vm.DiskGiB > host.DiskGiB {
		return false
	}
	return group == 0
}

// syncLocked applies to e's view of placement where the other executors'
// migrations ended since it last looked (the ledger's mutex held).
func (e *Executor) syncLocked() {
	if e.me.cursor == e.led.logEnd() {
		return
	}
	defer e.led.trim()
	for ; e.me.cursor < e.led.logEnd(); e.me.cursor++ {
		ld := e.led.landing(e.me.cursor)
		v := ld.vm
		if ld.owner == e.me || e.placement[v] == ld.to {
			continue
		}
		if old := e.placement[v]; old >= 0 {
			e.commit(v, old, -1)
		}
		if ld.to >= 0 {
			e.commit(v, ld.to, 1)
			e.records[v].From = e.ix.Host(ld.to).Name
		}
		e.placement[v] = ld.to
	}
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
	e.led.mu.Lock()
	e.syncLocked()
	e.led.mu.Unlock()
	return Report{
		VMs:       append([]VMRecord(nil), e.records...),
		Timeline:  append([]Event(nil), e.timeline...),
		FirstPlan: e.firstPlan,
		Plans:     e.plans,
		PlanTime:  e.planTime,
		Placement: append([]int(nil), e.placement...),
	}
}
