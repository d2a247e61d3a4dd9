package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/controller"
	"github.com/refuge-project/refuge/internal/controller/controllertest"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/store"
	"github.com/refuge-project/refuge/internal/threat"
	"github.com/refuge-project/refuge/internal/world"
)

// startAlertNode serves controller id, with an alert pipeline under pol,
// on the shared member m and world w; tokens are the shared store's.
func startAlertNode(t *testing.T, m *store.Member, w *world.Sim, id string, pol *threat.Policy, tokens map[string]string) *env {
	t.Helper()
	st, err := store.Open([]string{m.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctl, err := controller.New(controller.Config{ID: id, Store: st, World: w, TTL: 1})
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := ctl.AlertPipeline(pipeline.Config{Federation: w.Index().Fed, Policy: pol, Replay: true,
		ActOn: []alert.Status{alert.StatusActual, alert.StatusExercise}, Clock: w.PipelineClock()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Controller: ctl, Alerts: alerts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = ctl.Run(ctx) }()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		cancel()
		<-runDone
	})
	return &env{t: t, srv: srv, http: hs, st: st, ctl: ctl, tokens: tokens}
}

// TestApprovalOnTheNewLeader: an alert whose evacuation waits for
// approval reaches the leader, which dies; the new leader's API shows the
// approval pending, approving it there starts the evacuation, and the
// alert sent again starts no second one. The decision is recorded with
// who made it.
func TestApprovalOnTheNewLeader(t *testing.T) {
	fed := controllertest.Nankai(t)
	m, err := store.StartMember(store.MemberConfig{DataDir: t.TempDir(), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	w, err := controller.NewSimWorld(fed, 1)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWorld := context.WithCancel(context.Background())
	worldDone := make(chan struct{})
	go func() { defer close(worldDone); _ = w.Run(wctx) }()
	t.Cleanup(func() { stopWorld(); <-worldDone })
	st, err := store.Open([]string{m.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tokens := map[string]string{}
	for _, r := range []store.Role{store.RoleViewer, store.RoleOperator, store.RoleAlertRelay} {
		if tokens[string(r)], _, err = st.CreateToken(context.Background(), r, "test-"+string(r)); err != nil {
			t.Fatal(err)
		}
	}
	pol := threat.DefaultPolicy()
	pol.Sites = map[string]threat.SitePolicy{"kochi": {Approval: threat.ApprovalApprove}}
	var nodes []*env
	for i := range 2 {
		nodes = append(nodes, startAlertNode(t, m, w, fmt.Sprintf("c%d", i), &pol, tokens))
	}
	var lead, next *env
	if !controllertest.Poll(10*time.Second, func() bool {
		for i, n := range nodes {
			if n.ctl.IsLeader() {
				lead, next = n, nodes[1-i]
				return true
			}
		}
		return false
	}) {
		t.Fatal("no leader")
	}
	doc, err := os.ReadFile("../../examples/nankai-trough/drill/01-eew.json")
	if err != nil {
		t.Fatal(err)
	}
	var code int
	var body []byte
	// 503 while the leader restores the pipeline's (empty) state.
	if !controllertest.Poll(10*time.Second, func() bool {
		code, body, _ = lead.do("POST", "/v1/alerts", "alert-relay", string(doc))
		return code != 503
	}) || code != 202 {
		t.Fatalf("POST /v1/alerts: %d %s", code, body)
	}
	pending := func(n *env) []pipeline.Approval {
		var out []pipeline.Approval
		if code, body, _ := n.do("GET", "/v1/approvals", "viewer", ""); code != 200 || json.Unmarshal(body, &out) != nil {
			t.Fatalf("GET /v1/approvals: %d %s", code, body)
		}
		return out
	}
	if p := pending(lead); len(p) != 1 || p[0].ID != "kochi" {
		t.Fatalf("pending on the leader %+v, want kochi", p)
	}

	lead.ctl.Kill()
	var p []pipeline.Approval
	if !controllertest.Poll(10*time.Second, func() bool { p = pending(next); return len(p) == 1 }) || p[0].ID != "kochi" {
		t.Fatalf("pending on the new leader %+v, want kochi", p)
	}
	if !controllertest.Poll(10*time.Second, func() bool {
		code, body, _ = next.do("POST", "/v1/approvals", "operator", `{"id":"kochi","decision":"approve"}`)
		return code != 503
	}) || code != 200 {
		t.Fatalf("approve on the new leader: %d %s", code, body)
	}
	if code, body, _ := next.do("POST", "/v1/alerts", "alert-relay", string(doc)); code != 202 {
		t.Fatalf("POST /v1/alerts again: %d %s", code, body)
	}
	var ops []store.Operation
	if code, body, _ := next.do("GET", "/v1/operations", "viewer", ""); code != 200 || json.Unmarshal(body, &ops) != nil {
		t.Fatalf("GET /v1/operations: %d %s", code, body)
	}
	if len(ops) != 1 || ops[0].CreatedBy != controller.AlertBy || ops[0].Sites[0].Site != "kochi" {
		t.Fatalf("operations %+v, want one evacuation of kochi by the alert pipeline", ops)
	}
	if p := pending(next); len(p) != 0 {
		t.Errorf("still pending: %+v", p)
	}
	states, _, err := st.Pipeline(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := string(states["real"]); !strings.Contains(s, `"by":"test-operator`) {
		t.Errorf("recorded state %s, want the decision by test-operator", s)
	}
	// The alert, the approval and the start are in the audit log once,
	// by the tokens' names, beside the requests.
	audit, err := st.AuditLog(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ method, by string }{
		{"ALERT", "test-alert-relay ("}, {"APPROVE", "test-operator ("}, {"EVACUATE", "pipeline:test-operator ("},
	} {
		n := 0
		for _, e := range audit {
			if e.Method == want.method && strings.HasPrefix(e.Name, want.by) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d audit entries %s by %s…, want 1 (log: %+v)", n, want.method, want.by, audit)
		}
	}
}
