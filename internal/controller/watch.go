package controller

import (
	"maps"
	"slices"
)

// watchSet is the sites r's executor keeps at watch level, which the
// controller's policy excludes as destinations: the sites the other live
// evacuations (runs) empty, and, for the alert pipeline's evacuation, the
// sites its alerts threaten without evacuating (alertWatch).
func (c *Controller) watchSet(r *opRun, runs []*opRun, alertWatch map[string]bool) map[int]bool {
	out := map[int]bool{}
	for _, o := range runs {
		if o == r {
			continue
		}
		for _, s := range o.sites() {
			out[c.ix.SiteByName[s]] = true
		}
	}
	if r.op.CreatedBy == AlertBy {
		own := r.sites()
		for s := range alertWatch {
			if !slices.Contains(own, s) {
				out[c.ix.SiteByName[s]] = true
			}
		}
	}
	return out
}

// applyWatch brings each run's executor to its watch set (inside Do):
// sites newly watched first, so that no site another evacuation empties
// receives VMs in between.
func (c *Controller) applyWatch(runs []*opRun, alertWatch map[string]bool) {
	for _, r := range runs {
		want := c.watchSet(r, runs, alertWatch)
		r.mu.Lock()
		have := r.watched
		r.watched = want
		r.mu.Unlock()
		for _, s := range slices.Sorted(maps.Keys(want)) {
			if !have[s] {
				r.exec.SetWatch(s, true)
			}
		}
		for _, s := range slices.Sorted(maps.Keys(have)) {
			if !want[s] {
				r.exec.SetWatch(s, false)
			}
		}
	}
}

// rewatch is applyWatch over the live runs.
func (c *Controller) rewatch() {
	c.mu.Lock()
	runs := c.sortedRuns()
	aw := maps.Clone(c.alertWatch)
	c.mu.Unlock()
	c.cfg.World.Do(func() { c.applyWatch(runs, aw) })
}
