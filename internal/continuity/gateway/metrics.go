package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	reg          *prometheus.Registry // nil when the caller gave a Registerer
	gatherer     prometheus.Gatherer
	connections  *prometheus.CounterVec
	active       *prometheus.GaugeVec
	bytes        *prometheus.CounterVec
	errors       *prometheus.CounterVec
	switchovers  *prometheus.CounterVec
	drainSeconds *prometheus.HistogramVec
	backendUp    *prometheus.GaugeVec
}

func newMetrics(r prometheus.Registerer, site string) (*metrics, error) {
	m := &metrics{}
	if r == nil {
		m.reg = prometheus.NewRegistry()
		r, m.gatherer = m.reg, m.reg
	} else if g, ok := r.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	r = prometheus.WrapRegistererWith(prometheus.Labels{"site": site}, r)
	m.connections = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refuge_gateway_connections_total", Help: "Connections proxied, by service."}, []string{"service"})
	m.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "refuge_gateway_connections_active", Help: "Connections open now, by service."}, []string{"service"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refuge_gateway_bytes_total", Help: "Bytes proxied, by service and direction (in: client to backend)."}, []string{"service", "direction"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refuge_gateway_errors_total", Help: "Connections not proxied, by service and reason (parse, no_route, dial, accept)."}, []string{"service", "reason"})
	m.switchovers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refuge_gateway_switchovers_total", Help: "Route changes, by service."}, []string{"service"})
	m.drainSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "refuge_gateway_switchover_drain_seconds", Help: "Time from a switchover until the last connection to the previous backend closed.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"service"})
	m.backendUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "refuge_gateway_backend_up", Help: "1 when the last TCP health check of the backend succeeded."}, []string{"backend"})
	for _, c := range []prometheus.Collector{m.connections, m.active, m.bytes, m.errors, m.switchovers, m.drainSeconds, m.backendUp} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: registering metrics: %w", err)
		}
	}
	return m, nil
}

// health checks backends with TCP connects.
type health struct {
	g                 *Gateway
	interval, timeout time.Duration
	mu                sync.Mutex
	up                map[string]bool
	kick              chan struct{}
}

func newHealth(g *Gateway, interval, timeout time.Duration) *health {
	return &health{g: g, interval: interval, timeout: timeout, up: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// kickNow asks for a round of checks now (after a switchover).
func (h *health) kickNow() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *health) run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.checkAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		}
	}
}

func (h *health) checkAll(ctx context.Context) {
	current := map[string]bool{}
	for _, bs := range h.g.table.Load().backends {
		for _, b := range bs {
			current[b] = true
		}
	}
	var wg sync.WaitGroup
	for b := range current {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: h.timeout}
			c, err := d.DialContext(ctx, "tcp", b)
			ok := err == nil
			if ok {
				c.Close()
			}
			h.mu.Lock()
			was, known := h.up[b]
			h.up[b] = ok
			h.mu.Unlock()
			if known && was != ok {
				h.g.log.Warn("backend health changed", "backend", b, "up", ok, "err", err)
			}
			v := 0.0
			if ok {
				v = 1
			}
			h.g.metrics.backendUp.WithLabelValues(b).Set(v)
		}()
	}
	wg.Wait()
	// Forget backends no longer routed to.
	h.mu.Lock()
	for b := range h.up {
		if !current[b] {
			delete(h.up, b)
			h.g.metrics.backendUp.DeleteLabelValues(b)
		}
	}
	h.mu.Unlock()
}

// Up reports the last health check of backend (false when not checked yet).
func (g *Gateway) Up(backend string) bool {
	g.health.mu.Lock()
	defer g.health.mu.Unlock()
	return g.health.up[backend]
}

// RouteStatus is one service's entry in GET /v1/routes.
type RouteStatus struct {
	Service  string          `json:"service"`
	Backends []BackendStatus `json:"backends"`
}

// BackendStatus is one backend of a service and its last health check.
type BackendStatus struct {
	Addr string `json:"addr"`
	Up   bool   `json:"up"`
}

// AdminHandler serves /metrics, /healthz, GET /v1/routes and
// PUT /v1/routes/{service} (body {"backend": "host:port"} or
// {"backends": ["host:port", …]}), which reports a switchover. token,
// when not empty, is the bearer token PUT requires.
func (g *Gateway) AdminHandler(token string) http.Handler {
	mux := http.NewServeMux()
	if g.metrics.gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics.gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /v1/routes", func(w http.ResponseWriter, _ *http.Request) {
		routes := g.Routes()
		out := make([]RouteStatus, 0, len(routes))
		for s, bs := range routes {
			rs := RouteStatus{Service: s}
			for _, b := range bs {
				rs.Backends = append(rs.Backends, BackendStatus{Addr: b, Up: g.Up(b)})
			}
			out = append(out, rs)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("PUT /v1/routes/{service}", func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
				return
			}
		}
		var body struct {
			Backend  string   `json:"backend"`
			Backends []string `json:"backends"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		err := dec.Decode(&body)
		if err == nil && (body.Backend == "") == (len(body.Backends) == 0) {
			err = errors.New("give backend or backends, not both")
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be {\"backend\": \"host:port\"} or {\"backends\": [\"host:port\", …]}: " + err.Error()})
			return
		}
		if body.Backend != "" {
			body.Backends = []string{body.Backend}
		}
		sw, err := g.SetBackends(r.PathValue("service"), body.Backends)
		if err != nil {
			status := http.StatusBadRequest
			if strings.Contains(err.Error(), "no service") {
				status = http.StatusNotFound
			}
			writeJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, sw)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ReadToken reads a bearer token file (first line, trimmed).
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("gateway: admin token: %w", err)
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if tok == "" {
		return "", fmt.Errorf("gateway: admin token file %s is empty", path)
	}
	return tok, nil
}
