package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/planner"
	"github.com/refuge-project/refuge/internal/store"
)

// Status reports the federation's state as the hypervisors tell it.
func (c *Controller) Status(ctx context.Context) (*Status, error) {
	leader, err := c.cfg.Store.Leader(ctx)
	if err != nil {
		return nil, err
	}
	ops, err := c.cfg.Store.Operations(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Controller: c.cfg.ID, Leader: leader, IsLeader: c.IsLeader(), Time: c.cfg.World.Now(),
		Operations: []OperationRef{}}
	placement, down := c.State()
	st.Sites = make([]SiteStatus, len(c.ix.Fed.Sites))
	for i, s := range c.ix.Fed.Sites {
		st.Sites[i].Name = s.Name
	}
	for h, ref := range c.ix.Hosts {
		st.Sites[ref.Site].Hosts++
		if !down[h] {
			st.Sites[ref.Site].HostsUp++
		}
	}
	for _, h := range placement {
		st.VMs++
		if h < 0 {
			st.VMsLost++
			continue
		}
		st.Sites[c.ix.HostSite(h)].VMs++
	}
	for _, op := range ops {
		if !store.Live(op.Status) {
			continue
		}
		st.Operations = append(st.Operations, OperationRef{ID: op.ID, Kind: op.Kind, Status: op.Status})
		for _, sd := range op.Sites {
			if s, ok := c.ix.SiteByName[sd.Site]; ok {
				d := sd.Deadline
				st.Sites[s].Deadline, st.Sites[s].Operation = &d, op.ID
			}
		}
	}
	return st, nil
}

// State returns where VMs run and which hosts are down.
func (c *Controller) State() (placement []int, down []bool) {
	c.cfg.World.Do(func() { placement, down = c.cfg.World.State() })
	return placement, down
}

// HostOf returns the host VM v runs on now (-1: lost).
func (c *Controller) HostOf(v int) int {
	h := -1
	c.cfg.World.Do(func() { h = c.cfg.World.Host(v) })
	return h
}

// Plan computes, without acting, the plan that evacuating these sites
// would follow now (any controller may answer).
func (c *Controller) Plan(sites []SiteRequest) (*PlanSummary, error) {
	deadlines, err := c.deadlines(sites)
	if err != nil {
		return nil, err
	}
	placement, down := c.State()
	links := make([]float64, len(c.ix.Fed.Links))
	for l := range links {
		links[l] = c.ix.Fed.Links[l].BandwidthMbps
	}
	p, err := planner.Compute(planner.Input{Index: c.ix, Policy: c.cfg.Policy, Deadlines: deadlines,
		Placement: placement, HostDown: down, LinkMbps: links})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &PlanSummary{AtRisk: p.AtRisk, Moves: len(p.Moves), Unsaved: len(p.Unsaved), UpperBound: p.UpperBound,
		LowerBoundS: p.LowerBound.Seconds(), MakespanS: p.Makespan.Seconds(), Bottleneck: p.Bottleneck,
		Warnings: p.Warnings, Plan: p}, nil
}

func (c *Controller) deadlines(sites []SiteRequest) (map[int]time.Duration, error) {
	if len(sites) == 0 {
		return nil, fmt.Errorf("%w: no site given", ErrInvalid)
	}
	out := map[int]time.Duration{}
	for _, s := range sites {
		i, ok := c.ix.SiteByName[s.Site]
		if !ok {
			return nil, fmt.Errorf("%w: no site %q in the federation (sites: %v)", ErrInvalid, s.Site, c.siteNames())
		}
		out[i] = s.Deadline
	}
	return out, nil
}

// Drill plays an evacuation of the sites on a simulated copy of the
// federation (its VMs where they run now) and records the outcome as an
// operation; nothing real moves. It returns the operation at once.
func (c *Controller) Drill(ctx context.Context, sites []SiteRequest, by string) (*store.Operation, error) {
	lead, _, err := c.leadership()
	if err != nil {
		return nil, err
	}
	if _, err := c.deadlines(sites); err != nil {
		return nil, err
	}
	placement, _ := c.State()
	fed := copyFederation(c.ix, placement)
	sc := &model.Scenario{Name: "drill"}
	op := &store.Operation{ID: store.NewID("drill"), Kind: store.KindDrill, Status: store.OpRunning,
		Policy: c.cfg.Policy.Name, CreatedBy: by, Created: time.Now().UTC(), Leader: c.cfg.ID}
	now := c.cfg.World.Now()
	for _, s := range sites {
		sc.Threats = append(sc.Threats, model.Threat{Site: s.Site, Deadline: model.Duration(s.Deadline)})
		op.Sites = append(op.Sites, store.SiteDeadline{Site: s.Site, Deadline: now.Add(s.Deadline)})
	}
	if err := c.cfg.Store.PutOperation(ctx, lead, op); err != nil {
		return nil, mapStoreErr(err)
	}
	c.cfg.Metrics.operation(store.KindDrill)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		done := *op
		res, err := evacsim.Run(evacsim.Options{Federation: fed, Scenario: sc, Policy: c.cfg.Policy})
		if err != nil {
			done.Status, done.Error = store.OpFailed, err.Error()
		} else {
			done.Status = store.OpSucceeded
			done.Result, _ = json.Marshal(res.Summary)
			done.Progress = store.Progress{Total: res.Summary.VMsAtRisk, Migrated: res.Summary.VMsEvacuated,
				Missed: res.Summary.VMsMissedDeadline}
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		if err := c.cfg.Store.PutOperation(ctx, lead, &done); err != nil && !errors.Is(err, store.ErrNotLeader) {
			c.log.Warn("drill: outcome not written", "op", done.ID, "err", err)
		}
	}()
	return op, nil
}

// copyFederation returns the federation with each VM on the host it runs
// on now (lost VMs left out).
func copyFederation(ix *model.Index, placement []int) *model.Federation {
	f := *ix.Fed
	f.VMs = nil
	for v, vm := range ix.Fed.VMs {
		if h := placement[v]; h >= 0 {
			vm.Host = ix.Host(h).Name
			f.VMs = append(f.VMs, vm)
		}
	}
	return &f
}
