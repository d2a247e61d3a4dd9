package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/store"
)

// Names of the alert pipeline's worlds in the store.
const (
	realWorld  = "real"
	drillWorld = "drill"
)

// AlertPipeline builds the alert pipeline that drives this controller:
// cfg with the controller's AlertTarget as its Target and its Journal.
// The pipeline's state (every accepted alert, held sites, operators'
// decisions, what was applied) is recorded in the store by the leader,
// fenced by its term, and every new leader rebuilds the pipeline from it
// before it records or applies anything. Call it at most once per
// controller, before Run.
func (c *Controller) AlertPipeline(cfg pipeline.Config) (*pipeline.Pipeline, error) {
	t := c.AlertTarget()
	cfg.Target, cfg.Journal = t, t
	p, err := pipeline.New(cfg)
	if err != nil {
		return nil, err
	}
	t.p = p
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.alerts != nil {
		return nil, fmt.Errorf("controller: %w: the controller already has an alert pipeline", ErrInvalid)
	}
	c.alerts = t
	return p, nil
}

// restoreAlerts rebuilds the alert pipeline from the store in the term
// lead, once the live operations are resumed (so that the pipeline finds
// the evacuation it drives).
func (c *Controller) restoreAlerts(ctx context.Context, lead *store.Leadership) error {
	c.mu.Lock()
	t := c.alerts
	c.mu.Unlock()
	if t == nil {
		return nil
	}
	if err := t.p.Restore(ctx); err != nil {
		return fmt.Errorf("restore the alert pipeline: %w", err)
	}
	t.mu.Lock()
	t.restored = lead.Revision()
	t.mu.Unlock()
	return nil
}

// leadership returns the term the target may record and act in (t.mu
// held): ErrNotLeader unless c leads and, for a pipeline's target, the
// pipeline was restored in this term.
func (t *AlertTarget) leadership() (*store.Leadership, error) {
	lead, _, err := t.c.leadership()
	if err != nil {
		return nil, err
	}
	if t.p != nil && t.restored != lead.Revision() {
		return nil, fmt.Errorf("%w: the alert pipeline's state is being restored after a leader change; retry shortly", ErrNotLeader)
	}
	return lead, nil
}

// Record implements pipeline.Journal: one change of the pipeline's state,
// written with the leader's fence, and the audit entries of the alerts
// accepted and the decisions made since the last record. A record of the
// real world after an action carried out is its outcome: it deletes the
// action's intent and writes its audit entry.
func (t *AlertTarget) Record(r pipeline.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	lead, err := t.leadership()
	if err != nil {
		return err
	}
	w := store.PipelineWrite{World: realWorld, Alerts: map[string]json.RawMessage{}, Forget: r.Forgotten}
	if r.World.Drill {
		w.World = drillWorld
	}
	if w.State, err = json.Marshal(r.World); err != nil {
		return fmt.Errorf("controller: encode the alert pipeline's state: %w", err)
	}
	for _, a := range r.Alerts {
		if w.Alerts[a.Thread+"/"+a.ID], err = json.Marshal(a); err != nil {
			return fmt.Errorf("controller: encode alert %s/%s: %w", a.Thread, a.ID, err)
		}
	}
	for _, cs := range r.Causes {
		w.Audit = append(w.Audit, causeEntry(cs))
	}
	settles := !r.World.Drill && t.settled != nil
	if settles {
		w.Settled, w.Audit = true, append(w.Audit, t.settled.Audit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := t.c.cfg.Store.PutPipeline(ctx, lead, w); err != nil {
		return mapStoreErr(err)
	}
	if settles {
		t.settled = nil
	}
	return nil
}

// causeEntry is the audit entry of an alert accepted or an operator's
// decision.
func causeEntry(cs pipeline.Cause) store.AuditEntry {
	world := realWorld
	if cs.Drill {
		world = drillWorld
	}
	if cs.Site != "" {
		method := "DECLINE"
		if cs.Approved {
			method = "APPROVE"
		}
		return store.AuditEntry{At: cs.At, Name: cs.By, Method: method, Path: "approvals/" + world + "/" + cs.Site, Status: 200, Detail: cs.String()}
	}
	return store.AuditEntry{At: cs.At, Name: cs.By, Method: "ALERT", Path: "alerts/" + world + "/" + cs.Thread + "/" + cs.Version,
		Status: 202, Detail: "accepted " + cs.String()}
}

// Load implements pipeline.Journal. It first settles the apply intent a
// dead leader left (settle), then takes back what the target last
// carried out: the real world's applied deadlines, and its watched sites
// (which the running evacuations avoid again).
func (t *AlertTarget) Load(ctx context.Context) (pipeline.Snapshot, error) {
	states, alerts, err := t.c.cfg.Store.Pipeline(ctx)
	if err != nil {
		return pipeline.Snapshot{}, err
	}
	intents, err := t.c.cfg.Store.ApplyIntents(ctx)
	if err != nil {
		return pipeline.Snapshot{}, err
	}
	var snap pipeline.Snapshot
	for name, raw := range states {
		var ws pipeline.WorldState
		if err := json.Unmarshal(raw, &ws); err != nil {
			return pipeline.Snapshot{}, fmt.Errorf("controller: decode the alert pipeline's %s state: %w", name, err)
		}
		snap.Worlds = append(snap.Worlds, ws)
	}
	for i, raw := range alerts {
		var a pipeline.Received
		if err := json.Unmarshal(raw, &a); err != nil {
			return pipeline.Snapshot{}, fmt.Errorf("controller: decode recorded alert %d: %w", i, err)
		}
		snap.Alerts = append(snap.Alerts, a)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settled = nil
	if raw, ok := intents[realWorld]; ok {
		if err := t.settle(ctx, raw, &snap); err != nil {
			return pipeline.Snapshot{}, err
		}
	}
	t.applied = map[string]time.Time{}
	watch := map[string]bool{}
	for _, ws := range snap.Worlds {
		if !ws.Drill {
			maps.Copy(t.applied, ws.Applied)
			for _, s := range ws.Watch {
				watch[s] = true
			}
		}
	}
	t.c.mu.Lock()
	t.c.alertWatch = watch
	t.c.mu.Unlock()
	t.c.rewatch()
	return snap, nil
}

// settle resolves the apply intent raw that a leader recorded and died
// before recording its outcome. It was carried out when the operation it
// started exists (live or ended since), or the one it retargeted has its
// sites: then what it applied is what the real world's state in snap has
// applied, no cause is left to apply, and its audit entry is written.
// Otherwise nothing of it happened, and the pipeline applies its causes
// again. The outcome is recorded (fenced) before the pipeline is rebuilt.
func (t *AlertTarget) settle(ctx context.Context, raw json.RawMessage, snap *pipeline.Snapshot) error {
	lead, _, err := t.c.leadership()
	if err != nil {
		return err
	}
	var in applyIntent
	if err := json.Unmarshal(raw, &in); err != nil {
		return fmt.Errorf("controller: decode the alert pipeline's apply intent: %w", err)
	}
	done, err := t.carriedOut(ctx, &in)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(snap.Worlds, func(ws pipeline.WorldState) bool { return !ws.Drill })
	if i < 0 {
		snap.Worlds = append(snap.Worlds, pipeline.WorldState{})
		i = len(snap.Worlds) - 1
	}
	ws := &snap.Worlds[i]
	w := store.PipelineWrite{World: realWorld, Settled: true}
	if done {
		ws.Applied, ws.Watch, ws.Causes = in.Deadlines, in.Watch, nil
		w.Audit = []store.AuditEntry{in.Audit}
	}
	if w.State, err = json.Marshal(ws); err != nil {
		return fmt.Errorf("controller: encode the alert pipeline's state: %w", err)
	}
	if err := t.c.cfg.Store.PutPipeline(ctx, lead, w); err != nil {
		return mapStoreErr(err)
	}
	t.c.log.Info("alert pipeline: the previous leader's intent settled", "op", in.Op, "start", in.Start, "carried_out", done)
	return nil
}

// carriedOut reports whether the intent's operation was started, or
// retargeted to its sites.
func (t *AlertTarget) carriedOut(ctx context.Context, in *applyIntent) (bool, error) {
	op, err := t.c.cfg.Store.Operation(ctx, in.Op)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("controller: the operation of the alert pipeline's intent: %w", err)
	}
	return in.Start || slices.EqualFunc(op.Sites, in.Sites, func(a, b store.SiteDeadline) bool {
		return a.Site == b.Site && a.Deadline.Equal(b.Deadline)
	}), nil
}
