// Package controller is refuge's controller service: the orchestration
// that `refuge serve` runs and the API calls. Controllers elect one leader
// through etcd; only the leader evacuates. Every executor step is written
// to etcd before and after it acts (intent, then result), fenced by the
// leader's term, so that a new leader resumes an evacuation exactly where
// the previous one stopped: no VM migrated twice, none forgotten.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/store"
)

// Errors the API maps to statuses.
var (
	// ErrNotLeader: this controller does not lead (503; retry, or ask the
	// leader).
	ErrNotLeader = errors.New("this controller is not the leader")
	// ErrConflict: the request conflicts with a live operation (409).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request names something that does not exist or is
	// not allowed (422).
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such operation (404).
	ErrNotFound = errors.New("not found")
)

// MemoryLimit is the Go soft memory limit refuge serve sets when
// GOMEMLIMIT is not: it makes the garbage collector keep the heap, and so
// the resident set, close to what is live (docs/api.md: RSS with 100k VMs).
const MemoryLimit = 150 << 20

// Config sets up a Controller.
type Config struct {
	// ID names this controller (its site or address); it is the leader
	// election's value.
	ID    string
	Store *store.Store
	World World
	// Policy is the evacuation policy (model.RefugePolicy if zero).
	Policy model.Policy
	// TTL is the leader lease in seconds (default 5): how long a dead
	// leader keeps the leadership before another takes over.
	TTL int
	// SettleTimeout bounds how long a new leader waits for migrations a
	// dead leader left running (default 2 min).
	SettleTimeout time.Duration
	Logger        *slog.Logger
	Metrics       *Metrics
	// Switcher, if not nil, keeps services' names following their VMs
	// (package continuity's Coordinator): every evacuation's executor
	// calls it per service of each VM that switched over.
	Switcher executor.Switcher
	// Prepare, if not nil, runs when an evacuation starts or is resumed,
	// before its executor: continuity lowers the TTL of its services'
	// names there (sites: the sites it evacuates). The start waits for it
	// at most PrepareWait (default 2 s) and then goes on while it
	// finishes: a slow DNS server must not cost the deadline more.
	// Failures are logged, never fatal to the evacuation.
	Prepare     func(ctx context.Context, op string, sites []string) error
	PrepareWait time.Duration
	// Failpoint, if not nil, is asked at every named failpoint; when it
	// returns true the controller crashes there (as kill -9 would): it
	// writes and acts no more. Tests only.
	Failpoint func(name string) bool
}

// Controller is one controller process's service.
type Controller struct {
	cfg Config
	ix  *model.Index
	log *slog.Logger

	ready atomic.Bool
	// crashed: Kill was called or a failpoint fired.
	crashed atomic.Bool
	killed  chan struct{}
	kill    sync.Once

	// starting serializes the start of evacuations (the conflict check and
	// the registration of the run).
	starting sync.Mutex

	mu   sync.Mutex
	lead *store.Leadership
	// stopped is shared by the journals of this leadership term.
	stopped *atomic.Bool
	// ledger is the admission this term's executors share: side by side,
	// their migrations together respect each NIC, link direction, host
	// and count limit, and none fills a destination another is moving
	// VMs to. A new term starts a new one (migrations a deposed term left
	// running are settled through the journal).
	ledger *executor.Ledger
	runs   map[string]*opRun
	// alertWatch are the sites the alerts threaten without evacuating
	// them (at watch level, or waiting for approval).
	alertWatch map[string]bool
	// alerts is the target of the pipeline AlertPipeline built (nil:
	// none), rebuilt from the store on every takeover.
	alerts *AlertTarget
	wg     sync.WaitGroup
}

// New checks cfg and returns a controller; Run makes it work.
func New(cfg Config) (*Controller, error) {
	switch {
	case cfg.ID == "":
		return nil, errors.New("controller: Config.ID is required")
	case cfg.Store == nil:
		return nil, errors.New("controller: Config.Store is required")
	case cfg.World == nil:
		return nil, errors.New("controller: Config.World is required")
	}
	if cfg.Policy.Name == "" {
		cfg.Policy = model.RefugePolicy()
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = 2 * time.Minute
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, ix: cfg.World.Index(), log: lg.With("controller", cfg.ID),
		killed: make(chan struct{}), runs: map[string]*opRun{}}, nil
}

// ID returns the controller's id.
func (c *Controller) ID() string { return c.cfg.ID }

// Index returns the federation's index.
func (c *Controller) Index() *model.Index { return c.ix }

// World returns the world the controller acts on.
func (c *Controller) World() World { return c.cfg.World }

// Store returns the controller's store.
func (c *Controller) Store() *store.Store { return c.cfg.Store }

// Ready reports whether the controller has joined the election (and, as
// leader, resumed the live operations).
func (c *Controller) Ready() bool { return c.ready.Load() }

// IsLeader reports whether this controller leads now.
func (c *Controller) IsLeader() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lead != nil
}

func (c *Controller) failpoint(name string) bool {
	if c.crashed.Load() {
		return true
	}
	if c.cfg.Failpoint == nil || !c.cfg.Failpoint(name) {
		return false
	}
	c.log.Warn("failpoint: crashing", "failpoint", name)
	c.Kill()
	return true
}

// Kill stops the controller as a crash would: it takes no further step and
// writes nothing; its leadership expires after the lease's TTL (migrations
// it started go on in the hypervisors, for the next leader to settle).
func (c *Controller) Kill() {
	c.kill.Do(func() {
		c.crashed.Store(true)
		c.mu.Lock()
		if c.stopped != nil {
			c.stopped.Store(true)
		}
		c.mu.Unlock()
		close(c.killed)
	})
}

// Run campaigns for leadership and leads until ctx ends (then it resigns)
// or Kill is called.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.killed:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer c.wg.Wait()
	for {
		c.ready.Store(true)
		lead, err := c.cfg.Store.Campaign(ctx, c.cfg.ID, c.cfg.TTL)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("campaign failed; retrying", "err", err)
			if !sleepCtx(ctx, 500*time.Millisecond) {
				return nil
			}
			continue
		}
		c.cfg.Metrics.leaderChange()
		c.log.Info("leading", "revision", lead.Revision())
		if err := c.takeOver(ctx, lead); err != nil {
			if ctx.Err() == nil {
				c.log.Error("taking over failed; stepping down", "err", err)
			}
		} else {
			select {
			case <-lead.Done():
				c.log.Warn("leadership lost")
			case <-ctx.Done():
			}
		}
		c.stepDown(lead)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// sleepCtx waits d or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// takeOver makes c the leader, resumes every running operation and then
// restores the alert pipeline.
func (c *Controller) takeOver(ctx context.Context, lead *store.Leadership) error {
	if err := c.resumeLive(ctx, lead); err != nil {
		return err
	}
	return c.restoreAlerts(ctx, lead)
}

// resumeLive makes c the leader and resumes every running operation.
func (c *Controller) resumeLive(ctx context.Context, lead *store.Leadership) error {
	c.mu.Lock()
	c.lead = lead
	c.stopped = &atomic.Bool{}
	c.ledger = executor.NewLedger()
	if c.crashed.Load() {
		c.stopped.Store(true)
	}
	c.mu.Unlock()
	ops, err := c.cfg.Store.Operations(ctx)
	if err != nil {
		return err
	}
	c.starting.Lock()
	defer c.starting.Unlock()
	for i := range ops {
		op := &ops[i]
		if op.Status != store.OpRunning && op.Status != store.OpPending {
			continue
		}
		if err := c.resume(ctx, op); err != nil {
			return fmt.Errorf("resume %s: %w", op.ID, err)
		}
	}
	return nil
}

// stepDown stops this term's executors (they take no further step) and,
// unless crashed, resigns.
func (c *Controller) stepDown(lead *store.Leadership) {
	c.mu.Lock()
	c.stopped.Store(true)
	runs := c.runs
	c.runs = map[string]*opRun{}
	c.lead = nil
	c.mu.Unlock()
	for _, r := range runs {
		r.abandon()
	}
	if c.crashed.Load() {
		lead.Abandon()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := lead.Resign(ctx); err != nil {
		c.log.Warn("resign", "err", err)
	}
}

// leadership returns the current term or ErrNotLeader.
func (c *Controller) leadership() (*store.Leadership, *atomic.Bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lead == nil || c.crashed.Load() {
		return nil, nil, c.notLeader()
	}
	return c.lead, c.stopped, nil
}

func (c *Controller) notLeader() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	id, err := c.cfg.Store.Leader(ctx)
	switch {
	case err != nil || id == "":
		return fmt.Errorf("%w: no leader is elected now (a leader change is under way); retry shortly", ErrNotLeader)
	default:
		return fmt.Errorf("%w: controller %s leads; send the request there", ErrNotLeader, id)
	}
}

// EvacuationRequest asks to evacuate sites.
type EvacuationRequest struct {
	// ID, if set, is the new operation's id (the alert pipeline names it
	// in its intent before it starts it); a fresh one otherwise.
	ID    string
	Sites []SiteRequest
	// By names who asked (the token's name or id).
	By string
	// AlertAt, for an evacuation an alert started, is when the alert
	// arrived (for the alert-to-first-migration metric).
	AlertAt time.Time
}

// SiteRequest is one site to evacuate and the time left before it is
// lost.
type SiteRequest struct {
	Site     string
	Deadline time.Duration
}

// Evacuate starts an evacuation operation and returns it (status running).
// It runs beside the live evacuations of other VMs; one that concerns a
// VM of a live evacuation is refused with ErrConflict, naming it.
func (c *Controller) Evacuate(ctx context.Context, req EvacuationRequest) (*store.Operation, error) {
	c.starting.Lock()
	defer c.starting.Unlock()
	return c.evacuate(ctx, req)
}

// evacuate is Evacuate with c.starting held.
func (c *Controller) evacuate(ctx context.Context, req EvacuationRequest) (*store.Operation, error) {
	lead, stopped, err := c.leadership()
	if err != nil {
		return nil, err
	}
	now := c.cfg.World.Now()
	id := req.ID
	if id == "" {
		id = store.NewID("op")
	}
	op := &store.Operation{ID: id, Kind: store.KindEvacuation, Status: store.OpRunning,
		Policy: c.cfg.Policy.Name, CreatedBy: req.By, Created: time.Now().UTC(), Leader: c.cfg.ID}
	seen := map[string]bool{}
	for _, s := range req.Sites {
		if _, ok := c.ix.SiteByName[s.Site]; !ok {
			return nil, fmt.Errorf("%w: no site %q in the federation (sites: %v)", ErrInvalid, s.Site, c.siteNames())
		}
		if seen[s.Site] {
			return nil, fmt.Errorf("%w: site %q named twice", ErrInvalid, s.Site)
		}
		seen[s.Site] = true
		op.Sites = append(op.Sites, store.SiteDeadline{Site: s.Site, Deadline: now.Add(s.Deadline)})
	}
	if len(op.Sites) == 0 {
		return nil, fmt.Errorf("%w: no site to evacuate", ErrInvalid)
	}
	if err := c.conflict(op); err != nil {
		return nil, err
	}
	if err := c.cfg.Store.PutOperation(ctx, lead, op); err != nil {
		return nil, mapStoreErr(err)
	}
	if err := c.startAt(op, lead, stopped, nil, req.AlertAt); err != nil {
		// Leave no live operation behind that nothing runs.
		op.Status, op.Error = store.OpFailed, err.Error()
		if perr := c.cfg.Store.PutOperation(ctx, lead, op); perr != nil {
			c.log.Warn("operation that failed to start not recorded", "op", op.ID, "err", perr)
		}
		return nil, err
	}
	c.cfg.Metrics.operation(store.KindEvacuation)
	return op, nil
}

// conflict refuses op when one of its VMs is in a live evacuation: a
// site it evacuates is another's, or another migrates a VM to one of its
// sites now. Evacuations of disjoint VMs run side by side; each keeps
// the others' sites as destinations it never uses. Call it with
// c.starting held.
func (c *Controller) conflict(op *store.Operation) error {
	mine := map[int]bool{}
	for _, s := range op.Sites {
		mine[c.ix.SiteByName[s.Site]] = true
	}
	c.mu.Lock()
	runs := c.sortedRuns()
	c.mu.Unlock()
	for _, r := range runs {
		if r.op.ID == op.ID {
			continue
		}
		for _, s := range r.sites() {
			if mine[c.ix.SiteByName[s]] {
				return fmt.Errorf("%w: operation %s already evacuates site %s (its VMs cannot be in two evacuations); pause or cancel it first", ErrConflict, r.op.ID, s)
			}
		}
		var moving *executor.VMRecord
		c.cfg.World.Do(func() {
			rep := r.exec.Report()
			for i, v := range rep.VMs {
				if v.Status == executor.StatusRunning {
					if h, ok := c.ix.HostByName[v.To]; ok && mine[c.ix.HostSite(h)] {
						moving = &rep.VMs[i]
						return
					}
				}
			}
		})
		if moving != nil {
			return fmt.Errorf("%w: operation %s is migrating VM %s to %s, in a site to evacuate (a VM cannot be in two evacuations); wait for it, or pause or cancel %s first",
				ErrConflict, r.op.ID, moving.Name, moving.To, r.op.ID)
		}
	}
	return nil
}

// sortedRuns returns the live runs in operation id order (c.mu held).
func (c *Controller) sortedRuns() []*opRun {
	out := make([]*opRun, 0, len(c.runs))
	for _, id := range slices.Sorted(maps.Keys(c.runs)) {
		out = append(out, c.runs[id])
	}
	return out
}

// HostDown tells the world and every running evacuation that monitoring
// declared host name down: its VMs are lost and the executors re-plan
// without it.
func (c *Controller) HostDown(name string) error {
	h, ok := c.ix.HostByName[name]
	if !ok {
		return fmt.Errorf("%w: no host %q in the federation", ErrInvalid, name)
	}
	c.mu.Lock()
	runs := c.sortedRuns()
	c.mu.Unlock()
	var err error
	c.cfg.World.Do(func() {
		err = c.cfg.World.HostDown(h)
		for _, r := range runs {
			r.exec.HostDown(h)
		}
	})
	if err != nil {
		return fmt.Errorf("controller: host %s down: %w", name, err)
	}
	c.log.Warn("host declared down", "host", name, "evacuations", len(runs))
	return nil
}

// HostUp tells the world that monitoring saw host name recover: later
// evacuations may use it (the running ones keep it down).
func (c *Controller) HostUp(name string) error {
	h, ok := c.ix.HostByName[name]
	if !ok {
		return fmt.Errorf("%w: no host %q in the federation", ErrInvalid, name)
	}
	var err error
	c.cfg.World.Do(func() { err = c.cfg.World.HostUp(h) })
	if err != nil {
		return fmt.Errorf("controller: host %s up: %w", name, err)
	}
	c.log.Info("host recovered", "host", name)
	return nil
}

func mapStoreErr(err error) error {
	if errors.Is(err, store.ErrNotLeader) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return err
}

func (c *Controller) siteNames() []string {
	out := make([]string, len(c.ix.Fed.Sites))
	for i, s := range c.ix.Fed.Sites {
		out[i] = s.Name
	}
	return out
}

// Control pauses, resumes or cancels evacuation id. Pausing and
// cancelling abort the running migrations (their VMs stay where they are)
// and start no new ones; resuming continues from the journal.
func (c *Controller) Control(ctx context.Context, id string, act Action) (*store.Operation, error) {
	lead, stopped, err := c.leadership()
	if err != nil {
		return nil, err
	}
	op, err := c.cfg.Store.Operation(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: no operation %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	if op.Kind != store.KindEvacuation {
		return nil, fmt.Errorf("%w: operation %s is a %s, not an evacuation", ErrInvalid, id, op.Kind)
	}
	switch act {
	case ActPause, ActCancel:
		if !store.Live(op.Status) || act == ActPause && op.Status == store.OpPaused {
			return nil, fmt.Errorf("%w: operation %s is %s", ErrConflict, id, op.Status)
		}
		status := store.OpPaused
		if act == ActCancel {
			status = store.OpCancelled
		}
		c.mu.Lock()
		r := c.runs[id]
		c.mu.Unlock()
		if r != nil {
			r.stop(status)
			<-r.finished
		}
		op, err = c.cfg.Store.Operation(ctx, id)
		if err != nil {
			return nil, err
		}
		op.Status = status
		if err := c.cfg.Store.PutOperation(ctx, lead, op); err != nil {
			return nil, mapStoreErr(err)
		}
		return op, nil
	case ActResume:
		if op.Status != store.OpPaused {
			return nil, fmt.Errorf("%w: operation %s is %s, not paused", ErrConflict, id, op.Status)
		}
		c.starting.Lock()
		defer c.starting.Unlock()
		if err := c.conflict(op); err != nil {
			return nil, err
		}
		op.Status = store.OpRunning
		if err := c.resumeWith(ctx, op, lead, stopped); err != nil {
			return nil, err
		}
		return op, nil
	}
	return nil, fmt.Errorf("%w: unknown action %q", ErrInvalid, act)
}

// Progress counts an operation's VMs from its journal.
func Progress(steps []store.VMStep) store.Progress {
	var p store.Progress
	p.Total = len(steps)
	for _, st := range steps {
		switch st.State {
		case store.VMMigrated:
			p.Migrated++
		case store.VMStarting, store.VMRunning:
			p.Running++
		case string(executor.StatusFailed):
			p.Failed++
		case string(executor.StatusMissed):
			p.Missed++
		case string(executor.StatusLost):
			p.Lost++
		case string(executor.StatusUnsaved), string(executor.StatusStranded):
			p.Unsaved++
		default:
			p.Pending++
		}
	}
	return p
}
