package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/controller/controllertest"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/store"
	"github.com/refuge-project/refuge/internal/threat"
)

// drillAlert reads one of the nankai drill's alerts (an exercise; the
// pipelines here act on exercises).
func drillAlert(t *testing.T, name string) *alert.Alert {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "nankai-trough", "drill", name))
	if err != nil {
		t.Fatal(err)
	}
	a, err := alert.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return a
}

// withdrawal is the cancellation of a, issued after it.
func withdrawal(a *alert.Alert) *alert.Alert {
	c := *a
	c.Serial, c.MsgType, c.IssuedAt = a.Serial+10, alert.MsgCancel, a.IssuedAt.Add(time.Minute)
	c.Hypocenter, c.Magnitude, c.Digest = nil, nil, alert.Digest([]byte("withdrawn"))
	return &c
}

// alertCluster is a three-member cluster whose controllers each run an
// alert pipeline under pol, on a simulated federation speed times faster
// than real time. A withdrawal aborts the running migrations (so that
// the evacuation ends at once).
func alertCluster(t *testing.T, speed float64, pol *threat.Policy) *cluster {
	fed := controllertest.Nankai(t)
	w := runCountingWorld(t, fed, speed)
	c := &cluster{t: t, world: w, fp: func(string, string) bool { return false },
		pipeline: &pipeline.Config{Federation: fed, Policy: pol, Replay: true, Clock: w.PipelineClock(), AbortOnCancel: true,
			ActOn: []alert.Status{alert.StatusActual, alert.StatusExercise}}}
	return newClusterWith(t, c)
}

// submit gives a to the leader's pipeline, retrying while the leader is
// still restoring it.
func submit(t *testing.T, s *site, a *alert.Alert) {
	t.Helper()
	var err error
	if !controllertest.Poll(10*time.Second, func() bool {
		err = s.alerts.Submit(context.Background(), a)
		return !errors.Is(err, ErrNotLeader)
	}) || err != nil {
		t.Fatalf("submit %s serial %d: %v", a.EventID, a.Serial, err)
	}
}

// alertOps returns the operations the alert pipeline started.
func alertOps(t *testing.T, s *site) []store.Operation {
	t.Helper()
	ops, err := s.st.Operations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(ops, func(op store.Operation) bool { return op.CreatedBy != AlertBy })
}

// failOver kills the leader and returns its successor once it leads.
func (c *cluster) failOver(lead *site) *site {
	c.t.Helper()
	c.kill(lead)
	next := c.leader(15 * time.Second)
	c.t.Cleanup(func() { <-lead.closed })
	return next
}

// TestAlertApprovalSurvivesFailover: an alert whose evacuation waits for
// approval arrives, the leader dies; the new leader holds the same
// approval, takes the alert sent again as a duplicate, and once approved
// there starts the evacuation, once.
func TestAlertApprovalSurvivesFailover(t *testing.T) {
	pol := threat.DefaultPolicy()
	pol.Sites = map[string]threat.SitePolicy{"kochi": {Approval: threat.ApprovalApprove}}
	c := alertCluster(t, 1, &pol)
	lead := c.leader(15 * time.Second)
	eew := drillAlert(t, "01-eew.json")
	submit(t, lead, eew)
	if p := lead.alerts.Pending(); len(p) != 1 || p[0].ID != "kochi" {
		t.Fatalf("pending %+v, want kochi", p)
	}

	next := c.failOver(lead)
	var pend []pipeline.Approval
	if !controllertest.Poll(10*time.Second, func() bool {
		pend = next.alerts.Pending()
		return len(pend) == 1 && pend[0].ID == "kochi"
	}) {
		t.Fatalf("the new leader's pending approvals %+v, want kochi", pend)
	}
	submit(t, next, eew)
	if ops := alertOps(t, next); len(ops) != 0 {
		t.Fatalf("the repeated alert started %+v before approval", ops)
	}
	if err := next.alerts.Decide("kochi", true, "test operator"); err != nil {
		t.Fatal(err)
	}
	submit(t, next, eew)
	if err := next.alerts.Retry(); err != nil {
		t.Fatal(err)
	}
	ops := alertOps(t, next)
	if len(ops) != 1 || len(ops[0].Sites) != 1 || ops[0].Sites[0].Site != "kochi" || ops[0].Leader != next.cfg.Name {
		t.Fatalf("alert operations %+v, want one of kochi started by %s", ops, next.cfg.Name)
	}
	if p := next.alerts.Pending(); len(p) != 0 {
		t.Errorf("still pending after approval: %+v", p)
	}
}

// TestAlertEvacuationFollowsAfterFailover: the alert-driven evacuation
// runs, the leader dies; the new leader resumes it, takes the alert sent
// again as a duplicate (no second evacuation), adds the site a later
// serial threatens to the same operation, and ends it when the event is
// withdrawn.
func TestAlertEvacuationFollowsAfterFailover(t *testing.T) {
	c := alertCluster(t, 1, nil)
	lead := c.leader(15 * time.Second)
	eew := drillAlert(t, "01-eew.json")
	submit(t, lead, eew)
	ops := alertOps(t, lead)
	if len(ops) != 1 || !store.Live(ops[0].Status) {
		t.Fatalf("alert operations %+v, want one live", ops)
	}
	id := ops[0].ID

	next := c.failOver(lead)
	if !controllertest.Poll(10*time.Second, func() bool { return next.ctl.run(id) != nil }) {
		t.Fatalf("%s not resumed by %s", id, next.cfg.Name)
	}
	submit(t, next, eew)
	if ops := alertOps(t, next); len(ops) != 1 {
		t.Fatalf("the repeated alert after failover: operations %+v, want the one", ops)
	}

	submit(t, next, drillAlert(t, "02-eew-update.json"))
	ops = alertOps(t, next)
	var sites []string
	for _, s := range ops[0].Sites {
		sites = append(sites, s.Site)
	}
	if len(ops) != 1 || ops[0].ID != id || !slices.Contains(sites, "kagawa") {
		t.Fatalf("after the update: operations %+v, want %s evacuating kagawa too", ops, id)
	}

	submit(t, next, withdrawal(eew))
	var op *store.Operation
	if !controllertest.Poll(10*time.Second, func() bool {
		var err error
		op, err = next.st.Operation(context.Background(), id)
		return err == nil && op.Status == store.OpCancelled
	}) {
		t.Fatalf("after the withdrawal %s is %+v, want cancelled", id, op)
	}
	if ops := alertOps(t, next); len(ops) != 1 {
		t.Errorf("operations %+v, want only %s", ops, id)
	}
}
