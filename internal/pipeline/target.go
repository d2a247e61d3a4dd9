package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/planner"
)

// Target carries out evacuations.
type Target interface {
	// Apply makes the evacuation protect exactly these sites by these
	// deadlines (times on the pipeline's clock): sites not evacuated yet
	// start, moved deadlines move, and sites left out are withdrawn —
	// their running migrations finish, or are aborted with abortRunning.
	// watch names exactly the sites threatened but not evacuated (at
	// threat level watch, or waiting for an operator's approval): the
	// evacuation policy's watch_sites says whether they still receive
	// VMs.
	Apply(deadlines map[string]time.Time, watch []string, abortRunning bool) error
}

// Explained is a Target that is told why it applies. The pipeline calls
// ApplyBecause instead of Apply with the causes (oldest first) of the
// change since the target last applied: the alerts accepted and the
// operators' decisions (the last maxUnrecorded of them).
type Explained interface {
	ApplyBecause(causes []Cause, deadlines map[string]time.Time, watch []string, abortRunning bool) error
}

// TargetFunc adapts a function to Target.
type TargetFunc func(deadlines map[string]time.Time, watch []string, abortRunning bool) error

// Apply implements Target.
func (f TargetFunc) Apply(d map[string]time.Time, watch []string, abort bool) error {
	return f(d, watch, abort)
}

// ExecutorConfig sets up an ExecutorTarget.
type ExecutorConfig struct {
	Index *model.Index
	// Policy is the evacuation policy (model.RefugePolicy if zero).
	Policy model.Policy
	Driver hypervisor.Driver
	// Clock is the executors' clock; it must tell the pipeline's time.
	Clock clock.Clock
	// Do runs f where executors and the driver may be called, and waits
	// for it (nil: on the caller's goroutine). The simulated world passes
	// its event loop.
	Do func(f func())
	// State returns where VMs run now and which hosts are down, for a new
	// executor (nil: the federation's placement, every host up).
	State func() (placement []int, hostDown []bool)
	// OnDeadline is told, inside Do, when a site's deadline is set or
	// moved (ok) or withdrawn (!ok); the simulator loses the site then.
	OnDeadline func(site int, at time.Time, ok bool)
	// OnEvent receives the executors' timelines with absolute times
	// (inside Do, under the executor's lock: it must not call back).
	OnEvent func(at time.Time, ev executor.Event)
	// Plan replaces the planner (see executor.Config.Plan).
	Plan    func(planner.Input) (*planner.Plan, error)
	Metrics *executor.Metrics
	Logger  *slog.Logger
}

// ExecutorTarget evacuates through executors: the first deadline starts
// one, later changes go to it (SetDeadline, CancelThreat, SetWatch), and a
// change after it has finished starts a new one from the current
// placement.
type ExecutorTarget struct {
	cfg ExecutorConfig

	mu      sync.Mutex
	exec    *executor.Executor
	start   time.Time
	applied map[int]time.Time
	watch   map[int]bool
	reports []executor.Report
	runs    int
}

// NewExecutorTarget checks cfg and returns a target.
func NewExecutorTarget(cfg ExecutorConfig) (*ExecutorTarget, error) {
	switch {
	case cfg.Index == nil:
		return nil, errors.New("pipeline: ExecutorConfig.Index is required")
	case cfg.Driver == nil:
		return nil, errors.New("pipeline: ExecutorConfig.Driver is required")
	case cfg.Clock == nil:
		return nil, errors.New("pipeline: ExecutorConfig.Clock is required")
	}
	if cfg.Policy.Name == "" {
		cfg.Policy = model.RefugePolicy()
	}
	if cfg.Do == nil {
		cfg.Do = func(f func()) { f() }
	}
	return &ExecutorTarget{cfg: cfg, applied: map[int]time.Time{}, watch: map[int]bool{}}, nil
}

// Apply implements Target.
func (t *ExecutorTarget) Apply(deadlines map[string]time.Time, watch []string, abortRunning bool) error {
	want := make(map[int]time.Time, len(deadlines))
	for name, at := range deadlines {
		s, err := t.site(name)
		if err != nil {
			return err
		}
		want[s] = at
	}
	watched := make(map[int]bool, len(watch))
	for _, name := range watch {
		s, err := t.site(name)
		if err != nil {
			return err
		}
		watched[s] = true
	}
	var err error
	t.cfg.Do(func() { err = t.apply(want, watched, abortRunning) })
	return err
}

func (t *ExecutorTarget) site(name string) (int, error) {
	s, ok := t.cfg.Index.SiteByName[name]
	if !ok {
		return 0, fmt.Errorf("no site %q in the federation", name)
	}
	return s, nil
}

// apply hands the changes to the running executor in an order that never
// lets a threatened site receive VMs in between: new watch sites first,
// then withdrawn and moved deadlines, and only then sites no longer
// watched (a watched site that now evacuates has its deadline by then).
func (t *ExecutorTarget) apply(want map[int]time.Time, watch map[int]bool, abort bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := false // a site added or a deadline moved
	for s, at := range want {
		if old, ok := t.applied[s]; !ok || !old.Equal(at) {
			changed = true
			if t.cfg.OnDeadline != nil {
				t.cfg.OnDeadline(s, at, true)
			}
		}
	}
	for _, s := range slices.Sorted(maps.Keys(t.applied)) {
		if _, ok := want[s]; !ok && t.cfg.OnDeadline != nil {
			t.cfg.OnDeadline(s, time.Time{}, false)
		}
	}
	running := t.exec != nil && !isDone(t.exec)
	switch {
	case running:
		for _, s := range slices.Sorted(maps.Keys(watch)) {
			if !t.watch[s] {
				t.exec.SetWatch(s, true)
			}
		}
		for _, s := range slices.Sorted(maps.Keys(t.applied)) {
			if _, ok := want[s]; !ok {
				t.exec.CancelThreat(s, abort)
			}
		}
		for _, s := range slices.Sorted(maps.Keys(want)) {
			if old, ok := t.applied[s]; !ok || !old.Equal(want[s]) {
				t.exec.SetDeadline(s, want[s].Sub(t.start))
			}
		}
		for _, s := range slices.Sorted(maps.Keys(t.watch)) {
			if !watch[s] {
				t.exec.SetWatch(s, false)
			}
		}
	case changed && len(want) > 0:
		if err := t.startExecutor(want, watch); err != nil {
			return err
		}
	}
	t.applied, t.watch = maps.Clone(want), maps.Clone(watch)
	return nil
}

func isDone(e *executor.Executor) bool {
	select {
	case <-e.Done():
		return true
	default:
		return false
	}
}

// startExecutor starts a new executor for the wanted deadlines, with the
// watched sites.
func (t *ExecutorTarget) startExecutor(want map[int]time.Time, watch map[int]bool) error {
	if t.exec != nil {
		t.reports = append(t.reports, t.exec.Report())
	}
	start := t.cfg.Clock.Now()
	cfg := executor.Config{
		Index: t.cfg.Index, Policy: t.cfg.Policy, Driver: t.cfg.Driver, Clock: t.cfg.Clock, Start: start,
		Logger: t.cfg.Logger, Metrics: t.cfg.Metrics, Plan: t.cfg.Plan,
	}
	if len(watch) > 0 {
		cfg.Watch = make([]bool, len(t.cfg.Index.Fed.Sites))
		for s := range watch {
			cfg.Watch[s] = true
		}
	}
	if t.cfg.State != nil {
		cfg.Placement, cfg.HostDown = t.cfg.State()
	}
	if t.cfg.OnEvent != nil {
		cfg.OnEvent = func(ev executor.Event) { t.cfg.OnEvent(start.Add(ev.At), ev) }
	}
	ex, err := executor.New(cfg)
	if err != nil {
		return err
	}
	deadlines := make(map[int]time.Duration, len(want))
	for s, at := range want {
		deadlines[s] = at.Sub(start)
	}
	if err := ex.Start(deadlines); err != nil {
		return err
	}
	t.exec, t.start = ex, start
	t.runs++
	return nil
}

// Executions returns how many executors have been started.
func (t *ExecutorTarget) Executions() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs
}

// Reports returns the reports of every executor started, the current one
// last (its report so far). Call it inside Do when executors run on an
// event loop.
func (t *ExecutorTarget) Reports() []executor.Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.reports)
	if t.exec != nil {
		out = append(out, t.exec.Report())
	}
	return out
}

// Done returns a channel closed when the current executor has nothing left
// to do (nil when none was started).
func (t *ExecutorTarget) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exec == nil {
		return nil
	}
	return t.exec.Done()
}

// Stop stops the current executor (running migrations are aborted).
func (t *ExecutorTarget) Stop() {
	t.cfg.Do(func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.exec != nil {
			t.exec.Stop()
		}
	})
}
