package controller

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// AlertTarget returns the controller as the alert pipeline's target
// (pipeline.Target): when the pipeline wants sites evacuated and no
// evacuation runs, it starts one of exactly those sites by those deadlines.
// While one runs that covers the sites, later changes are not passed on
// (a limitation: moved deadlines and withdrawn threats need an operator,
// who can pause or cancel it); sites it does not cover are refused with
// ErrConflict, and the pipeline retries them with the next alert.
func (c *Controller) AlertTarget() *AlertTarget { return &AlertTarget{c: c} }

// AlertTarget adapts a Controller to the alert pipeline.
type AlertTarget struct{ c *Controller }

// Apply implements pipeline.Target.
func (t *AlertTarget) Apply(deadlines map[string]time.Time, _ []string, _ bool) error {
	if len(deadlines) == 0 {
		return nil
	}
	c := t.c
	arrived := time.Now()
	c.mu.Lock()
	for _, r := range c.runs {
		covered := true
		for site := range deadlines {
			covered = covered && slices.Contains(r.sites(), site)
		}
		c.mu.Unlock()
		if covered {
			return nil
		}
		return fmt.Errorf("%w: operation %s runs; the alert's other sites wait for it", ErrConflict, r.op.ID)
	}
	c.mu.Unlock()
	now := c.cfg.World.Now()
	var sites []SiteRequest
	for _, s := range slices.Sorted(mapKeys(deadlines)) {
		sites = append(sites, SiteRequest{Site: s, Deadline: max(deadlines[s].Sub(now), time.Second)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	op, err := c.Evacuate(ctx, EvacuationRequest{Sites: sites, By: "alert pipeline", AlertAt: arrived})
	if err != nil {
		return err
	}
	c.log.Info("alert started an evacuation", "op", op.ID, "sites", len(sites))
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
