package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/pipeline"
)

// AlertBy is who the operations the alert pipeline starts are created by.
const AlertBy = "alert pipeline"

// AlertTarget returns the controller as the alert pipeline's target
// (pipeline.Target). The pipeline's live evacuation follows its alerts:
// a site newly threatened joins it, a moved deadline moves, a withdrawn
// threat is withdrawn (its running migrations finish, or are aborted
// when the pipeline says so) and the evacuation ends, cancelled, when no
// threat is left. With no such evacuation live, a site wanted anew (or
// by a new deadline) starts one. Sites that an operator's evacuation
// covers are left to it. Sites the alerts threaten without evacuating
// (watch) receive no VM from it. Call it once per controller: the target
// remembers what it applied.
func (c *Controller) AlertTarget() *AlertTarget {
	return &AlertTarget{c: c, applied: map[string]time.Time{}}
}

// AlertTarget adapts a Controller to the alert pipeline. Used through
// AlertPipeline it is also the pipeline's Journal (alertstate.go).
type AlertTarget struct {
	c *Controller
	// p is the pipeline whose state the target records and restores
	// (nil: a bare target, which records nothing).
	p *pipeline.Pipeline

	mu      sync.Mutex
	applied map[string]time.Time // the deadlines last carried out
	// restored is the leadership (its revision) in which p was last
	// rebuilt from the store; in another, p neither records nor acts.
	restored int64
}

// Apply implements pipeline.Target.
func (t *AlertTarget) Apply(deadlines map[string]time.Time, watch []string, abort bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.c
	arrived := time.Now()
	if _, err := t.leadership(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	c.starting.Lock()
	defer c.starting.Unlock()
	for _, s := range watch {
		if _, ok := c.ix.SiteByName[s]; !ok {
			return fmt.Errorf("%w: no site %q in the federation", ErrInvalid, s)
		}
	}
	c.mu.Lock()
	c.alertWatch = map[string]bool{}
	for _, s := range watch {
		c.alertWatch[s] = true
	}
	runs := c.sortedRuns()
	c.mu.Unlock()
	defer c.rewatch()
	var mine *opRun
	operators := map[string]bool{} // sites operators' evacuations cover
	for _, r := range runs {
		if r.op.CreatedBy == AlertBy && mine == nil {
			mine = r
			continue
		}
		for _, s := range r.sites() {
			operators[s] = true
		}
	}
	want := map[string]time.Time{}
	for s, at := range deadlines {
		if _, ok := c.ix.SiteByName[s]; !ok {
			return fmt.Errorf("%w: no site %q in the federation", ErrInvalid, s)
		}
		if !operators[s] {
			want[s] = at
		}
	}
	if mine != nil {
		err := mine.setDeadlines(ctx, want, abort)
		if !errors.Is(err, errRunEnded) {
			if err == nil {
				t.applied = maps.Clone(deadlines)
			}
			return err
		}
	}
	now := c.cfg.World.Now()
	var sites []SiteRequest
	for _, s := range slices.Sorted(maps.Keys(want)) {
		if old, ok := t.applied[s]; ok && old.Equal(want[s]) {
			continue // carried out already
		}
		sites = append(sites, SiteRequest{Site: s, Deadline: max(want[s].Sub(now), time.Second)})
	}
	if len(sites) > 0 {
		op, err := c.evacuate(ctx, EvacuationRequest{Sites: sites, By: AlertBy, AlertAt: arrived})
		if err != nil {
			return err
		}
		c.log.Info("alert started an evacuation", "op", op.ID, "sites", len(sites))
	}
	t.applied = maps.Clone(deadlines)
	return nil
}
