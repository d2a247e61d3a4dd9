package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	_ "github.com/refuge-project/refuge/internal/alert/formats" // every format POST /v1/alerts reads
	"github.com/refuge-project/refuge/internal/controller"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/store"
)

// route is one API route: it both routes requests and documents them.
type route struct {
	Method, Path string
	Summary      string
	Access       access
	// Body and Reply are the request and success response types (nil:
	// none); Status is the success status.
	Body   any
	Reply  any
	Status int
	// Errors lists the error statuses besides the auth ones.
	Errors  []int
	handler http.HandlerFunc
	// ContentType of the success response (default application/json).
	ContentType string
}

func (s *Server) routes() []route {
	return []route{
		{Method: "GET", Path: "/healthz", Summary: "Liveness: the process serves HTTP", Access: public, Reply: Health{}, Status: 200, handler: s.healthz},
		{Method: "GET", Path: "/readyz", Summary: "Readiness: etcd answers and a leader is elected", Access: public, Reply: Health{}, Status: 200, Errors: []int{503}, handler: s.readyz},
		{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics", Access: public, Status: 200, ContentType: "text/plain", handler: s.metrics},
		{Method: "GET", Path: "/v1/openapi.json", Summary: "This API's OpenAPI 3.1 document", Access: public, Status: 200, Reply: map[string]any{}, handler: s.openapi},
		{Method: "GET", Path: "/v1/status", Summary: "The federation and the controllers at a glance", Access: viewer, Reply: controller.Status{}, Status: 200, handler: s.status},
		{Method: "GET", Path: "/v1/sites", Summary: "Sites with hosts, VMs and threats", Access: viewer, Reply: []controller.SiteStatus{}, Status: 200, handler: s.sites},
		{Method: "GET", Path: "/v1/hosts", Summary: "Hosts and their state", Access: viewer, Reply: []HostInfo{}, Status: 200, handler: s.hosts},
		{Method: "GET", Path: "/v1/vms", Summary: "VMs and where they run now", Access: viewer, Reply: []VMInfo{}, Status: 200, handler: s.vms},
		{Method: "GET", Path: "/v1/vms/{name}", Summary: "One VM", Access: viewer, Reply: VMInfo{}, Status: 200, Errors: []int{404}, handler: s.vm},
		{Method: "GET", Path: "/v1/services", Summary: "Services and the sites their VMs run at", Access: viewer, Reply: []ServiceInfo{}, Status: 200, handler: s.services},
		{Method: "POST", Path: "/v1/plans", Summary: "Dry run: the plan evacuating the sites now would follow", Access: operator, Body: SitesRequest{}, Reply: controller.PlanSummary{}, Status: 200, Errors: []int{400, 413, 415, 422}, handler: s.plan},
		{Method: "POST", Path: "/v1/evacuations", Summary: "Start evacuating sites (an operation)", Access: operator, Body: SitesRequest{}, Reply: Accepted{}, Status: 202, Errors: []int{400, 409, 413, 415, 422, 503}, handler: s.evacuate},
		{Method: "POST", Path: "/v1/evacuations/{id}/pause", Summary: "Pause an evacuation: running migrations are aborted, none start", Access: operator, Reply: Accepted{}, Status: 202, Errors: []int{404, 409, 503}, handler: s.control(controller.ActPause)},
		{Method: "POST", Path: "/v1/evacuations/{id}/resume", Summary: "Resume a paused evacuation", Access: operator, Reply: Accepted{}, Status: 202, Errors: []int{404, 409, 503}, handler: s.control(controller.ActResume)},
		{Method: "POST", Path: "/v1/evacuations/{id}/cancel", Summary: "Cancel an evacuation: running migrations are aborted", Access: operator, Reply: Accepted{}, Status: 202, Errors: []int{404, 409, 503}, handler: s.control(controller.ActCancel)},
		{Method: "POST", Path: "/v1/drills", Summary: "Drill: play an evacuation on a simulated copy of the federation (an operation)", Access: operator, Body: SitesRequest{}, Reply: Accepted{}, Status: 202, Errors: []int{400, 413, 415, 422, 503}, handler: s.drill},
		{Method: "GET", Path: "/v1/operations", Summary: "Operations, oldest first", Access: viewer, Reply: []store.Operation{}, Status: 200, handler: s.operations},
		{Method: "GET", Path: "/v1/operations/{id}", Summary: "An operation with its per-VM progress", Access: viewer, Reply: OperationDetail{}, Status: 200, Errors: []int{404}, handler: s.operation},
		{Method: "GET", Path: "/v1/events", Summary: "Server-sent events: operations and per-VM steps as they change", Access: viewer, Status: 200, ContentType: "text/event-stream", handler: s.events},
		{Method: "POST", Path: "/v1/alerts", Summary: "Submit an alert document (JMA, CAP, USGS, P2PQuake, ShakeAlert, relay webhook) to the alert pipeline", Access: relay, Reply: AlertAccepted{}, Status: 202, Errors: []int{400, 413, 422, 501, 503}, handler: s.alert},
		{Method: "GET", Path: "/v1/approvals", Summary: "Evacuations the threat policy holds for an operator's approval", Access: viewer, Reply: []pipeline.Approval{}, Status: 200, Errors: []int{501}, handler: s.approvals},
		{Method: "POST", Path: "/v1/approvals", Summary: "Approve or decline a held evacuation", Access: operator, Body: DecisionRequest{}, Reply: Health{}, Status: 200, Errors: []int{400, 404, 413, 415, 422, 501, 503}, handler: s.decide},
		{Method: "POST", Path: "/v1/tokens", Summary: "Create a token (its secret is shown once)", Access: admin, Body: TokenRequest{}, Reply: TokenCreated{}, Status: 201, Errors: []int{400, 413, 415, 422}, handler: s.createToken},
		{Method: "GET", Path: "/v1/tokens", Summary: "Tokens (never their secrets)", Access: admin, Reply: []store.Token{}, Status: 200, handler: s.listTokens},
		{Method: "GET", Path: "/v1/audit", Summary: "The audit log: every write with who, what, when (newest 1000, or ?limit=)", Access: admin, Reply: []store.AuditEntry{}, Status: 200, Errors: []int{400}, handler: s.auditLog},
	}
}

// fail maps an error of the controller or store to a problem.
func fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, controller.ErrNotLeader):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, controller.ErrConflict):
		writeProblem(w, http.StatusConflict, err.Error())
	case errors.Is(err, controller.ErrInvalid):
		writeProblem(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, controller.ErrNotFound), errors.Is(err, store.ErrNotFound):
		writeProblem(w, http.StatusNotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "the store did not answer in time: "+err.Error())
	default:
		writeProblem(w, http.StatusInternalServerError, err.Error())
	}
}

// notLeader answers 503 (retry on the leader, or shortly) when err says
// this controller does not lead, or is still restoring the alert
// pipeline's state after a leader change: the alert or decision was not
// recorded. It reports whether it answered.
func notLeader(w http.ResponseWriter, err error) bool {
	if !errors.Is(err, controller.ErrNotLeader) {
		return false
	}
	fail(w, err)
	return true
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !s.c.Ready() {
		writeProblem(w, http.StatusServiceUnavailable, "the controller is starting")
		return
	}
	leader, err := s.st.Leader(ctx)
	switch {
	case err != nil:
		writeProblem(w, http.StatusServiceUnavailable, "etcd does not answer: "+err.Error())
	case leader == "":
		writeProblem(w, http.StatusServiceUnavailable, "no controller leads yet")
	default:
		writeJSON(w, http.StatusOK, Health{Status: "ready", Detail: "leader " + leader})
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.c.Status(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) sites(w http.ResponseWriter, r *http.Request) {
	st, err := s.c.Status(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st.Sites)
}

func (s *Server) hosts(w http.ResponseWriter, _ *http.Request) {
	ix := s.c.Index()
	placement, down := s.c.State()
	out := make([]HostInfo, len(ix.Hosts))
	for h := range ix.Hosts {
		out[h] = HostInfo{Name: ix.Host(h).Name, Site: ix.Fed.Sites[ix.HostSite(h)].Name, Up: !down[h], MemoryMiB: ix.Host(h).MemoryMiB}
	}
	for v, h := range placement {
		if h >= 0 {
			out[h].VMs++
			out[h].UsedMiB += ix.Fed.VMs[v].MemoryMiB
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) vmInfos() []VMInfo {
	placement, _ := s.c.State()
	out := make([]VMInfo, len(placement))
	for v, h := range placement {
		out[v] = s.vmInfo(v, h)
	}
	return out
}

// vmInfo describes VM v on host h (-1: lost).
func (s *Server) vmInfo(v, h int) VMInfo {
	ix := s.c.Index()
	vm := &ix.Fed.VMs[v]
	out := VMInfo{Name: vm.Name, Service: vm.Service, MemoryMi: vm.MemoryMiB, VCPU: vm.VCPU, Priority: vm.Priority}
	if h >= 0 {
		out.Host, out.Site = ix.Host(h).Name, ix.Fed.Sites[ix.HostSite(h)].Name
	} else {
		out.Lost = true
	}
	return out
}

func (s *Server) vms(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.vmInfos())
}

func (s *Server) vm(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	v, ok := s.c.Index().VMByName[name]
	if !ok {
		writeProblem(w, http.StatusNotFound, fmt.Sprintf("no VM %q in the federation", name))
		return
	}
	writeJSON(w, http.StatusOK, s.vmInfo(v, s.c.HostOf(v)))
}

func (s *Server) services(w http.ResponseWriter, _ *http.Request) {
	ix := s.c.Index()
	infos := s.vmInfos()
	out := make([]ServiceInfo, len(ix.Fed.Services))
	for i, svc := range ix.Fed.Services {
		out[i] = ServiceInfo{Name: svc.Name, DependsOn: svc.DependsOn, VMs: []string{}, Sites: []string{}}
	}
	for _, vm := range infos {
		if i, ok := ix.ServiceByName[vm.Service]; ok {
			out[i].VMs = append(out[i].VMs, vm.Name)
			if vm.Site != "" && !slices.Contains(out[i].Sites, vm.Site) {
				out[i].Sites = append(out[i].Sites, vm.Site)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// sitesBody decodes and validates a SitesRequest.
func sitesBody(w http.ResponseWriter, r *http.Request) ([]controller.SiteRequest, bool) {
	var q SitesRequest
	if !decode(w, r, &q) {
		return nil, false
	}
	sites, errs := sitesOf(&q)
	if len(errs) > 0 {
		writeProblem(w, http.StatusUnprocessableEntity, "the request is invalid", errs...)
		return nil, false
	}
	return sites, true
}

func who(r *http.Request) string {
	t := tokenOf(r)
	if t.Name != "" {
		return t.Name + " (" + t.ID + ")"
	}
	return t.ID
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	sites, ok := sitesBody(w, r)
	if !ok {
		return
	}
	p, err := s.c.Plan(sites)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func accepted(w http.ResponseWriter, op *store.Operation) {
	w.Header().Set("Location", "/v1/operations/"+op.ID)
	writeJSON(w, http.StatusAccepted, Accepted{OperationID: op.ID, Operation: op})
}

func (s *Server) evacuate(w http.ResponseWriter, r *http.Request) {
	sites, ok := sitesBody(w, r)
	if !ok {
		return
	}
	op, err := s.c.Evacuate(r.Context(), controller.EvacuationRequest{Sites: sites, By: who(r)})
	if err != nil {
		fail(w, err)
		return
	}
	accepted(w, op)
}

func (s *Server) control(act controller.Action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 0 {
			var q ActionRequest
			if !decode(w, r, &q) {
				return
			}
		}
		op, err := s.c.Control(r.Context(), r.PathValue("id"), act)
		if err != nil {
			fail(w, err)
			return
		}
		accepted(w, op)
	}
}

func (s *Server) drill(w http.ResponseWriter, r *http.Request) {
	sites, ok := sitesBody(w, r)
	if !ok {
		return
	}
	op, err := s.c.Drill(r.Context(), sites, who(r))
	if err != nil {
		fail(w, err)
		return
	}
	accepted(w, op)
}

func (s *Server) operations(w http.ResponseWriter, r *http.Request) {
	ops, err := s.st.Operations(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	for i := range ops {
		if store.Live(ops[i].Status) && ops[i].Kind == store.KindEvacuation {
			steps, err := s.st.Steps(r.Context(), ops[i].ID)
			if err != nil {
				fail(w, err)
				return
			}
			ops[i].Progress = controller.Progress(steps)
		}
	}
	writeJSON(w, http.StatusOK, ops)
}

func (s *Server) operation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	op, err := s.st.Operation(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	steps, err := s.st.Steps(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	if store.Live(op.Status) && op.Kind == store.KindEvacuation {
		op.Progress = controller.Progress(steps)
	}
	writeJSON(w, http.StatusOK, OperationDetail{Operation: *op, VMs: steps})
}

// events streams changes as server-sent events: "operation" events carry
// an operation, "step" events a VM's journal record.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeProblem(w, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": refuge events\n\n")
	fl.Flush()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ch := s.st.Watch(ctx)
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				return
			}
			kind := "step"
			if c.Operation != nil {
				kind = "operation"
			}
			b, _ := json.Marshal(c)
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", c.Revision, kind, b)
			fl.Flush()
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
			fl.Flush()
		case <-ctx.Done():
			return
		}
	}
}

func (s *Server) alert(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Alerts == nil {
		writeProblem(w, http.StatusNotImplemented, "this controller runs no alert pipeline")
		return
	}
	if !s.c.IsLeader() {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "this controller does not lead: post alerts to the leader (GET /v1/status names it)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds %d bytes", MaxBody))
		return
	}
	if len(body) == 0 {
		writeProblem(w, http.StatusBadRequest, "the body is empty: send an alert document")
		return
	}
	alerts, err := alert.ParseAll(body)
	if err != nil {
		writeProblem(w, http.StatusUnprocessableEntity, "the alert document does not parse: "+err.Error())
		return
	}
	ctx := pipeline.WithSource(r.Context(), who(r))
	for _, a := range alerts {
		a.ReceivedAt = time.Now().UTC()
		if err := s.cfg.Alerts.Submit(ctx, a); err != nil {
			if notLeader(w, err) {
				return
			}
			writeProblem(w, http.StatusUnprocessableEntity, "alert "+a.EventID+": "+err.Error())
			return
		}
	}
	writeJSON(w, http.StatusAccepted, AlertAccepted{Alerts: len(alerts), Detail: "submitted to the alert pipeline"})
}

func (s *Server) approvals(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Alerts == nil {
		writeProblem(w, http.StatusNotImplemented, "this controller runs no alert pipeline")
		return
	}
	out := s.cfg.Alerts.Pending()
	if out == nil {
		out = []pipeline.Approval{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Alerts == nil {
		writeProblem(w, http.StatusNotImplemented, "this controller runs no alert pipeline")
		return
	}
	var q DecisionRequest
	if !decode(w, r, &q) {
		return
	}
	var errs []FieldError
	if q.ID == "" {
		errs = append(errs, FieldError{Field: "id", Message: "required: the approval's id (GET /v1/approvals)"})
	}
	if q.Decision != "approve" && q.Decision != "decline" {
		errs = append(errs, FieldError{Field: "decision", Message: "approve or decline"})
	}
	if len(errs) > 0 {
		writeProblem(w, http.StatusUnprocessableEntity, "the request is invalid", errs...)
		return
	}
	if !s.c.IsLeader() {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "this controller does not lead: send decisions to the leader")
		return
	}
	if err := s.cfg.Alerts.Decide(q.ID, q.Decision == "approve", who(r)); err != nil {
		if notLeader(w, err) {
			return
		}
		writeProblem(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, Health{Status: q.Decision + "d", Detail: q.ID})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var q TokenRequest
	if !decode(w, r, &q) {
		return
	}
	role, err := store.ParseRole(q.Role)
	if err != nil {
		writeProblem(w, http.StatusUnprocessableEntity, "the request is invalid", FieldError{Field: "role", Message: err.Error()})
		return
	}
	secret, tok, err := s.st.CreateToken(r.Context(), role, q.Name)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, TokenCreated{Token: secret, ID: tok.ID, Name: tok.Name, Role: tok.Role})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.st.Tokens(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) {
	limit := 1000
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n <= 0 || n > 100000 {
			writeProblem(w, http.StatusBadRequest, "limit must be an integer from 1 to 100000", FieldError{Field: "limit", Message: "not an integer in 1..100000"})
			return
		}
		limit = n
	}
	es, err := s.st.AuditLog(r.Context(), limit)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, es)
}
