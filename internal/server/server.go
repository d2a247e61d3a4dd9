// Package server is refuge's REST API (/v1): bearer-token authentication
// with roles, RFC 9457 problem details, size-limited strictly decoded
// bodies, long work as operations (202 + id), server-sent events, an
// audit log of every write, /healthz, /readyz, /metrics and the OpenAPI
// document, which is generated from the same route table that routes the
// requests.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/controller"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/store"
)

// Config sets up a Server.
type Config struct {
	Controller *controller.Controller
	// Registry serves /metrics (nil: none).
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Alerts is the alert pipeline posted alerts go to, and approvals
	// come from (nil: alerts and approvals answer 501).
	Alerts AlertPipeline
}

// AlertPipeline is what the API needs of pipeline.Pipeline.
type AlertPipeline interface {
	Submit(ctx context.Context, a *alert.Alert) error
	Pending() []pipeline.Approval
	// Decide approves or declines a held evacuation, recording who.
	Decide(id string, approve bool, by string) error
}

// Server is the HTTP API.
type Server struct {
	cfg Config
	c   *controller.Controller
	st  *store.Store
	log *slog.Logger
	mux *http.ServeMux

	mu     sync.Mutex
	tokens map[string]cachedToken
}

type cachedToken struct {
	tok store.Token
	at  time.Time
}

// tokenCacheTTL bounds how long a token stays usable after it is deleted.
const tokenCacheTTL = 10 * time.Second

// New returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.Controller == nil {
		return nil, errors.New("server: Config.Controller is required")
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, c: cfg.Controller, st: cfg.Controller.Store(), log: lg, mux: http.NewServeMux(),
		tokens: map[string]cachedToken{}}
	for _, rt := range s.routes() {
		s.mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path+" (see /v1/openapi.json)")
	})
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The mux answers a known path with the wrong method with 405 in plain
	// text; make it a problem.
	if _, pattern := s.mux.Handler(r); pattern == "" || pattern == "/" {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if _, p2 := s.mux.Handler(withMethod(r, m)); p2 != "" && p2 != "/" {
				w.Header().Set("Allow", m)
				writeProblem(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; use "+m)
				return
			}
		}
	}
	s.mux.ServeHTTP(w, r)
}

func withMethod(r *http.Request, m string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Method = m
	return r2
}

// access is who may call a route.
type access int

const (
	public access = iota
	viewer
	operator
	admin
	relay // alert-relay, operator and admin
)

func (a access) allows(role store.Role) bool {
	switch a {
	case public:
		return true
	case relay:
		return role == store.RoleAlertRelay || role == store.RoleOperator || role == store.RoleAdmin
	}
	rank := map[store.Role]access{store.RoleViewer: viewer, store.RoleOperator: operator, store.RoleAdmin: admin}
	r, ok := rank[role]
	return ok && r >= a
}

func (a access) String() string {
	return [...]string{"public", "viewer", "operator", "admin", "alert-relay"}[a]
}

type ctxKey struct{}

// tokenOf returns the caller's token (zero for public routes).
func tokenOf(r *http.Request) store.Token {
	t, _ := r.Context().Value(ctxKey{}).(store.Token)
	return t
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// wrap authenticates, authorises, logs and audits one route.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		var tok store.Token
		defer func() {
			s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
				"token", tok.ID, "ms", float64(time.Since(t0).Microseconds())/1000)
		}()
		if rt.Access != public {
			var ok bool
			if tok, ok = s.authenticate(sw, r, rt); !ok {
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, tok))
		}
		if r.Method != http.MethodGet {
			defer s.audit(r, tok, sw)
		}
		rt.handler(sw, r)
	})
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, rt route) (store.Token, bool) {
	h := r.Header.Get("Authorization")
	const bearer = "Bearer "
	if h == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="refuge"`)
		writeProblem(w, http.StatusUnauthorized, "no token: send Authorization: Bearer TOKEN (create one with refuge token create)")
		s.audit(r, store.Token{}, &statusWriter{status: http.StatusUnauthorized})
		return store.Token{}, false
	}
	if len(h) <= len(bearer) || h[:len(bearer)] != bearer {
		w.Header().Set("WWW-Authenticate", `Bearer realm="refuge", error="invalid_request"`)
		writeProblem(w, http.StatusUnauthorized, "the Authorization header is not a bearer token")
		return store.Token{}, false
	}
	tok, err := s.lookup(r.Context(), h[len(bearer):])
	switch {
	case errors.Is(err, store.ErrNotFound):
		w.Header().Set("WWW-Authenticate", `Bearer realm="refuge", error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, "unknown token")
		s.audit(r, store.Token{}, &statusWriter{status: http.StatusUnauthorized})
		return tok, false
	case err != nil:
		writeProblem(w, http.StatusServiceUnavailable, "cannot check the token now: "+err.Error())
		return tok, false
	case !rt.Access.allows(tok.Role):
		writeProblem(w, http.StatusForbidden, "role "+string(tok.Role)+" may not "+r.Method+" "+rt.Path+" (needs "+rt.Access.String()+")")
		s.audit(r, tok, &statusWriter{status: http.StatusForbidden})
		return tok, false
	}
	return tok, true
}

func (s *Server) lookup(ctx context.Context, secret string) (store.Token, error) {
	h := store.HashToken(secret)
	s.mu.Lock()
	c, ok := s.tokens[h]
	s.mu.Unlock()
	if ok && time.Since(c.at) < tokenCacheTTL {
		return c.tok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	tok, err := s.st.Authenticate(ctx, secret)
	if err != nil {
		return tok, err
	}
	s.mu.Lock()
	if len(s.tokens) > 10000 {
		clear(s.tokens)
	}
	s.tokens[h] = cachedToken{tok, time.Now()}
	s.mu.Unlock()
	return tok, nil
}

// audit records a write (or a refused one).
func (s *Server) audit(r *http.Request, tok store.Token, sw *statusWriter) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 3*time.Second)
	defer cancel()
	e := store.AuditEntry{Token: tok.ID, Name: tok.Name, Role: tok.Role, Method: r.Method, Path: r.URL.Path, Status: sw.status}
	if err := s.st.Audit(ctx, e); err != nil {
		s.log.Warn("audit entry not written", "path", r.URL.Path, "err", err)
	}
}

// metrics serves /metrics.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Registry == nil {
		writeProblem(w, http.StatusNotFound, "metrics are not enabled")
		return
	}
	promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}
