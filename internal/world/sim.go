// Package world is what refuge evacuates: a federation behind a
// hypervisor.Driver, with the clock its executors run on and the place
// where they and the driver may be called. Sim is the simulated
// federation (simhv on the discrete-event engine, its virtual clock
// driven in real or accelerated time); Hosts is the real one, each host
// reached through libvirt. Both give the controller service
// (controller.World) and the alert pipeline (pipeline.ExecutorTarget)
// what they need, so that refuge serve, watch and evacuate only choose a
// driver configuration.
package world

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/hypervisor/simhv"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/sim"
)

// SimConfig sets up a simulated federation driven in real time.
type SimConfig struct {
	Federation *model.Federation
	// Policy is the evacuation policy (model.RefugePolicy if zero).
	Policy model.Policy
	// Epoch is the world time at which the simulation starts (the wall
	// clock's time when zero).
	Epoch time.Time
	// Speed is how many simulated seconds pass per wall-clock second (1:
	// real time; 60: a minute per second). Zero means 1.
	Speed float64
	// WallStart is the wall-clock time at which the world's time is Epoch
	// (when Run starts if zero). Worlds given the same Epoch, Speed and
	// WallStart tell the same time.
	WallStart time.Time
	// OnEvent receives executor timelines (absolute world times) and
	// OnSiteLost the loss of a site at its deadline, both on the event
	// loop.
	OnEvent    func(at time.Time, ev executor.Event)
	OnSiteLost func(at time.Time, site string)
	Metrics    *executor.Metrics
	Logger     *slog.Logger
}

// World is a federation to evacuate: Sim or Hosts.
type World interface {
	// Index is the federation's index.
	Index() *model.Index
	// Driver moves VMs (called inside Do).
	Driver() hypervisor.Driver
	// Clock is the executors' clock (called inside Do); PipelineClock
	// tells the same time from any goroutine, for the alert pipeline and
	// its sources; Now reads it.
	Clock() clock.Clock
	PipelineClock() clock.Clock
	Now() time.Time
	// Do runs f where executors and the driver may be called and waits.
	Do(f func())
	// State returns where VMs run and which hosts are down (inside Do).
	State() (placement []int, hostDown []bool)
	// Host returns the host VM v runs on (-1: lost; inside Do).
	Host(v int) int
	// InFlight reports whether a migration of VM v is under way in the
	// hypervisors (inside Do), e.g. one a dead leader started.
	InFlight(v int) bool
	// SiteDeadline is told a threatened site's deadline (inside Do) when
	// it is set or moved (ok) or withdrawn (!ok); the simulator loses the
	// site at its deadline.
	SiteDeadline(site int, at time.Time, ok bool)
	// HostDown records that monitoring declared host h down, HostUp that
	// it saw it recover (inside Do).
	HostDown(h int) error
	HostUp(h int) error
	// Target evacuates for the alert pipeline (refuge watch).
	Target() *pipeline.ExecutorTarget
	// Run drives the world until ctx ends; Close releases it.
	Run(ctx context.Context) error
	Close() error
}

// Sim is a simulated federation (simhv on a sim.Engine) whose virtual
// clock follows the wall clock, Speed times faster: an event loop
// goroutine (Run) advances the engine as wall time passes and runs the
// work posted to it (Do) at the current virtual time. Its PipelineClock
// tells the world time from any goroutine, so a pipeline and its sources
// can share it; its Target evacuates the simulated federation for the
// pipeline, and as a controller.World it runs the controller's
// executors. A site is lost when its deadline passes.
type Sim struct {
	cfg     SimConfig
	ix      *model.Index
	eng     *sim.Engine
	cluster *simhv.Cluster
	target  *pipeline.ExecutorTarget
	clk     *worldClock
	posts   chan post
	stopped chan struct{}
	once    sync.Once

	lossTimers map[int]clock.Timer // per site, on the loop
}

type post struct {
	f    func()
	done chan struct{}
}

// NewSim builds the simulated federation; call Run to start its clock.
func NewSim(cfg SimConfig) (*Sim, error) {
	if cfg.Federation == nil {
		return nil, errors.New("world: SimConfig.Federation is required")
	}
	if cfg.Speed == 0 {
		cfg.Speed = 1
	}
	if cfg.Speed < 0 {
		return nil, fmt.Errorf("world: speed %g must be positive", cfg.Speed)
	}
	if cfg.Epoch.IsZero() {
		cfg.Epoch = time.Now()
	}
	ix := model.NewIndex(cfg.Federation)
	eng := sim.NewEngine(cfg.Epoch)
	cluster, err := simhv.New(eng, ix)
	if err != nil {
		return nil, err
	}
	w := &Sim{cfg: cfg, ix: ix, eng: eng, cluster: cluster, posts: make(chan post), stopped: make(chan struct{}),
		lossTimers: map[int]clock.Timer{}}
	w.clk = &worldClock{epoch: cfg.Epoch, speed: cfg.Speed, wallStart: cfg.WallStart, fixed: !cfg.WallStart.IsZero()}
	if !w.clk.fixed {
		w.clk.wallStart = time.Now()
	}
	w.target, err = pipeline.NewExecutorTarget(pipeline.ExecutorConfig{
		Index: ix, Policy: cfg.Policy, Driver: cluster, Clock: eng, Do: w.Do, State: w.State,
		OnDeadline: w.SiteDeadline,
		OnEvent:    cfg.OnEvent,
		Metrics:    cfg.Metrics,
		Logger:     cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// PipelineClock returns the world's clock for the alert pipeline and its
// sources: safe from any goroutine; its timers fire after the wall-clock
// time that corresponds to their virtual delay.
func (w *Sim) PipelineClock() clock.Clock { return w.clk }

// Clock returns the executors' clock, the engine's (inside Do).
func (w *Sim) Clock() clock.Clock { return w.eng }

// Now tells the world's time from any goroutine.
func (w *Sim) Now() time.Time { return w.clk.Now() }

// Target returns the world's evacuation target for the alert pipeline.
func (w *Sim) Target() *pipeline.ExecutorTarget { return w.target }

// Index returns the federation's index.
func (w *Sim) Index() *model.Index { return w.ix }

// Driver returns the simulated hypervisors.
func (w *Sim) Driver() hypervisor.Driver { return w.cluster }

// Cluster returns the simulated federation; use it only inside Do.
func (w *Sim) Cluster() *simhv.Cluster { return w.cluster }

// State returns where VMs run and which hosts are down (inside Do).
func (w *Sim) State() ([]int, []bool) {
	down := make([]bool, len(w.ix.Hosts))
	for h := range down {
		down[h] = !w.cluster.HostUp(h)
	}
	return w.cluster.Placement(), down
}

// Host returns the host VM v runs on (-1: lost; inside Do).
func (w *Sim) Host(v int) int { return w.cluster.Placement()[v] }

// InFlight reports whether VM v is being migrated (inside Do).
func (w *Sim) InFlight(v int) bool { return w.cluster.Migrating(v) }

// HostDown fails host h, as a crash would (inside Do): its VMs are lost.
func (w *Sim) HostDown(h int) error { return w.cluster.FailHost(h) }

// HostUp brings failed host h back, empty, as a restart would (inside
// Do): later evacuations may use it again.
func (w *Sim) HostUp(h int) error { return w.cluster.RecoverHost(h) }

// Close implements World; a simulation holds nothing to release.
func (w *Sim) Close() error { return nil }

// Check verifies the simulated federation's invariants (inside Do): every
// VM on exactly one host or lost with it.
func (w *Sim) Check() error { return w.cluster.Check() }

// Run is the event loop: it advances the simulation with the wall clock
// and runs posted work until ctx ends. Work posted after that runs at
// once on the caller's goroutine (nothing else runs then).
func (w *Sim) Run(ctx context.Context) error {
	defer w.once.Do(func() { close(w.stopped) })
	w.clk.begin()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := w.clk.elapsed()
		if now > w.eng.Elapsed() {
			w.eng.RunUntil(now)
		}
		wait := time.Hour
		if next, ok := w.eng.NextAt(); ok {
			wait = time.Duration(float64(next-w.eng.Elapsed()) / w.cfg.Speed)
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p := <-w.posts:
			if now := w.clk.elapsed(); now > w.eng.Elapsed() {
				w.eng.RunUntil(now)
			}
			p.f()
			close(p.done)
		case <-timer.C:
		}
	}
}

// Do runs f on the event loop at the current world time and waits for it.
func (w *Sim) Do(f func()) {
	p := post{f: f, done: make(chan struct{})}
	select {
	case w.posts <- p:
		<-p.done
	case <-w.stopped:
		f()
	}
}

// SiteDeadline loses the site at its deadline, set or moved (ok), or
// no longer when withdrawn (!ok); inside Do.
func (w *Sim) SiteDeadline(site int, at time.Time, ok bool) {
	if t := w.lossTimers[site]; t != nil {
		t.Stop()
		delete(w.lossTimers, site)
	}
	if !ok {
		return
	}
	d := max(at.Sub(w.eng.Now()), 0)
	w.lossTimers[site] = w.eng.AfterFunc(d, func() {
		delete(w.lossTimers, site)
		if err := w.cluster.LoseSite(site); err != nil && w.cfg.Logger != nil {
			w.cfg.Logger.Warn("simulated site loss", "site", w.ix.Fed.Sites[site].Name, "error", err)
		}
		if w.cfg.OnSiteLost != nil {
			w.cfg.OnSiteLost(w.eng.Now(), w.ix.Fed.Sites[site].Name)
		}
	})
}

// worldClock maps wall time to world time: epoch + (wall − start)·speed.
type worldClock struct {
	mu        sync.Mutex
	epoch     time.Time
	speed     float64
	wallStart time.Time
	fixed     bool // wallStart was given
}

// begin starts the clock, unless its wall start was given.
func (c *worldClock) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fixed {
		c.wallStart = time.Now()
	}
}

func (c *worldClock) elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Duration(float64(time.Since(c.wallStart)) * c.speed)
}

// Now implements clock.Clock.
func (c *worldClock) Now() time.Time { return c.epoch.Add(c.elapsed()) }

// AfterFunc implements clock.Clock on the wall clock, scaled.
func (c *worldClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return time.AfterFunc(time.Duration(float64(d)/c.speed), f)
}
