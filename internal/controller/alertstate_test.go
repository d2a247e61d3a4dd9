package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
// than real time, crashing where fp says (nil: nowhere). A withdrawal
// aborts the running migrations (so that the evacuation ends at once).
func alertCluster(t *testing.T, speed float64, pol *threat.Policy, fp func(id, name string) bool) *cluster {
	fed := controllertest.Nankai(t)
	w := runCountingWorld(t, fed, speed)
	if fp == nil {
		fp = func(string, string) bool { return false }
	}
	c := &cluster{t: t, world: w, fp: fp,
		pipeline: &pipeline.Config{Federation: fed, Policy: pol, Replay: true, Clock: w.PipelineClock(), AbortOnCancel: true,
			ActOn: []alert.Status{alert.StatusActual, alert.StatusExercise}}}
	return newClusterWith(t, c)
}

// relay is who delivers the tests' alerts.
const relay = "test-relay"

// relayed is the context the tests' alerts are submitted with.
var relayed = pipeline.WithSource(context.Background(), relay)

// submit gives a to the leader's pipeline from relay, retrying while the
// leader is still restoring it.
func submit(t *testing.T, s *site, a *alert.Alert) {
	t.Helper()
	var err error
	if !controllertest.Poll(10*time.Second, func() bool {
		err = s.alerts.Submit(relayed, a)
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
	c := alertCluster(t, 1, &pol, nil)
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
	c := alertCluster(t, 1, nil, nil)
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

// retry runs the leader's pipeline's Retry once it is restored.
func retry(t *testing.T, s *site) {
	t.Helper()
	var err error
	if !controllertest.Poll(10*time.Second, func() bool {
		err = s.alerts.Retry()
		return !errors.Is(err, ErrNotLeader)
	}) || err != nil {
		t.Fatalf("retry on %s: %v", s.cfg.Name, err)
	}
}

// failAt is a failpoint armed for one hit.
type failAt struct {
	mu   sync.Mutex
	name string
}

func (f *failAt) arm(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.name = name
}

func (f *failAt) hit(_, name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name != f.name {
		return false
	}
	f.name = ""
	return true
}

// auditCount counts the audit entries with method whose detail has
// every string of details, after checking that no entry is there twice.
func auditCount(t *testing.T, es []store.AuditEntry, method string, details ...string) int {
	t.Helper()
	n := 0
	for _, e := range es {
		if e.Method != method {
			continue
		}
		if !slices.ContainsFunc(details, func(d string) bool { return !strings.Contains(e.Detail, d) }) {
			n++
		}
	}
	return n
}

// auditLog returns the audit log, failing the test on an entry written
// twice.
func auditLog(t *testing.T, s *site) []store.AuditEntry {
	t.Helper()
	es, err := s.st.AuditLog(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[store.AuditEntry]bool{}
	for _, e := range es {
		e.At = time.Time{}
		if seen[e] {
			t.Errorf("audit entry twice: %+v", e)
		}
		seen[e] = true
	}
	return es
}

// sitesOf names an operation's sites.
func sitesOf(op store.Operation) []string {
	var out []string
	for _, s := range op.Sites {
		out = append(out, s.Site)
	}
	return out
}

// TestAlertApplyCrash: the leader dies at each failpoint of the alert
// target while an alert starts an evacuation, or while an update adds
// Kagawa to it. The next leader settles the intent it left from the
// store: an evacuation not started is started, a change not made is
// made, and what was done is not done again — also when the evacuation
// ended (an operator cancelled it) before the alerts came again. There
// is one alert evacuation, with the right sites, and each alert and
// action is in the audit log once, by whom it came from.
func TestAlertApplyCrash(t *testing.T) {
	for _, tc := range []struct {
		fp     string
		update bool
	}{
		{FPAlertIntent, false}, {FPAlertApplied, false}, {FPAlertIntent, true}, {FPAlertApplied, true},
	} {
		name := "start"
		if tc.update {
			name = "update"
		}
		t.Run(name+"/"+tc.fp, func(t *testing.T) {
			var fp failAt
			c := alertCluster(t, 10, nil, fp.hit)
			lead := c.leader(15 * time.Second)
			retry(t, lead) // restored
			eew, crashing := drillAlert(t, "01-eew.json"), drillAlert(t, "01-eew.json")
			sites := []string{"kochi"}
			if tc.update {
				submit(t, lead, eew)
				crashing, sites = drillAlert(t, "02-eew-update.json"), []string{"kagawa", "kochi"}
			}
			fp.arm(tc.fp)
			if err := lead.alerts.Submit(relayed, crashing); !errors.Is(err, errStopped) {
				t.Fatalf("submit at failpoint %s: %v, want the crash", tc.fp, err)
			}

			next := c.failOver(lead)
			retry(t, next)
			ops := alertOps(t, next)
			if len(ops) != 1 {
				t.Fatalf("after the takeover: alert operations %+v, want one", ops)
			}
			if tc.fp == FPAlertApplied {
				// The evacuation ends before the alert comes again.
				if _, err := next.ctl.Control(context.Background(), ops[0].ID, ActCancel); err != nil {
					t.Fatal(err)
				}
				submit(t, next, crashing)
				retry(t, next)
			}
			ops = alertOps(t, next)
			if len(ops) != 1 || !slices.Equal(sitesOf(ops[0]), sites) {
				t.Fatalf("alert operations %+v, want one evacuating %v", ops, sites)
			}
			id := ops[0].ID

			es := auditLog(t, next)
			for _, want := range []struct {
				method, detail string
				n              int
			}{
				{"ALERT", "serial 1 (alert, exercise) from " + relay, 1},
				{"ALERT", "serial 2 (alert, exercise) from " + relay, len(sites) - 1},
				{"EVACUATE", "kochi within", 1},
				{"RETARGET", "sites added: kagawa within", len(sites) - 1},
			} {
				if n := auditCount(t, es, want.method, want.detail); n != want.n {
					t.Errorf("%d audit entries %s %q, want %d", n, want.method, want.detail, want.n)
				}
			}
			for _, e := range es {
				if (e.Method == "EVACUATE" || e.Method == "RETARGET") && (e.Operation != id || e.Name != "pipeline:"+relay) {
					t.Errorf("audit entry %+v, want operation %s by pipeline:%s", e, id, relay)
				}
			}
		})
	}
}

// TestAlertAuditAcrossFailover: the alerts accepted, the approval and
// what the pipeline did because of them (start, retarget, cancel by the
// withdrawal) are each in the audit log once, by whom they came from,
// across a failover and the alerts sent again.
func TestAlertAuditAcrossFailover(t *testing.T) {
	pol := threat.DefaultPolicy()
	pol.Sites = map[string]threat.SitePolicy{"kochi": {Approval: threat.ApprovalApprove}}
	c := alertCluster(t, 1, &pol, nil)
	lead := c.leader(15 * time.Second)
	eew := drillAlert(t, "01-eew.json")
	submit(t, lead, eew)

	next := c.failOver(lead)
	submit(t, next, eew)
	retry(t, next)
	if err := next.alerts.Decide("kochi", true, "alice"); err != nil {
		t.Fatal(err)
	}
	submit(t, next, drillAlert(t, "02-eew-update.json"))
	submit(t, next, withdrawal(eew))
	ops := alertOps(t, next)
	if len(ops) != 1 {
		t.Fatalf("alert operations %+v, want one", ops)
	}
	id := ops[0].ID

	es := auditLog(t, next)
	for _, want := range []struct {
		method, name, detail string
		op                   string
	}{
		{"ALERT", relay, "serial 1 (alert, exercise)", ""},
		{"ALERT", relay, "serial 2 (alert, exercise)", ""},
		{"ALERT", relay, "serial 11 (cancel, exercise)", ""},
		{"APPROVE", "alice", "kochi's evacuation approved", ""},
		{"EVACUATE", "pipeline:alice", "evacuation started: kochi within", id},
		{"RETARGET", "pipeline:" + relay, "sites added: kagawa within", id},
		{"CANCEL", "pipeline:" + relay, "every threat was withdrawn", id},
	} {
		var got []store.AuditEntry
		for _, e := range es {
			if e.Method == want.method && e.Name == want.name && strings.Contains(e.Detail, want.detail) && e.Operation == want.op {
				got = append(got, e)
			}
		}
		if len(got) != 1 {
			t.Errorf("audit entries %s by %s %q of operation %q: %+v, want one", want.method, want.name, want.detail, want.op, got)
		}
	}
	if t.Failed() {
		for _, e := range es {
			t.Logf("audit: %s %s %s %s", e.Name, e.Method, e.Path, e.Detail)
		}
	}
}
