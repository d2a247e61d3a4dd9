// Package consolidation runs refuge's consolidation loop: periodically and
// on demand it finds hosts whose VMs can all move elsewhere
// (placement.PlanConsolidation), migrates them through the executor — the
// same concurrency limits as evacuations — and powers the emptied hosts off
// through a power.Controller. It never consolidates onto a threatened site
// or beyond the configured headroom, and wakes powered-off hosts when
// capacity is needed. It lives apart from package placement because it
// drives the executor, which plans with the planner, which chooses
// destinations with placement.
package consolidation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/placement"
	"github.com/refuge-project/refuge/internal/planner"
	"github.com/refuge-project/refuge/internal/power"
)

// ErrRoundRunning: a consolidation round is already under way.
var ErrRoundRunning = errors.New("a consolidation round is already running")

// Config sets up a consolidation Loop.
type Config struct {
	Index  *model.Index
	Driver hypervisor.Driver
	Clock  clock.Clock
	Power  power.Controller
	// Meter, if not nil, is kept up to date with every host's utilisation.
	Meter *power.Meter
	// Policy supplies the executor's concurrency limits and migration
	// parameters: consolidation migrates under the same limits as
	// evacuations.
	Policy model.Policy
	// Interval between rounds; 0 means rounds run only on Trigger.
	Interval time.Duration
	// Headroom: destinations keep their expected load at or below
	// (1 − Headroom) × cores; when the powered-on hosts' load passes that
	// share of their cores overall, powered-off hosts are woken.
	Headroom float64
	// SpareHosts: empty powered-on hosts kept on per site.
	SpareHosts int
	// MaxMoves caps the migrations of one round (0: no cap).
	MaxMoves int
	// Load returns VM v's expected CPU load in cores (nil: all its vCPUs).
	Load func(v int) float64
	// Threatened returns the sites under threat now (nil: none). Their
	// hosts are neither consolidated nor consolidated onto.
	Threatened func() map[int]time.Duration
	// Placement and Off are the starting state (nil: the federation's
	// placement, every host on).
	Placement []int
	Off       []bool
	Logger    *slog.Logger
	Metrics   *Metrics
	// OnRound, if not nil, receives each round's report.
	OnRound func(RoundReport)
}

// RoundReport is the outcome of one consolidation round.
type RoundReport struct {
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Planned    int       `json:"planned_moves"`
	Migrated   int       `json:"migrated"`
	Failed     int       `json:"failed"`
	PoweredOff []string  `json:"powered_off"`
	Woken      []string  `json:"woken"`
	Skipped    string    `json:"skipped,omitempty"`
	Errors     []string  `json:"errors,omitempty"`
}

// Loop consolidates periodically and on demand: it plans which hosts to
// empty (placement.PlanConsolidation), migrates their VMs through the executor, and
// powers the emptied hosts off; it wakes powered-off hosts when the
// powered-on ones run short of headroom, or when a request needs room
// (Wake). It is safe for concurrent use.
type Loop struct {
	cfg Config
	ix  *model.Index
	log *slog.Logger

	mu        sync.Mutex
	placement []int
	off       []bool
	load      []float64
	running   bool
	stopped   bool
	timer     clock.Timer
	rounds    []RoundReport
	// onExecutorEvent, if set (tests), sees the executor's events.
	onExecutorEvent func(executor.Event)
}

// NewLoop checks cfg.
func NewLoop(cfg Config) (*Loop, error) {
	switch {
	case cfg.Index == nil || cfg.Driver == nil || cfg.Clock == nil || cfg.Power == nil:
		return nil, errors.New("consolidation: the loop needs an index, a driver, a clock and a power controller")
	case cfg.Interval < 0:
		return nil, fmt.Errorf("consolidation: consolidation interval %v, want >= 0", cfg.Interval)
	case !(cfg.Headroom >= 0 && cfg.Headroom < 1):
		return nil, fmt.Errorf("consolidation: headroom %g, want a share in [0, 1)", cfg.Headroom)
	case cfg.SpareHosts < 0 || cfg.MaxMoves < 0:
		return nil, fmt.Errorf("consolidation: spare hosts (%d) and max moves (%d) must be >= 0", cfg.SpareHosts, cfg.MaxMoves)
	}
	ix := cfg.Index
	l := &Loop{cfg: cfg, ix: ix, placement: append([]int(nil), ix.VMHost...), off: make([]bool, len(ix.Hosts)), load: make([]float64, len(ix.Fed.VMs))}
	if cfg.Placement != nil {
		if len(cfg.Placement) != len(ix.Fed.VMs) {
			return nil, fmt.Errorf("consolidation: %d placements for %d VMs", len(cfg.Placement), len(ix.Fed.VMs))
		}
		copy(l.placement, cfg.Placement)
	}
	if cfg.Off != nil {
		if len(cfg.Off) != len(ix.Hosts) {
			return nil, fmt.Errorf("consolidation: %d off flags for %d hosts", len(cfg.Off), len(ix.Hosts))
		}
		copy(l.off, cfg.Off)
	}
	for v := range ix.Fed.VMs {
		l.load[v] = float64(ix.Fed.VMs[v].VCPU)
		if cfg.Load != nil {
			x := cfg.Load(v)
			if !(x >= 0) || math.IsInf(x, 0) || x > float64(ix.Fed.VMs[v].VCPU) {
				return nil, fmt.Errorf("consolidation: VM %s load %g cores, want within [0, %d]", ix.Fed.VMs[v].Name, x, ix.Fed.VMs[v].VCPU)
			}
			l.load[v] = x
		}
	}
	l.log = cfg.Logger
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.updateMeter()
	return l, nil
}

// Start arms the periodic rounds (if Interval > 0).
func (l *Loop) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Interval > 0 && l.timer == nil && !l.stopped {
		l.timer = l.cfg.Clock.AfterFunc(l.cfg.Interval, l.periodic)
	}
}

// Stop cancels future rounds; a running round finishes.
func (l *Loop) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	if l.timer != nil {
		l.timer.Stop()
	}
}

func (l *Loop) periodic() {
	_ = l.Trigger()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.timer = l.cfg.Clock.AfterFunc(l.cfg.Interval, l.periodic)
	}
}

// Placement returns where each VM runs, as far as the loop knows.
func (l *Loop) Placement() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.placement...)
}

// Off returns which hosts the loop has powered off.
func (l *Loop) Off() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool(nil), l.off...)
}

// Rounds returns the reports of the rounds so far.
func (l *Loop) Rounds() []RoundReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]RoundReport(nil), l.rounds...)
}

func (l *Loop) threatened() map[int]time.Duration {
	if l.cfg.Threatened == nil {
		return nil
	}
	return l.cfg.Threatened()
}

// stateLocked builds the State the round plans on.
func (l *Loop) stateLocked() (*placement.State, error) {
	thr := map[int]bool{}
	for s := range l.threatened() {
		thr[s] = true
	}
	return placement.FromIndex(l.ix, placement.Config{VCPUOvercommit: max(l.cfg.Policy.VCPUOvercommit, 1), Headroom: l.cfg.Headroom},
		l.placement, l.load, thr, nil, l.off)
}

// Trigger runs a round now: wake hosts if headroom is short, else plan,
// migrate and power off. It returns once the round is under way; the
// migrations finish on the clock (OnRound reports the outcome).
func (l *Loop) Trigger() error {
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return ErrRoundRunning
	}
	rep := RoundReport{Started: l.cfg.Clock.Now()}
	s, err := l.stateLocked()
	if err != nil {
		l.mu.Unlock()
		return err
	}
	if woken := l.wakeForHeadroomLocked(s); len(woken) > 0 {
		rep.Woken = woken
		rep.Skipped = "capacity short: woke hosts instead of consolidating"
		l.finishLocked(rep)
		l.mu.Unlock()
		return nil
	}
	plan := placement.PlanConsolidation(s, placement.ConsolidationOptions{SpareHosts: l.cfg.SpareHosts, MaxMoves: l.cfg.MaxMoves, SameSite: true})
	for _, h := range plan.Idle {
		l.powerOffLocked(h, &rep)
	}
	if len(plan.Moves) == 0 {
		rep.Skipped = "nothing to consolidate"
		l.finishLocked(rep)
		l.mu.Unlock()
		return nil
	}
	rep.Planned = len(plan.Moves)
	l.running = true
	l.mu.Unlock()
	if err := l.execute(plan, rep); err != nil {
		l.mu.Lock()
		l.running = false
		rep.Errors = append(rep.Errors, err.Error())
		l.finishLocked(rep)
		l.mu.Unlock()
		return err
	}
	return nil
}

// Absorb carries out a power-of-two decision's nil-host consolidation:
// it migrates d.Migrate (federation VM indices) from d.NilHost to d.Host
// through the executor and powers d.NilHost off once it is empty. Like
// Trigger, it returns once the round is under way.
func (l *Loop) Absorb(d placement.Decision) error {
	if d.NilHost < 0 || len(d.Migrate) == 0 {
		return nil
	}
	l.mu.Lock()
	if l.running {
		l.mu.Unlock()
		return ErrRoundRunning
	}
	n, nv := len(l.ix.Hosts), len(l.ix.Fed.VMs)
	if d.Host < 0 || d.Host >= n || d.NilHost >= n || d.Host == d.NilHost {
		l.mu.Unlock()
		return fmt.Errorf("consolidation: decision names hosts %d and %d of %d", d.Host, d.NilHost, n)
	}
	plan := placement.ConsolidationPlan{Empty: []int{d.NilHost}}
	for _, v := range d.Migrate {
		if v < 0 || v >= nv || l.placement[v] != d.NilHost {
			l.mu.Unlock()
			return fmt.Errorf("consolidation: VM %d is not a federation VM on host %s", v, l.ix.Host(d.NilHost).Name)
		}
		plan.Moves = append(plan.Moves, placement.ConsolidationMove{VM: v, From: d.NilHost, To: d.Host})
	}
	l.running = true
	rep := RoundReport{Started: l.cfg.Clock.Now(), Planned: len(plan.Moves)}
	l.mu.Unlock()
	if err := l.execute(plan, rep); err != nil {
		l.mu.Lock()
		l.running = false
		rep.Errors = append(rep.Errors, err.Error())
		l.finishLocked(rep)
		l.mu.Unlock()
		return err
	}
	return nil
}

// execute runs the plan's moves through an executor.
func (l *Loop) execute(plan placement.ConsolidationPlan, rep RoundReport) error {
	moves := make([]planner.Move, len(plan.Moves))
	for i, m := range plan.Moves {
		moves[i] = l.move(m)
	}
	l.mu.Lock()
	start := append([]int(nil), l.placement...)
	down := append([]bool(nil), l.off...) // powered-off hosts take nothing
	l.mu.Unlock()
	var ex *executor.Executor
	ex, err := executor.New(executor.Config{
		Index: l.ix, Policy: l.cfg.Policy, Driver: l.cfg.Driver, Clock: l.cfg.Clock, Start: l.cfg.Clock.Now(),
		Placement: start, HostDown: down, Logger: l.log,
		Plan: consolidationPlanner(moves),
		OnEvent: func(e executor.Event) {
			if l.onExecutorEvent != nil {
				l.onExecutorEvent(e)
			}
			if e.Kind == executor.EvFinished {
				// Outside the executor's lock.
				l.cfg.Clock.AfterFunc(0, func() { l.roundDone(ex, plan, rep) })
			}
		},
	})
	if err != nil {
		return fmt.Errorf("consolidation: %w", err)
	}
	deadlines := map[int]time.Duration{}
	for s := range l.threatened() {
		deadlines[s] = 24 * time.Hour // only marks the site as no destination
	}
	return ex.Start(deadlines)
}

func (l *Loop) move(m placement.ConsolidationMove) planner.Move {
	ix := l.ix
	vm := &ix.Fed.VMs[m.VM]
	return planner.Move{VM: m.VM, Name: vm.Name, From: m.From, To: m.To,
		FromHost: ix.Host(m.From).Name, ToHost: ix.Host(m.To).Name,
		FromSite: ix.Fed.Sites[ix.HostSite(m.From)].Name, ToSite: ix.Fed.Sites[ix.HostSite(m.To)].Name,
		Priority: vm.Priority, Reason: "consolidation"}
}

// consolidationPlanner is the executor's planning function for a round:
// the planned moves whose VM still sits on its source, is not frozen
// (moved already, or in flight) and whose destination is still up. The
// executor checks capacity itself and drops moves it refuses.
func consolidationPlanner(moves []planner.Move) func(planner.Input) (*planner.Plan, error) {
	return func(in planner.Input) (*planner.Plan, error) {
		p := &planner.Plan{Policy: "consolidation", Moves: []planner.Move{}, Unsaved: []planner.Unsaved{}, Resources: []planner.ResourceLoad{}}
		for _, m := range moves {
			if in.Frozen != nil && in.Frozen[m.VM] {
				continue
			}
			if in.Placement != nil && in.Placement[m.VM] != m.From {
				continue
			}
			if in.HostDown != nil && in.HostDown[m.To] {
				continue
			}
			if _, threatened := in.Deadlines[in.Index.HostSite(m.To)]; threatened {
				continue
			}
			p.Moves = append(p.Moves, m)
		}
		return p, nil
	}
}

// roundDone takes the executor's outcome, powers off the hosts it emptied
// and reports.
func (l *Loop) roundDone(ex *executor.Executor, plan placement.ConsolidationPlan, rep RoundReport) {
	r := ex.Report()
	l.mu.Lock()
	defer l.mu.Unlock()
	copy(l.placement, r.Placement)
	for _, rec := range r.VMs {
		switch rec.Status {
		case executor.StatusMigrated:
			rep.Migrated++
		case executor.StatusFailed, executor.StatusAborted, executor.StatusLost:
			rep.Failed++
		}
	}
	l.cfg.Metrics.migrations(rep.Migrated, rep.Failed)
	for _, h := range plan.Empty {
		l.powerOffLocked(h, &rep)
	}
	l.running = false
	l.finishLocked(rep)
}

// powerOffLocked powers host h off if it runs nothing: the loop's view
// and the hypervisor's inventory must agree that it is empty.
func (l *Loop) powerOffLocked(h int, rep *RoundReport) {
	name := l.ix.Host(h).Name
	for _, at := range l.placement {
		if at == h {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s still runs VMs: left on", name))
			return
		}
	}
	doms, err := l.cfg.Driver.ListDomains(context.Background(), name)
	if err != nil || len(doms) > 0 {
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: inventory says %d domains (%v): left on", name, len(doms), err))
		return
	}
	if err := l.cfg.Power.PowerOff(context.Background(), name); err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("power off %s: %v", name, err))
		return
	}
	l.off[h] = true
	rep.PoweredOff = append(rep.PoweredOff, name)
	l.cfg.Metrics.poweredOff()
}

// wakeForHeadroomLocked powers on off hosts, per site, while the
// powered-on eligible hosts' load exceeds (1 − Headroom) of their cores.
func (l *Loop) wakeForHeadroomLocked(s *placement.State) []string {
	type agg struct{ load, cores float64 }
	sites := map[int]*agg{}
	for h, hh := range s.Hosts {
		if hh.Ineligible || hh.Off {
			continue
		}
		a := sites[hh.Site]
		if a == nil {
			a = &agg{}
			sites[hh.Site] = a
		}
		a.load += s.Load(h)
		a.cores += float64(hh.VCPU)
	}
	var woken []string
	for h, hh := range s.Hosts {
		a := sites[hh.Site]
		if !hh.Off || hh.Ineligible || a == nil || a.load <= (1-l.cfg.Headroom)*a.cores {
			continue
		}
		if err := l.cfg.Power.PowerOn(context.Background(), hh.Name); err != nil {
			l.log.Warn("wake", "host", hh.Name, "err", err)
			continue
		}
		l.off[h] = false
		a.cores += float64(hh.VCPU)
		woken = append(woken, hh.Name)
		l.cfg.Metrics.woken()
	}
	return woken
}

// Wake makes room for r: if no powered-on eligible host can take it, it
// powers on the first powered-off one that can (returning its index);
// -1 when a powered-on host can take it already. A host being woken
// cannot take VMs until the controller reports it on.
func (l *Loop) Wake(r placement.Request) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.stateLocked()
	if err != nil {
		return -1, err
	}
	p, _ := placement.New(placement.FirstFit, placement.Options{})
	d, err := p.Place(s, r)
	if err != nil {
		return -1, err
	}
	if !d.Wake {
		return -1, nil
	}
	name := l.ix.Host(d.Host).Name
	if err := l.cfg.Power.PowerOn(context.Background(), name); err != nil {
		return -1, fmt.Errorf("wake %s for %s: %w", name, r.Name, err)
	}
	l.off[d.Host] = false
	l.cfg.Metrics.woken()
	return d.Host, nil
}

func (l *Loop) finishLocked(rep RoundReport) {
	rep.Finished = l.cfg.Clock.Now()
	l.rounds = append(l.rounds, rep)
	l.cfg.Metrics.round(rep)
	l.updateMeterLocked()
	if l.cfg.OnRound != nil {
		l.cfg.OnRound(rep)
	}
}

func (l *Loop) updateMeter() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.updateMeterLocked()
}

// updateMeterLocked tells the meter every host's utilisation.
func (l *Loop) updateMeterLocked() {
	m := l.cfg.Meter
	if m == nil {
		return
	}
	load := make([]float64, len(l.ix.Hosts))
	for v, h := range l.placement {
		if h >= 0 {
			load[h] += l.load[v]
		}
	}
	for h := range load {
		_ = m.Set(h, !l.off[h], load[h]/float64(l.ix.Host(h).VCPU))
	}
}
