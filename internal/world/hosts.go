package world

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/hypervisor/libvirt"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/pipeline"
)

// DefaultConnectTimeout bounds how long Connect waits for a host's daemon.
const DefaultConnectTimeout = 10 * time.Second

// inventoryTimeout bounds an inventory taken without a caller's context
// (State); each host's call is bounded by the driver's RPC timeout too.
const inventoryTimeout = 30 * time.Second

// Hypervisor is what Hosts needs from the libvirt driver
// (*libvirt.Driver); tests substitute a fake.
type Hypervisor interface {
	hypervisor.Driver
	WaitHosts(ctx context.Context, timeout time.Duration) []libvirt.HostState
	SampleNonZero(ctx context.Context, host, domain string, chunks int, rng *rand.Rand) (float64, error)
	Records() []libvirt.Record
	Steps() []libvirt.Step
	Close() error
}

// HostsConfig sets up the real federation.
type HostsConfig struct {
	// Federation names every host with its libvirt uri.
	Federation *model.Federation
	Logger     *slog.Logger
	// ConnectTimeout bounds the wait for each host (DefaultConnectTimeout
	// if 0); hosts connect concurrently.
	ConnectTimeout time.Duration
	// HealthSettle and NonLive configure the driver (libvirt.Config).
	HealthSettle time.Duration
	NonLive      bool
	// Switchover makes the driver run the migration's phases itself
	// (libvirt.Config.Drive) for the migrations that switch services over
	// (continuity configured), so that the switch-over comes strictly
	// after the destination runs and before the source is destroyed.
	Switchover bool
	// OnHosts, if not nil, receives every host's state once connecting
	// has ended.
	OnHosts func([]libvirt.HostState)
	// Policy, OnEvent and Metrics configure Target's executors (see
	// pipeline.ExecutorConfig).
	Policy  model.Policy
	OnEvent func(at time.Time, ev executor.Event)
	Metrics *executor.Metrics
	// Open replaces the libvirt driver (tests).
	Open func(libvirt.Config) (Hypervisor, error)
}

// Hosts is the real federation: every host's libvirt daemon through one
// driver, on the wall clock. Driver calls need no event loop (Do runs the
// function at once). A host that did not answer when connecting, whose
// daemon stops answering, or that monitoring declared down (HostDown) is
// down: its VMs are lost and nothing migrates to or from it.
type Hosts struct {
	cfg    HostsConfig
	ix     *model.Index
	drv    Hypervisor
	target *pipeline.ExecutorTarget
	// unreachable are the hosts down when connecting.
	unreachable []libvirt.HostState

	mu sync.Mutex
	// connectDown are the hosts down when connecting (a one-shot inventory
	// leaves them out; State asks them again), declared those monitoring
	// declared down (left out until it says they recovered).
	connectDown map[int]string
	declared    map[int]bool
	last        *Inventory
	lastTime    time.Time
}

// Inventory is where the VMs run, as the reachable hosts say.
type Inventory struct {
	// Placement is the host index per VM, -1 when found on no reachable
	// host (on a host active twice, where it runs rather than is paused).
	Placement []int
	// Down marks the hosts left out.
	Down []bool
	// Unreachable gives, for a VM not found, the down host the federation
	// places it on and why that host is down.
	Unreachable map[int]string
	// Twice names, for a VM active on two hosts (a migration under way),
	// the other host.
	Twice map[int]int
}

// CheckOnce fails when a VM is active on two hosts (the lowest such VM
// is named): an inventory to evacuate from must find each VM once.
func (inv *Inventory) CheckOnce(ix *model.Index) error {
	for v := range inv.Placement {
		if h, ok := inv.Twice[v]; ok {
			return fmt.Errorf("inventory: %s is active on both %s and %s", ix.Fed.VMs[v].Name, ix.Host(inv.Placement[v]).Name, ix.Host(h).Name)
		}
	}
	return nil
}

func openLibvirt(cfg libvirt.Config) (Hypervisor, error) { return libvirt.New(cfg) }

// Connect opens the driver and waits until every host is connected or
// left out; it fails when no host answers.
func Connect(ctx context.Context, cfg HostsConfig) (*Hosts, error) {
	if cfg.Federation == nil {
		return nil, errors.New("world: HostsConfig.Federation is required")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Open == nil {
		cfg.Open = openLibvirt
	}
	fed := cfg.Federation
	ix := model.NewIndex(fed)
	hosts := libvirt.HostsFromFederation(fed)
	if len(hosts) != len(ix.Hosts) {
		return nil, fmt.Errorf("federation %s: %d of %d hosts have a libvirt uri; every host needs one", fed.Name, len(hosts), len(ix.Hosts))
	}
	drv, err := cfg.Open(libvirt.Config{Hosts: hosts, Logger: cfg.Logger, HealthSettle: cfg.HealthSettle, NonLive: cfg.NonLive, Drive: cfg.Switchover})
	if err != nil {
		return nil, fmt.Errorf("world: %w", err)
	}
	states := drv.WaitHosts(ctx, cfg.ConnectTimeout)
	if cfg.OnHosts != nil {
		cfg.OnHosts(states)
	}
	w := &Hosts{cfg: cfg, ix: ix, drv: drv, connectDown: map[int]string{}, declared: map[int]bool{}}
	for _, st := range states {
		if !st.Up {
			w.connectDown[ix.HostByName[st.Host]] = st.Reason
			w.unreachable = append(w.unreachable, st)
		}
	}
	if err := ctx.Err(); err != nil {
		drv.Close()
		return nil, fmt.Errorf("world: connecting: %w", err)
	}
	if len(w.connectDown) == len(states) {
		drv.Close()
		return nil, fmt.Errorf("world: none of the %d hosts of %s is reachable (first: %s: %s)", len(states), fed.Name, states[0].Host, states[0].Reason)
	}
	w.target, err = pipeline.NewExecutorTarget(pipeline.ExecutorConfig{
		Index: ix, Policy: cfg.Policy, Driver: drv, Clock: clock.Real{}, State: w.State,
		OnEvent: cfg.OnEvent, Metrics: cfg.Metrics, Logger: cfg.Logger,
	})
	if err != nil {
		drv.Close()
		return nil, err
	}
	return w, nil
}

// Close closes the driver's connections.
func (w *Hosts) Close() error { return w.drv.Close() }

// Run waits until ctx ends (the driver works on its own goroutines); it
// lets Hosts run beside a simulated world.
func (w *Hosts) Run(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// Hypervisor returns the driver (its records, steps and memory sampling).
func (w *Hosts) Hypervisor() Hypervisor { return w.drv }

// Unreachable returns the hosts left out when connecting, sorted by name.
func (w *Hosts) Unreachable() []libvirt.HostState { return w.unreachable }

// Index returns the federation's index.
func (w *Hosts) Index() *model.Index { return w.ix }

// Driver returns the libvirt driver.
func (w *Hosts) Driver() hypervisor.Driver { return w.drv }

// Clock returns the wall clock.
func (w *Hosts) Clock() clock.Clock { return clock.Real{} }

// PipelineClock returns the wall clock.
func (w *Hosts) PipelineClock() clock.Clock { return clock.Real{} }

// Now returns the wall clock's time.
func (w *Hosts) Now() time.Time { return time.Now() }

// Do runs f at once: the driver and the executors guard themselves.
func (w *Hosts) Do(f func()) { f() }

// Target returns the evacuation target for the alert pipeline.
func (w *Hosts) Target() *pipeline.ExecutorTarget { return w.target }

// SiteDeadline does nothing: a real site is lost by itself.
func (w *Hosts) SiteDeadline(int, time.Time, bool) {}

// HostDown records that monitoring declared host h down: it is left out
// of every later inventory until HostUp.
func (w *Hosts) HostDown(h int) error { return w.declare(h, true) }

// HostUp records that monitoring saw host h recover: later inventories
// ask it again.
func (w *Hosts) HostUp(h int) error { return w.declare(h, false) }

func (w *Hosts) declare(h int, down bool) error {
	if h < 0 || h >= len(w.ix.Hosts) {
		return fmt.Errorf("world: no host index %d", h)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if down {
		w.declared[h] = true
	} else {
		delete(w.declared, h)
	}
	w.last = nil
	return nil
}

// State takes an inventory: where VMs run and which hosts are down. Every
// host not declared down is asked (one down when connecting may be back);
// a host whose daemon does not answer counts as down.
func (w *Hosts) State() ([]int, []bool) {
	inv := w.current(true)
	return inv.Placement, inv.Down
}

// Host returns the host VM v runs on (-1: lost), from an inventory at
// most a second old.
func (w *Hosts) Host(v int) int { return w.current(false).Placement[v] }

// InFlight reports whether VM v is active on two hosts (a migration
// under way), from an inventory at most a second old.
func (w *Hosts) InFlight(v int) bool {
	_, ok := w.current(false).Twice[v]
	return ok
}

// current returns a fresh inventory, or with !fresh one at most a second
// old; a host that fails to answer is down in it.
func (w *Hosts) current(fresh bool) *Inventory {
	w.mu.Lock()
	if !fresh && w.last != nil && time.Since(w.lastTime) < time.Second {
		inv := w.last
		w.mu.Unlock()
		return inv
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), inventoryTimeout)
	defer cancel()
	inv, _ := w.inventory(ctx, false)
	w.mu.Lock()
	w.last, w.lastTime = inv, time.Now()
	w.mu.Unlock()
	return inv
}

// Inventory asks every host reachable when connecting (and not declared
// down) which domains are active on it; a host that fails to answer fails
// it.
func (w *Hosts) Inventory(ctx context.Context) (*Inventory, error) { return w.inventory(ctx, true) }

func (w *Hosts) inventory(ctx context.Context, strict bool) (*Inventory, error) {
	ix := w.ix
	inv := &Inventory{Placement: make([]int, len(ix.Fed.VMs)), Down: make([]bool, len(ix.Hosts)),
		Unreachable: map[int]string{}, Twice: map[int]int{}}
	why := map[int]string{}
	w.mu.Lock()
	if strict {
		for h, r := range w.connectDown {
			why[h], inv.Down[h] = r, true
		}
	}
	for h := range w.declared {
		why[h], inv.Down[h] = "declared down by monitoring", true
	}
	w.mu.Unlock()
	for v := range inv.Placement {
		inv.Placement[v] = -1
	}
	// Hosts answer concurrently; each call is bounded by the driver's RPC
	// timeout.
	doms := make([][]hypervisor.Domain, len(ix.Hosts))
	errs := make([]error, len(ix.Hosts))
	var wg sync.WaitGroup
	for h := range ix.Hosts {
		if inv.Down[h] {
			continue
		}
		wg.Go(func() { doms[h], errs[h] = w.drv.ListDomains(ctx, ix.Host(h).Name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil && strict {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	for h, err := range errs {
		if err != nil {
			inv.Down[h], why[h] = true, err.Error()
		}
	}
	running := make([]bool, len(ix.Fed.VMs))
	for h := range ix.Hosts {
		for _, d := range doms[h] {
			v, ok := ix.VMByName[d.Name]
			if !ok || (d.State != hypervisor.StateRunning && d.State != hypervisor.StatePaused) {
				continue
			}
			if p := inv.Placement[v]; p >= 0 {
				inv.Twice[v] = p
				if running[v] || d.State != hypervisor.StateRunning {
					inv.Twice[v] = h
					continue
				}
			}
			inv.Placement[v], running[v] = h, d.State == hypervisor.StateRunning
		}
	}
	for v, h := range inv.Placement {
		home := ix.VMHost[v]
		switch {
		case h < 0 && home >= 0 && inv.Down[home]:
			inv.Unreachable[v] = fmt.Sprintf("host %s unreachable: %s", ix.Host(home).Name, why[home])
		case h < 0 && strict:
			w.cfg.Logger.Warn("VM not running on any reachable host", "vm", ix.Fed.VMs[v].Name)
		case h >= 0 && h != home && strict:
			w.cfg.Logger.Warn("VM runs elsewhere than the federation says", "vm", ix.Fed.VMs[v].Name, "federation", ix.Fed.VMs[v].Host, "actual", ix.Host(h).Name)
		}
	}
	return inv, nil
}

var (
	_ World = (*Sim)(nil)
	_ World = (*Hosts)(nil)
)
