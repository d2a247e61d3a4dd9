package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/store"
)

// opRun is a live operation on the leader: its executor and journal.
type opRun struct {
	c    *Controller
	op   store.Operation
	lead *store.Leadership
	j    *journal
	exec *executor.Executor
	// start is the executor's time origin.
	start time.Time
	// finished is closed once the run has ended and written its outcome.
	finished chan struct{}
	// abandoned is closed when the controller steps down.
	abandoned chan struct{}

	mu         sync.Mutex
	stopStatus string // set by stop: paused or cancelled; or when every threat was withdrawn
	stopReason string
	// targets are the sites evacuated now and their deadlines (alert
	// updates move and withdraw them).
	targets []store.SiteDeadline
	// watched are the sites its executor has at watch level (applyWatch).
	watched map[int]bool
}

// sites names the sites the run evacuates now.
func (r *opRun) sites() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.targets))
	for i, s := range r.targets {
		out[i] = s.Site
	}
	return out
}

// deadlines returns the run's sites and deadlines.
func (r *opRun) deadlines() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.targets))
	for _, s := range r.targets {
		out[s.Site] = s.Deadline
	}
	return out
}

// prepareTimeout bounds Config.Prepare.
const prepareTimeout = 30 * time.Second

// prepare runs Config.Prepare for op, waiting for it at most
// Config.PrepareWait.
func (c *Controller) prepare(op *store.Operation) {
	if c.cfg.Prepare == nil {
		return
	}
	sites := make([]string, len(op.Sites))
	for i, s := range op.Sites {
		sites[i] = s.Site
	}
	wait := c.cfg.PrepareWait
	if wait <= 0 {
		wait = 2 * time.Second
	}
	done := make(chan struct{})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
		defer cancel()
		if err := c.cfg.Prepare(ctx, op.ID, sites); err != nil {
			c.log.Warn("preparing the evacuation failed; it goes on", "op", op.ID, "err", err)
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.log.Info("preparing the evacuation takes longer; it starts meanwhile", "op", op.ID, "waited", wait)
	}
}

// start runs op's evacuation: an executor from the hypervisors' current
// state, journaled under lead.
func (c *Controller) start(op *store.Operation, lead *store.Leadership, stopped *atomic.Bool, resume *executor.Resume) error {
	return c.startAt(op, lead, stopped, resume, time.Time{})
}

// startAt is start for an evacuation an alert that arrived at alertAt
// started.
func (c *Controller) startAt(op *store.Operation, lead *store.Leadership, stopped *atomic.Bool, resume *executor.Resume, alertAt time.Time) error {
	w := c.cfg.World
	r := &opRun{c: c, op: *op, lead: lead, finished: make(chan struct{}), abandoned: make(chan struct{}),
		j: &journal{c: c, op: op.ID, lead: lead, stopped: stopped, alertAt: alertAt}, targets: slices.Clone(op.Sites)}
	c.mu.Lock()
	runs := append(c.sortedRuns(), r)
	aw := maps.Clone(c.alertWatch)
	ledger := c.ledger
	c.mu.Unlock()
	// The other live evacuations' sites receive no VM from this one, and
	// this one's none from them (see watchSet).
	r.watched = c.watchSet(r, runs, aw)
	watch := make([]bool, len(c.ix.Fed.Sites))
	for s := range r.watched {
		watch[s] = true
	}
	pol := c.cfg.Policy
	pol.WatchSites = model.WatchExclude
	c.prepare(op)
	var err error
	w.Do(func() {
		placement, down := w.State()
		start := w.Clock().Now()
		r.start = start
		deadlines := map[int]time.Duration{}
		for _, s := range op.Sites {
			deadlines[c.ix.SiteByName[s.Site]] = s.Deadline.Sub(start)
		}
		r.exec, err = executor.New(executor.Config{
			Index: c.ix, Policy: pol, Driver: w.Driver(), Clock: w.Clock(), Start: start,
			Placement: placement, HostDown: down, Watch: watch, Logger: c.log.With("op", op.ID),
			Metrics: c.cfg.Metrics.executor(), Journal: r.j, Resume: resume, Switcher: c.cfg.Switcher,
			Ledger: ledger,
		})
		if err != nil {
			return
		}
		if resume == nil {
			// Journal every VM at risk as pending, so that progress counts
			// them all from the start.
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			defer cancel()
			if err = c.cfg.Store.PutSteps(ctx, lead, op.ID, c.pendingSteps(placement, deadlines, nil)...); err != nil {
				err = mapStoreErr(err)
				return
			}
		}
		for s, d := range deadlines {
			w.SiteDeadline(s, start.Add(d), true)
		}
		if err = r.exec.Start(deadlines); err != nil {
			return
		}
		c.applyWatch(runs, aw)
	})
	if err != nil {
		return fmt.Errorf("controller: start %s: %w", op.ID, err)
	}
	c.mu.Lock()
	if c.stopped != stopped || stopped.Load() {
		// The term it was started in ended meanwhile: stepDown did not
		// see it, and the next leader resumes the operation.
		c.mu.Unlock()
		close(r.abandoned)
		w.Do(r.exec.Stop)
		return fmt.Errorf("controller: start %s: %w: leadership lost while starting", op.ID, ErrNotLeader)
	}
	c.runs[op.ID] = r
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(r.finished)
		select {
		case <-r.exec.Done():
			r.finish()
			w.Do(r.exec.Close)
		case <-r.abandoned:
		}
	}()
	return nil
}

// pendingSteps are the journal entries of the VMs placed in these sites,
// pending, but for those journaled already.
func (c *Controller) pendingSteps(placement []int, sites map[int]time.Duration, journaled map[string]bool) []store.VMStep {
	var steps []store.VMStep
	for v, h := range placement {
		if h < 0 || journaled[c.ix.Fed.VMs[v].Name] {
			continue
		}
		if _, ok := sites[c.ix.HostSite(h)]; ok {
			steps = append(steps, store.VMStep{VM: c.ix.Fed.VMs[v].Name, State: store.VMPending, From: c.ix.Host(h).Name})
		}
	}
	return steps
}

// stop ends the run on the operator's request (status paused or
// cancelled): running migrations are aborted.
func (r *opRun) stop(status string) {
	r.mu.Lock()
	r.stopStatus = status
	r.mu.Unlock()
	r.c.cfg.World.Do(r.exec.Stop)
}

// abandon ends the run when its controller steps down: the executor takes
// no further step (its journal refuses them), nothing is written.
func (r *opRun) abandon() {
	r.j.stopped.Store(true)
	close(r.abandoned)
	r.c.cfg.World.Do(r.exec.Stop)
}

// finish writes the run's outcome: each at-risk VM's final state and the
// operation's status and progress. A fenced or abandoned run writes
// nothing: the next leader resumes it.
func (r *opRun) finish() {
	c := r.c
	defer func() {
		c.mu.Lock()
		if c.runs[r.op.ID] == r {
			delete(c.runs, r.op.ID)
		}
		c.mu.Unlock()
		c.rewatch() // its sites may receive the other evacuations' VMs again
	}()
	if r.j.fenced.Load() || r.j.stopped.Load() {
		return
	}
	var rep executor.Report
	c.cfg.World.Do(func() { rep = r.exec.Report() })
	r.mu.Lock()
	status, reason := r.stopStatus, r.stopReason
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps, err := c.cfg.Store.Steps(ctx, r.op.ID)
	if err != nil {
		c.log.Error("finish: read journal", "op", r.op.ID, "err", err)
		return
	}
	recs := map[string]*executor.VMRecord{}
	for i := range rep.VMs {
		recs[rep.VMs[i].Name] = &rep.VMs[i]
	}
	var final []store.VMStep
	for i := range steps {
		st := &steps[i]
		rec := recs[st.VM]
		if rec == nil || st.State == store.VMMigrated {
			continue
		}
		state := string(rec.Status)
		switch {
		case rec.Status == executor.StatusMigrated:
			state = store.VMMigrated
		case status == store.OpPaused && rec.Status != executor.StatusLost && rec.Status != executor.StatusFailed:
			state = store.VMPending // resumable
		}
		if state != st.State || rec.Reason != st.Error {
			st.State, st.Error, st.Attempt = state, rec.Reason, rec.Attempts
			if rec.To != "" {
				st.To = rec.To
			}
			final = append(final, *st)
		}
	}
	if err := c.cfg.Store.PutSteps(ctx, r.lead, r.op.ID, final...); err != nil {
		c.log.Warn("finish: journal not written", "op", r.op.ID, "err", err)
		return
	}
	op, err := c.cfg.Store.Operation(ctx, r.op.ID)
	if err != nil {
		c.log.Error("finish: read operation", "op", r.op.ID, "err", err)
		return
	}
	if status == "" {
		status = store.OpSucceeded
	}
	if steps, err = c.cfg.Store.Steps(ctx, r.op.ID); err == nil {
		op.Progress = Progress(steps)
	}
	if status == store.OpSucceeded && op.Progress.Migrated == 0 && op.Progress.Total > 0 {
		status, op.Error = store.OpFailed, "no VM could be migrated"
	}
	if reason != "" {
		op.Error = reason
	}
	op.Status = status
	if err := c.cfg.Store.PutOperation(ctx, r.lead, op); err != nil {
		c.log.Warn("finish: operation not written", "op", r.op.ID, "err", err)
	}
	c.log.Info("operation ended", "op", op.ID, "status", op.Status, "migrated", op.Progress.Migrated)
}

// resume continues op after a leader change.
func (c *Controller) resume(ctx context.Context, op *store.Operation) error {
	lead, stopped, err := c.leadership()
	if err != nil {
		return err
	}
	return c.resumeWith(ctx, op, lead, stopped)
}

// resumeWith reads op's journal and starts an executor that carries over
// attempts, never migrates a migrated VM again, and leaves alone the VMs
// whose last step is in doubt (a migration a dead leader started) until
// the hypervisors have finished them: a watcher settles each one, from
// where the VM then runs.
func (c *Controller) resumeWith(ctx context.Context, op *store.Operation, lead *store.Leadership, stopped *atomic.Bool) error {
	steps, err := c.cfg.Store.Steps(ctx, op.ID)
	if err != nil {
		return err
	}
	res := &executor.Resume{Attempts: map[string]int{}, Migrated: map[string]bool{}, InFlight: map[string]string{}}
	var doubt []store.VMStep
	for _, st := range steps {
		if _, ok := c.ix.VMByName[st.VM]; !ok {
			return fmt.Errorf("journal of %s names unknown VM %q", op.ID, st.VM)
		}
		if st.Attempt > 0 {
			res.Attempts[st.VM] = st.Attempt
		}
		switch st.State {
		case store.VMMigrated:
			res.Migrated[st.VM] = true
		case store.VMStarting, store.VMRunning:
			res.InFlight[st.VM] = st.To
			doubt = append(doubt, st)
		}
	}
	op.Leader, op.Status = c.cfg.ID, store.OpRunning
	op.Resumes++
	if err := c.start(op, lead, stopped, res); err != nil {
		return err
	}
	if err := c.cfg.Store.PutOperation(ctx, lead, op); err != nil {
		return mapStoreErr(err)
	}
	c.mu.Lock()
	r := c.runs[op.ID]
	c.mu.Unlock()
	if r != nil && len(doubt) > 0 {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			r.settle(doubt)
		}()
	}
	c.log.Info("operation resumed", "op", op.ID, "in_doubt", len(doubt), "migrated", len(res.Migrated))
	return nil
}

// settle waits for the in-doubt VMs' migrations to end in the
// hypervisors, journals where each VM ended and tells the executor.
func (r *opRun) settle(doubt []store.VMStep) {
	c := r.c
	w := c.cfg.World
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(doubt) > 0 {
		select {
		case <-tick.C:
		case <-r.abandoned:
			return
		case <-r.finished:
			return
		}
		var ended []store.VMStep
		w.Do(func() {
			placement, _ := w.State()
			kept := doubt[:0]
			for _, st := range doubt {
				v := c.ix.VMByName[st.VM]
				if w.InFlight(v) {
					kept = append(kept, st)
					continue
				}
				st.State = store.VMPending
				if h := placement[v]; h >= 0 && c.ix.Host(h).Name == st.To {
					st.State = store.VMMigrated
				} else if h >= 0 {
					st.From = c.ix.Host(h).Name
				} else {
					st.State, st.Error = string(executor.StatusLost), "lost while migrating"
				}
				ended = append(ended, st)
			}
			doubt = kept
		})
		if len(ended) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		for _, st := range ended {
			c.log.Debug("settled", "vm", st.VM, "state", st.State, "from", st.From)
		}
		err := c.cfg.Store.PutSteps(ctx, r.lead, r.op.ID, ended...)
		cancel()
		if err != nil || r.j.stopped.Load() {
			c.log.Warn("settle: not journaled; the next leader settles", "op", r.op.ID, "err", err)
			return
		}
		w.Do(func() {
			placement, _ := w.State()
			for _, st := range ended {
				host := ""
				if h := placement[c.ix.VMByName[st.VM]]; h >= 0 {
					host = c.ix.Host(h).Name
				}
				if err := r.exec.Settle(st.VM, host); err != nil {
					c.log.Warn("settle", "vm", st.VM, "err", err)
				}
			}
		})
	}
}

// withdrawnReason is the error of an evacuation whose every threat was
// withdrawn.
const withdrawnReason = "every threat was withdrawn"

// errRunEnded: the run's executor has finished; a change starts a new
// evacuation.
var errRunEnded = errors.New("evacuation ended")

// siteChanges compares the sites evacuated by the deadlines have with
// those of want: the sites added, those whose deadline moved and those
// withdrawn, each sorted.
func siteChanges(have, want map[string]time.Time) (added, moved, withdrawn []string) {
	for _, s := range slices.Sorted(maps.Keys(want)) {
		if at, ok := have[s]; !ok {
			added = append(added, s)
		} else if !at.Equal(want[s]) {
			moved = append(moved, s)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[s]; !ok {
			withdrawn = append(withdrawn, s)
		}
	}
	return added, moved, withdrawn
}

// siteDeadlines are deadlines as an operation's sites, sorted by site.
func siteDeadlines(deadlines map[string]time.Time) []store.SiteDeadline {
	var out []store.SiteDeadline
	for _, s := range slices.Sorted(maps.Keys(deadlines)) {
		out = append(out, store.SiteDeadline{Site: s, Deadline: deadlines[s]})
	}
	return out
}

// setDeadlines makes the run protect exactly these sites by these
// deadlines (an alert's update): new sites and moved deadlines go to the
// executor (it re-plans, and aborts migrations towards a newly threatened
// site), sites left out are withdrawn (their running migrations finish,
// or are aborted with abort). It writes the operation's new sites and
// journals the new sites' VMs; when no site is left the run ends,
// cancelled. The other live evacuations stop sending VMs to the new
// sites.
func (r *opRun) setDeadlines(ctx context.Context, want map[string]time.Time, abort bool) error {
	c := r.c
	added, moved, withdrawn := siteChanges(r.deadlines(), want)
	if len(added)+len(moved)+len(withdrawn) == 0 {
		return nil
	}
	w := c.cfg.World
	ended := false
	var placement []int
	w.Do(func() {
		select {
		case <-r.exec.Done():
			ended = true
		default:
			placement, _ = w.State()
		}
	})
	if ended {
		return errRunEnded
	}
	op, err := c.cfg.Store.Operation(ctx, r.op.ID)
	if err != nil {
		return err
	}
	op.Sites = siteDeadlines(want)
	if len(added) > 0 {
		steps, err := c.cfg.Store.Steps(ctx, r.op.ID)
		if err != nil {
			return err
		}
		journaled := map[string]bool{}
		for _, st := range steps {
			journaled[st.VM] = true
		}
		sites := map[int]time.Duration{}
		for _, s := range added {
			sites[c.ix.SiteByName[s]] = 0
		}
		if err := c.cfg.Store.PutSteps(ctx, r.lead, r.op.ID, c.pendingSteps(placement, sites, journaled)...); err != nil {
			return mapStoreErr(err)
		}
	}
	if err := c.cfg.Store.PutOperation(ctx, r.lead, op); err != nil {
		return mapStoreErr(err)
	}
	r.mu.Lock()
	r.targets = op.Sites
	switch {
	case len(op.Sites) == 0:
		r.stopStatus, r.stopReason = store.OpCancelled, withdrawnReason
	case r.stopReason == withdrawnReason:
		r.stopStatus, r.stopReason = "", "" // threatened again before it ended
	}
	r.mu.Unlock()
	w.Do(func() {
		for _, s := range append(added, moved...) {
			i := c.ix.SiteByName[s]
			w.SiteDeadline(i, want[s], true)
			r.exec.SetDeadline(i, want[s].Sub(r.start))
		}
		for _, s := range withdrawn {
			i := c.ix.SiteByName[s]
			w.SiteDeadline(i, time.Time{}, false)
			r.exec.CancelThreat(i, abort)
		}
	})
	c.rewatch()
	c.log.Info("evacuation retargeted", "op", r.op.ID, "added", added, "moved", moved, "withdrawn", withdrawn)
	return nil
}
