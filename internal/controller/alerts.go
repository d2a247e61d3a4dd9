package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/store"
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
// AlertPipeline it is also the pipeline's Journal (alertstate.go), and
// its applies are write-ahead: before it starts or retargets an
// operation it records what it is about to do (an apply intent, naming
// the operation), and the pipeline's next record writes the outcome, so
// that a leader that dies in between leaves the next one an intent to
// settle from the store instead of a change to apply again.
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
	// settled is the intent carried out whose outcome (and audit entry)
	// the pipeline's next record of the real world writes.
	settled *applyIntent
}

// applyIntent is what the target is about to do to one operation,
// recorded before it acts (store.PutApplyIntent): start it (Start) or
// retarget it. Carried out, the operation evacuates Sites and the
// pipeline has applied Deadlines and Watch, because of Causes.
type applyIntent struct {
	Causes    []pipeline.Cause     `json:"causes,omitempty"`
	Op        string               `json:"op"`
	Start     bool                 `json:"start,omitempty"`
	Sites     []store.SiteDeadline `json:"sites"`
	Deadlines map[string]time.Time `json:"deadlines"`
	Watch     []string             `json:"watch,omitempty"`
	// Audit is the audit entry of the action, written with its outcome.
	Audit store.AuditEntry `json:"audit"`
}

// Apply implements pipeline.Target: ApplyBecause without causes.
func (t *AlertTarget) Apply(deadlines map[string]time.Time, watch []string, abort bool) error {
	return t.ApplyBecause(nil, deadlines, watch, abort)
}

// ApplyBecause implements pipeline.Explained: causes are named in the
// audit entries of the operation started or retargeted.
func (t *AlertTarget) ApplyBecause(causes []pipeline.Cause, deadlines map[string]time.Time, watch []string, abort bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.c
	arrived := time.Now()
	lead, err := t.leadership()
	if err != nil {
		return err
	}
	for _, s := range append(slices.Sorted(maps.Keys(deadlines)), watch...) {
		if _, ok := c.ix.SiteByName[s]; !ok {
			return fmt.Errorf("%w: no site %q in the federation", ErrInvalid, s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	c.starting.Lock()
	defer c.starting.Unlock()
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
		if !operators[s] {
			want[s] = at
		}
	}
	in := applyIntent{Causes: causes, Deadlines: maps.Clone(deadlines), Watch: slices.Clone(watch)}
	if mine != nil {
		err := t.retarget(ctx, lead, mine, want, abort, in)
		if !errors.Is(err, errRunEnded) {
			if err == nil {
				t.applied = maps.Clone(deadlines)
			}
			return err
		}
	}
	now := c.cfg.World.Now()
	var sites []SiteRequest
	started := map[string]time.Time{}
	for _, s := range slices.Sorted(maps.Keys(want)) {
		if old, ok := t.applied[s]; ok && old.Equal(want[s]) {
			continue // carried out already
		}
		sites = append(sites, SiteRequest{Site: s, Deadline: max(want[s].Sub(now), time.Second)})
		started[s] = want[s]
	}
	if len(sites) > 0 {
		in.Op, in.Start, in.Sites = store.NewID("op"), true, siteDeadlines(started)
		in.Audit = actionEntry("EVACUATE", in.Op, "evacuation started: "+within(started, now), causes)
		err := t.carryOut(ctx, lead, &in, func() error {
			_, err := c.evacuate(ctx, EvacuationRequest{ID: in.Op, Sites: sites, By: AlertBy, AlertAt: arrived})
			return err
		})
		if err != nil {
			return err
		}
		c.log.Info("alert started an evacuation", "op", in.Op, "sites", len(sites))
	}
	t.applied = maps.Clone(deadlines)
	return nil
}

// retarget makes the alert pipeline's running evacuation r protect the
// sites of want (in: the intent so far); errRunEnded when it has ended.
func (t *AlertTarget) retarget(ctx context.Context, lead *store.Leadership, r *opRun, want map[string]time.Time, abort bool, in applyIntent) error {
	have := r.deadlines()
	added, moved, withdrawn := siteChanges(have, want)
	if len(added)+len(moved)+len(withdrawn) == 0 {
		return nil
	}
	now := t.c.cfg.World.Now()
	method, what := "RETARGET", []string{}
	if len(added) > 0 {
		what = append(what, "sites added: "+within(pick(want, added), now))
	}
	if len(moved) > 0 {
		what = append(what, "deadlines moved: "+within(pick(want, moved), now))
	}
	if len(withdrawn) > 0 {
		what = append(what, "threats withdrawn: "+strings.Join(withdrawn, ", "))
	}
	if len(want) == 0 {
		method, what = "CANCEL", []string{"evacuation cancelled: " + withdrawnReason + " (" + strings.Join(withdrawn, ", ") + ")"}
	}
	in.Op, in.Sites = r.op.ID, siteDeadlines(want)
	in.Audit = actionEntry(method, in.Op, strings.Join(what, "; "), in.Causes)
	return t.carryOut(ctx, lead, &in, func() error { return r.setDeadlines(ctx, want, abort) })
}

// carryOut records in (a pipeline's target only), then acts. The
// pipeline's next record writes the outcome of an act that succeeded; an
// act that failed withdraws the intent.
func (t *AlertTarget) carryOut(ctx context.Context, lead *store.Leadership, in *applyIntent, act func() error) error {
	c := t.c
	if t.p == nil {
		return act()
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("controller: encode the alert pipeline's intent: %w", err)
	}
	if err := c.cfg.Store.PutApplyIntent(ctx, lead, realWorld, raw); err != nil {
		return mapStoreErr(err)
	}
	if c.failpoint(FPAlertIntent) {
		return errStopped
	}
	if err := act(); err != nil {
		if werr := c.cfg.Store.PutApplyIntent(ctx, lead, realWorld, nil); werr != nil {
			c.log.Warn("the intent of an alert action that failed is not withdrawn; the next leader checks it", "op", in.Op, "err", werr)
		}
		return err
	}
	if c.failpoint(FPAlertApplied) {
		return errStopped
	}
	t.settled = in
	return nil
}

// actionEntry is the audit entry of an action of the alert pipeline on
// operation op: by "pipeline:" and who delivered or decided its last
// cause, what it did and why.
func actionEntry(method, op, what string, causes []pipeline.Cause) store.AuditEntry {
	by := "pipeline"
	if n := len(causes); n > 0 && causes[n-1].By != "" {
		by += ":" + causes[n-1].By
	}
	if len(causes) > 0 {
		why := make([]string, len(causes))
		for i, cs := range causes {
			why[i] = cs.String()
		}
		what += "; because of " + strings.Join(why, ", ")
	}
	return store.AuditEntry{At: time.Now().UTC(), Name: by, Method: method, Path: "/v1/operations/" + op, Status: 200,
		Detail: what, Operation: op}
}

// within describes deadlines from now: "kagawa within 40m0s, kochi
// within 10m24s".
func within(deadlines map[string]time.Time, now time.Time) string {
	parts := make([]string, 0, len(deadlines))
	for _, s := range slices.Sorted(maps.Keys(deadlines)) {
		parts = append(parts, fmt.Sprintf("%s within %s", s, deadlines[s].Sub(now).Round(time.Second)))
	}
	return strings.Join(parts, ", ")
}

// pick returns the deadlines of sites.
func pick(deadlines map[string]time.Time, sites []string) map[string]time.Time {
	out := make(map[string]time.Time, len(sites))
	for _, s := range sites {
		out[s] = deadlines[s]
	}
	return out
}
