package server

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/controller"
	"github.com/refuge-project/refuge/internal/controller/controllertest"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/store"
)

var update = flag.Bool("update", false, "rewrite api/openapi.json from the route table")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a controller with an API on a simulated nankai-trough.
type env struct {
	t      testing.TB
	srv    *Server
	http   *httptest.Server
	st     *store.Store
	ctl    *controller.Controller
	tokens map[string]string // role → secret
}

func newEnv(t *testing.T, speed float64) *env {
	t.Helper()
	return newEnvWith(t, controllertest.Nankai(t), speed)
}

// newEnvWith serves a controller of fed's simulation.
func newEnvWith(t testing.TB, fed *model.Federation, speed float64) *env {
	t.Helper()
	m, err := store.StartMember(store.MemberConfig{DataDir: t.TempDir(), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	st, err := store.Open([]string{m.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w, err := controller.NewSimWorld(fed, speed)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	worldDone := make(chan struct{})
	go func() { defer close(worldDone); _ = w.Run(ctx) }()
	reg := prometheus.NewRegistry()
	metrics, err := controller.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := controller.New(controller.Config{ID: "test", Store: st, World: w, TTL: 1, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = ctl.Run(ctx) }()
	alerts, err := pipeline.New(pipeline.Config{Federation: fed, Target: ctl.AlertTarget(), Replay: true,
		ActOn: []alert.Status{alert.StatusActual, alert.StatusExercise}, Clock: w.PipelineClock()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Controller: ctl, Registry: reg, Alerts: alerts})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	e := &env{t: t, srv: srv, http: hs, st: st, ctl: ctl, tokens: map[string]string{}}
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		cancel()
		<-runDone
		<-worldDone
	})
	for _, r := range store.Roles {
		secret, _, err := st.CreateToken(context.Background(), r, "test-"+string(r))
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[string(r)] = secret
	}
	if !controllertest.Poll(10*time.Second, ctl.IsLeader) {
		t.Fatal("the controller did not become leader")
	}
	return e
}

// do sends a request with role's token ("" for none) and returns the
// status and body.
func (e *env) do(method, path, role, body string) (int, []byte, http.Header) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[role])
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, nil, resp.Header // a stream: headers only
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// TestOpenAPIDocument fails when the route table (which routes requests)
// and the checked-in api/openapi.json disagree; -update rewrites it.
func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t, 1)
	const path = "../../api/openapi.json"
	doc := e.srv.OpenAPIJSON()
	if *update {
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, want) {
		t.Fatal("api/openapi.json differs from the routes: run go test ./internal/server -run TestOpenAPIDocument -args -update and review the diff")
	}
	code, served, _ := e.do("GET", "/v1/openapi.json", "", "")
	if code != 200 || !bytes.Equal(served, want) {
		t.Fatalf("GET /v1/openapi.json: %d, same as the file: %v", code, bytes.Equal(served, want))
	}
	// Every documented path and method is routed (no 404/405).
	var d struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(want, &d); err != nil || !strings.HasPrefix(d.OpenAPI, "3.1") {
		t.Fatalf("document: openapi %q, %v", d.OpenAPI, err)
	}
	for p, methods := range d.Paths {
		for m := range methods {
			code, _, _ := e.do(strings.ToUpper(m), strings.NewReplacer("{name}", "nope", "{id}", "nope").Replace(p), "admin", "")
			if code == 405 || (code == 404 && !strings.Contains(p, "{")) {
				t.Errorf("%s %s documented but answers %d", m, p, code)
			}
		}
	}
}

// TestAuthMatrix calls every route with no token, an unknown token and
// each role's token.
func TestAuthMatrix(t *testing.T) {
	e := newEnv(t, 1)
	roles := []string{"", "bogus", "viewer", "operator", "admin", "alert-relay"}
	e.tokens["bogus"] = "rfg_not-a-token"
	for _, rt := range e.srv.routes() {
		path := strings.NewReplacer("{name}", "kochi-web01", "{id}", "nope").Replace(rt.Path)
		for _, role := range roles {
			code, body, hdr := e.do(rt.Method, path, role, "")
			var want string
			switch {
			case rt.Access == public:
				want = "allowed"
			case role == "" || role == "bogus":
				want = "401"
			case rt.Access.allows(store.Role(role)):
				want = "allowed"
			default:
				want = "403"
			}
			got := "allowed"
			if code == 401 || code == 403 {
				got = strconv.Itoa(code)
			}
			if got != want {
				t.Errorf("%s %s as %q: %d %s, want %s", rt.Method, rt.Path, role, code, body, want)
			}
			if code == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s as %q: 401 without WWW-Authenticate", rt.Method, rt.Path, role)
			}
			if code >= 400 && !strings.HasPrefix(hdr.Get("Content-Type"), "application/problem+json") {
				t.Errorf("%s %s as %q: %d with Content-Type %q, want problem+json", rt.Method, rt.Path, role, code, hdr.Get("Content-Type"))
			}
		}
	}
}

// TestBadInput: each bad request gets a clear 4xx and changes nothing.
func TestBadInput(t *testing.T) {
	e := newEnv(t, 1)
	big := `{"site":"` + strings.Repeat("x", MaxBody) + `"}`
	cases := []struct {
		method, path, body string
		code               int
		field              string
	}{
		{"POST", "/v1/evacuations", big, 413, ""},
		{"POST", "/v1/evacuations", `{"site":`, 400, ""},
		{"POST", "/v1/evacuations", ``, 400, ""},
		{"POST", "/v1/evacuations", `{"site":"kochi","force":true}`, 422, "force"},
		{"POST", "/v1/evacuations", `{"site":3}`, 422, "site"},
		{"POST", "/v1/evacuations", `{"site":"kochi","deadline":"soon"}`, 422, "deadline"},
		{"POST", "/v1/evacuations", `{"site":"kochi","deadline":"-5m"}`, 422, "deadline"},
		{"POST", "/v1/evacuations", `{"sites":[{"site":""}]}`, 422, "sites[0].site"},
		{"POST", "/v1/evacuations", `{"site":"atlantis"}`, 422, ""},
		{"POST", "/v1/evacuations", `{"site":"kochi"} {}`, 400, ""},
		{"POST", "/v1/plans", `{"site":"atlantis"}`, 422, ""},
		{"POST", "/v1/tokens", `{"role":"root"}`, 422, "role"},
		{"GET", "/v1/vms/nope", ``, 404, ""},
		{"GET", "/v1/operations/nope", ``, 404, ""},
		{"POST", "/v1/evacuations/nope/pause", ``, 404, ""},
		{"DELETE", "/v1/status", ``, 405, ""},
		{"GET", "/v1/nothing", ``, 404, ""},
		{"GET", "/v1/audit?limit=x", ``, 400, "limit"},
	}
	for _, c := range cases {
		code, body, _ := e.do(c.method, c.path, "admin", c.body)
		if code != c.code {
			t.Errorf("%s %s %.40q: %d %s, want %d", c.method, c.path, c.body, code, body, c.code)
			continue
		}
		var p Problem
		if err := json.Unmarshal(body, &p); err != nil || p.Status != code || p.Detail == "" {
			t.Errorf("%s %s: not a problem with a detail: %s", c.method, c.path, body)
		}
		if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
			t.Errorf("%s %s %.40q: errors %+v, want field %s", c.method, c.path, c.body, p.Errors, c.field)
		}
	}
	ops, err := e.st.Operations(context.Background())
	if err != nil || len(ops) != 0 {
		t.Errorf("bad requests left operations: %v, %v", ops, err)
	}
}

// TestEvacuation starts an evacuation through the API on a simulation
// 500 times faster than real time and follows it to the end: conflicts
// are refused, per-VM progress is reported, events stream, the write is
// audited.
func TestEvacuation(t *testing.T) {
	e := newEnv(t, 500)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan string, 1000)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens["viewer"])
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() {
		b := make([]byte, 64<<10)
		for {
			n, err := resp.Body.Read(b)
			if n > 0 {
				select {
				case events <- string(b[:n]):
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()

	code, body, hdr := e.do("POST", "/v1/evacuations", "operator", `{"site":"kochi","deadline":"2h"}`)
	if code != 202 {
		t.Fatalf("POST /v1/evacuations: %d %s", code, body)
	}
	var a Accepted
	if err := json.Unmarshal(body, &a); err != nil || a.OperationID == "" || hdr.Get("Location") != "/v1/operations/"+a.OperationID {
		t.Fatalf("answer %s (Location %q): %v", body, hdr.Get("Location"), err)
	}
	if code, body, _ := e.do("POST", "/v1/evacuations", "operator", `{"site":"kochi"}`); code != 409 {
		t.Errorf("second evacuation of kochi: %d %s, want 409", code, body)
	}
	var d OperationDetail
	if !controllertest.Poll(30*time.Second, func() bool {
		_, body, _ := e.do("GET", "/v1/operations/"+a.OperationID, "viewer", "")
		return json.Unmarshal(body, &d) == nil && !store.Live(d.Status)
	}) {
		t.Fatalf("operation still %s: %+v", d.Status, d.Progress)
	}
	if d.Status != store.OpSucceeded || d.Progress.Migrated != d.Progress.Total || d.Progress.Total < 100 || len(d.VMs) != d.Progress.Total {
		t.Errorf("operation %s, progress %+v, %d VMs", d.Status, d.Progress, len(d.VMs))
	}
	for _, st := range d.VMs {
		if st.State != store.VMMigrated || st.To == "" || strings.HasPrefix(st.To, "kochi") {
			t.Errorf("VM %s: %+v", st.VM, st)
		}
	}
	got := ""
	if !controllertest.Poll(5*time.Second, func() bool {
		for {
			select {
			case s := <-events:
				got += s
			default:
				return strings.Contains(got, "event: operation") && strings.Contains(got, "event: step")
			}
		}
	}) {
		t.Errorf("events stream: %.300q", got)
	}
	audit, err := e.st.AuditLog(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, en := range audit {
		if en.Path == "/v1/evacuations" && en.Status == 202 && en.Role == store.RoleOperator && en.Name == "test-operator" {
			found = true
		}
	}
	if !found {
		t.Errorf("audit log lacks the evacuation: %+v", audit)
	}
}

// TestNotLeader: a controller that does not lead refuses writes with 503
// and names the leader; it still serves reads of the store.
func TestNotLeader(t *testing.T) {
	e := newEnv(t, 1)
	fed := controllertest.Nankai(t)
	w, err := controller.NewSimWorld(fed, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	other, err := controller.New(controller.Config{ID: "other", Store: e.st, World: w, TTL: 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = other.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv, err := New(Config{Controller: other})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	e2 := &env{t: t, srv: srv, http: hs, st: e.st, ctl: other, tokens: e.tokens}
	code, body, hdr := e2.do("POST", "/v1/evacuations", "operator", `{"site":"kochi"}`)
	if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "controller test leads") {
		t.Errorf("evacuation on a follower: %d %s (Retry-After %q), want 503 naming the leader", code, body, hdr.Get("Retry-After"))
	}
	if code, body, _ := e2.do("GET", "/v1/operations", "viewer", ""); code != 200 {
		t.Errorf("read on a follower: %d %s", code, body)
	}
}

// TestPauseResumeCancel pauses an evacuation mid-way (running migrations
// are aborted, nothing is left running), resumes it to the end, and
// checks that a finished one can be neither paused nor resumed.
func TestPauseResumeCancel(t *testing.T) {
	e := newEnv(t, 200)
	code, body, _ := e.do("POST", "/v1/evacuations", "operator", `{"site":"kochi","deadline":"3h"}`)
	if code != 202 {
		t.Fatalf("POST /v1/evacuations: %d %s", code, body)
	}
	var a Accepted
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	get := func() OperationDetail {
		var d OperationDetail
		_, body, _ := e.do("GET", "/v1/operations/"+a.OperationID, "viewer", "")
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		return d
	}
	if !controllertest.Poll(30*time.Second, func() bool { return get().Progress.Migrated >= 10 }) {
		t.Fatalf("no progress: %+v", get().Progress)
	}
	if code, body, _ := e.do("POST", "/v1/evacuations/"+a.OperationID+"/pause", "operator", ""); code != 202 {
		t.Fatalf("pause: %d %s", code, body)
	}
	d := get()
	if d.Status != store.OpPaused || d.Progress.Running != 0 || d.Progress.Migrated == d.Progress.Total {
		t.Errorf("paused: %s %+v", d.Status, d.Progress)
	}
	if code, _, _ := e.do("POST", "/v1/evacuations/"+a.OperationID+"/pause", "operator", ""); code != 409 {
		t.Errorf("pausing a paused evacuation: %d, want 409", code)
	}
	if code, body, _ := e.do("POST", "/v1/evacuations/"+a.OperationID+"/resume", "operator", ""); code != 202 {
		t.Fatalf("resume: %d %s", code, body)
	}
	if !controllertest.Poll(60*time.Second, func() bool { return !store.Live(get().Status) }) {
		t.Fatalf("not finished: %+v", get())
	}
	if d := get(); d.Status != store.OpSucceeded || d.Progress.Migrated != d.Progress.Total {
		t.Errorf("after resume: %s %+v", d.Status, d.Progress)
	}
	for _, act := range []string{"pause", "resume", "cancel"} {
		if code, _, _ := e.do("POST", "/v1/evacuations/"+a.OperationID+"/"+act, "operator", ""); code != 409 {
			t.Errorf("%s of a finished evacuation: %d, want 409", act, code)
		}
	}
}

// TestAlert: a relay posts the nankai drill's EEW (acted on here as if
// real) and the controller starts evacuating Kochi; a document that does
// not parse is refused with 422.
func TestAlert(t *testing.T) {
	e := newEnv(t, 1)
	doc, err := os.ReadFile("../../examples/nankai-trough/drill/01-eew.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := e.do("POST", "/v1/alerts", "alert-relay", "<nonsense/>"); code != 422 {
		t.Errorf("a document that does not parse: %d %s", code, body)
	}
	if code, body, _ := e.do("POST", "/v1/alerts", "alert-relay", string(doc)); code != 202 {
		t.Fatalf("POST /v1/alerts: %d %s", code, body)
	}
	var ops []store.Operation
	if !controllertest.Poll(10*time.Second, func() bool {
		_, body, _ := e.do("GET", "/v1/operations", "viewer", "")
		return json.Unmarshal(body, &ops) == nil && len(ops) == 1
	}) {
		t.Fatalf("no evacuation after the alert: %+v", ops)
	}
	if op := ops[0]; op.Kind != store.KindEvacuation || len(op.Sites) == 0 || op.Sites[0].Site != "kochi" || op.CreatedBy != "alert pipeline" {
		t.Errorf("operation %+v, want an evacuation of kochi by the alert pipeline", op)
	}
	if !controllertest.Poll(10*time.Second, func() bool {
		_, body, _ := e.do("GET", "/metrics", "", "")
		return strings.Contains(string(body), "refuge_alert_to_first_migration_seconds_count 1")
	}) {
		t.Error("no alert-to-first-migration latency in /metrics")
	}
	if code, body, _ := e.do("GET", "/v1/approvals", "viewer", ""); code != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("GET /v1/approvals: %d %s", code, body)
	}
	if code, body, _ := e.do("POST", "/v1/approvals", "operator", `{"id":"osaka","decision":"maybe"}`); code != 422 {
		t.Errorf("a decision that is neither: %d %s", code, body)
	}
}
