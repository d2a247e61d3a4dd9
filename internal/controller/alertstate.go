package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
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
// written with the leader's fence.
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
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if err := t.c.cfg.Store.PutPipeline(ctx, lead, w); err != nil {
		return mapStoreErr(err)
	}
	return nil
}

// Load implements pipeline.Journal. It also takes back what the target
// last carried out (the real world's applied deadlines).
func (t *AlertTarget) Load(ctx context.Context) (pipeline.Snapshot, error) {
	states, alerts, err := t.c.cfg.Store.Pipeline(ctx)
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
	t.applied = map[string]time.Time{}
	for _, ws := range snap.Worlds {
		if !ws.Drill {
			maps.Copy(t.applied, ws.Applied)
		}
	}
	return snap, nil
}
