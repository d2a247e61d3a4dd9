// Package gateway is refuge's site gateway: a TCP reverse proxy that
// forwards each service's public port to the address its VM answers on
// now, wherever that VM runs. A listener picks the service by port (tcp),
// by the TLS server name of the ClientHello, passed through untouched
// (tls), or by the Host of the first HTTP request (http).
//
// The routing table sits behind an atomic pointer: when the controller
// reports a switchover (SetBackends, or PUT /v1/routes/{service} on the
// admin endpoint) the table is swapped at once, new connections go to the
// new backends, and existing connections drain — they keep their backend
// until they close, or until the drain timeout closes them. A service may
// have several backends: each new connection goes to the next one in
// turn among those whose last health check passed (the others only when
// none did), and to the next if dialling fails. Prometheus metrics count
// connections, bytes, errors and switchover (drain) times.
package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// table is an immutable routing table; a switchover swaps in a new one.
type table struct {
	// backends maps service → its host:port (one or more).
	backends map[string][]string
	// version counts swaps.
	version uint64
}

// listener is one configured listener's fixed routes.
type listener struct {
	cfg   ListenerConfig
	ln    net.Listener
	hosts map[string]string // exact host → service
	wild  map[string]string // "*.suffix" entry's suffix ("example.org") → service
	def   string            // default (or the tcp listener's) service
}

// route returns the service for a host name ("" when none).
func (l *listener) route(host string) string {
	if l.cfg.Protocol == TCP {
		return l.def
	}
	if s, ok := l.hosts[host]; ok {
		return s
	}
	if _, rest, ok := strings.Cut(host, "."); ok {
		if s, ok := l.wild[rest]; ok {
			return s
		}
	}
	return l.def
}

// conn is one proxied connection.
type conn struct {
	client, backend net.Conn
	service, addr   string
	drain           *drain // set when a switchover moved the service away
}

// drain tracks the connections left on a service's previous backends.
type drain struct {
	service string
	start   time.Time
	left    int
	timer   *time.Timer
}

// Switchover is the result of SetBackends.
type Switchover struct {
	Service string   `json:"service"`
	From    []string `json:"from"`
	To      []string `json:"to"`
	// Draining counts the connections still on backends no longer in To.
	Draining int `json:"draining"`
	// SwapSeconds is how long the route swap itself took.
	SwapSeconds float64 `json:"swap_seconds"`
}

// Gateway proxies connections; create it with New, start it with Start.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
	listeners []*listener
	table     atomic.Pointer[table]
	next      atomic.Uint64 // round-robin among a service's backends
	metrics   *metrics
	health    *health

	mu     sync.Mutex // guards conns, drains, closed and table swaps
	conns  map[*conn]struct{}
	closed bool

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// Options are the gateway's run-time dependencies.
type Options struct {
	// Logger (default: discard).
	Logger *slog.Logger
	// Registerer receives the gateway's metrics (default: a private
	// registry, see Registry).
	Registerer prometheus.Registerer
	// Now is the clock for switchover times (default time.Now).
	Now func() time.Time
}

// New checks cfg and builds a gateway; nothing listens until Start.
func New(cfg Config, opts Options) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: invalid configuration: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	g := &Gateway{cfg: cfg, log: opts.Logger.With("site", cfg.Site), now: opts.Now, conns: map[*conn]struct{}{}}
	m, err := newMetrics(opts.Registerer, cfg.Site)
	if err != nil {
		return nil, err
	}
	g.metrics = m
	byName := map[string]*listener{}
	for _, lc := range cfg.Listeners {
		l := &listener{cfg: lc, hosts: map[string]string{}, wild: map[string]string{}}
		g.listeners = append(g.listeners, l)
		byName[lc.Name] = l
	}
	t := &table{backends: map[string][]string{}}
	for _, s := range cfg.Services {
		l := byName[s.Listener]
		t.backends[s.Name] = slices.Clone(s.backendList())
		if s.Default || l.cfg.Protocol == TCP {
			l.def = s.Name
		}
		for _, h := range s.Hosts {
			if suffix, ok := strings.CutPrefix(h, "*."); ok {
				l.wild[strings.TrimSuffix(strings.ToLower(suffix), ".")] = s.Name
			} else {
				l.hosts[strings.TrimSuffix(strings.ToLower(h), ".")] = s.Name
			}
		}
	}
	g.table.Store(t)
	g.health = newHealth(g, orDefault(cfg.Health.Interval, 2*time.Second), orDefault(cfg.Health.Timeout, time.Second))
	return g, nil
}

// Start binds every listener and starts serving and health-checking in
// the background; Close stops it.
func (g *Gateway) Start(ctx context.Context) error {
	ctx, g.cancel = context.WithCancel(ctx)
	var lc net.ListenConfig
	for _, l := range g.listeners {
		ln, err := lc.Listen(ctx, "tcp", l.cfg.Listen)
		if err != nil {
			g.Close()
			return fmt.Errorf("gateway: listener %q: %w", l.cfg.Name, err)
		}
		l.ln = ln
	}
	for _, l := range g.listeners {
		g.wg.Add(1)
		go g.accept(ctx, l)
	}
	g.wg.Add(1)
	go func() { defer g.wg.Done(); g.health.run(ctx) }()
	return nil
}

// Addr returns the bound address of the named listener (nil before Start).
func (g *Gateway) Addr(name string) net.Addr {
	for _, l := range g.listeners {
		if l.cfg.Name == name && l.ln != nil {
			return l.ln.Addr()
		}
	}
	return nil
}

// Close stops listening, closes every connection and waits for the
// gateway's goroutines.
func (g *Gateway) Close() {
	if g.cancel != nil {
		g.cancel()
	}
	for _, l := range g.listeners {
		if l.ln != nil {
			l.ln.Close()
		}
	}
	g.mu.Lock()
	g.closed = true
	for c := range g.conns {
		c.client.Close()
		c.backend.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// Routes returns each service's current backends.
func (g *Gateway) Routes() map[string][]string {
	t := g.table.Load()
	out := make(map[string][]string, len(t.backends))
	for k, v := range t.backends {
		out[k] = slices.Clone(v)
	}
	return out
}

// SetBackend is SetBackends with one backend.
func (g *Gateway) SetBackend(service, backend string) (Switchover, error) {
	return g.SetBackends(service, []string{backend})
}

// SetBackends points service at backends for new connections; connections
// to a backend no longer listed drain (and are closed after the drain
// timeout). Setting the current backends again is a no-op.
func (g *Gateway) SetBackends(service string, backends []string) (Switchover, error) {
	if len(backends) == 0 {
		return Switchover{}, fmt.Errorf("gateway: no backend given for %s", service)
	}
	for i, b := range backends {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return Switchover{}, fmt.Errorf("gateway: backend %q for %s must be host:port: %w", b, service, err)
		}
		if slices.Contains(backends[:i], b) {
			return Switchover{}, fmt.Errorf("gateway: backend %q for %s is listed twice", b, service)
		}
	}
	backends = slices.Clone(backends)
	start := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.table.Load()
	from, ok := old.backends[service]
	if !ok {
		return Switchover{}, fmt.Errorf("gateway: no service %q (known: %s)", service, strings.Join(g.cfg.serviceNames(), ", "))
	}
	sw := Switchover{Service: service, From: slices.Clone(from), To: slices.Clone(backends)}
	if slices.Equal(from, backends) {
		return sw, nil
	}
	next := &table{backends: make(map[string][]string, len(old.backends)), version: old.version + 1}
	for k, v := range old.backends {
		next.backends[k] = v
	}
	next.backends[service] = backends
	g.table.Store(next)
	sw.SwapSeconds = g.now().Sub(start).Seconds()

	d := &drain{service: service, start: start}
	for c := range g.conns {
		if c.service == service && !slices.Contains(backends, c.addr) && c.drain == nil {
			c.drain = d
			d.left++
		}
	}
	sw.Draining = d.left
	g.metrics.switchovers.WithLabelValues(service).Inc()
	g.log.Info("switchover", "service", service, "from", from, "to", backends, "draining", d.left)
	if d.left == 0 {
		g.metrics.drainSeconds.WithLabelValues(service).Observe(0)
	} else if timeout := g.cfg.drain(); timeout > 0 {
		d.timer = time.AfterFunc(timeout, func() { g.forceDrain(d) })
	}
	g.health.kickNow()
	return sw, nil
}

// forceDrain closes the connections still left on a drained backend.
func (g *Gateway) forceDrain(d *drain) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.conns {
		if c.drain == d {
			g.log.Info("drain timeout: closing connection", "service", d.service, "backend", c.addr)
			c.client.Close()
			c.backend.Close()
		}
	}
}

func (g *Gateway) accept(ctx context.Context, l *listener) {
	defer g.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			g.log.Warn("accept", "listener", l.cfg.Name, "err", err)
			g.metrics.errors.WithLabelValues("", "accept").Inc()
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.serve(ctx, l, c)
		}()
	}
}

// peekTimeout bounds how long a client may take to send what routing needs.
const peekTimeout = 10 * time.Second

// serve routes one client connection and pipes it to its backend.
func (g *Gateway) serve(ctx context.Context, l *listener, client net.Conn) {
	defer client.Close()
	br := bufio.NewReaderSize(client, maxHello+5)
	host := ""
	if l.cfg.Protocol != TCP {
		_ = client.SetReadDeadline(time.Now().Add(peekTimeout))
		parse := ParseSNI
		if l.cfg.Protocol == HTTP {
			parse = ParseHost
		}
		h, err := peek(br, parse)
		if err != nil {
			g.metrics.errors.WithLabelValues("", "parse").Inc()
			g.log.Debug("unroutable connection", "listener", l.cfg.Name, "remote", client.RemoteAddr(), "err", err)
			if l.cfg.Protocol == HTTP {
				io.WriteString(client, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
			}
			return
		}
		host = h
		_ = client.SetReadDeadline(time.Time{})
	}
	service := l.route(host)
	if service == "" {
		g.metrics.errors.WithLabelValues("", "no_route").Inc()
		g.log.Debug("no service for host", "listener", l.cfg.Name, "host", host)
		if l.cfg.Protocol == HTTP {
			io.WriteString(client, "HTTP/1.1 421 Misdirected Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		}
		return
	}
	backend, addr, err := g.dial(ctx, service)
	if err != nil {
		if l.cfg.Protocol == HTTP {
			io.WriteString(client, "HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		}
		return
	}
	c := &conn{client: client, backend: backend, service: service, addr: addr}
	if !g.track(c) {
		backend.Close()
		return
	}
	defer g.untrack(c)
	g.metrics.connections.WithLabelValues(service).Inc()
	active := g.metrics.active.WithLabelValues(service)
	active.Inc()
	defer active.Dec()

	done := make(chan struct{})
	go func() {
		defer close(done)
		n, _ := io.Copy(backend, br) // client → backend, with the peeked bytes
		g.metrics.bytes.WithLabelValues(service, "in").Add(float64(n))
		closeWrite(backend)
	}()
	n, _ := io.Copy(client, backend)
	g.metrics.bytes.WithLabelValues(service, "out").Add(float64(n))
	closeWrite(client)
	<-done
	backend.Close()
}

// dial connects to one of service's backends: the next in turn among
// those whose last health check passed, then the others; a backend that
// refuses is skipped for the next.
func (g *Gateway) dial(ctx context.Context, service string) (net.Conn, string, error) {
	var up, down []string
	for _, b := range g.table.Load().backends[service] {
		if g.Up(b) {
			up = append(up, b)
		} else {
			down = append(down, b)
		}
	}
	turn := g.next.Add(1)
	order := make([]string, 0, len(up)+len(down))
	for _, list := range [][]string{up, down} {
		for i := range list {
			order = append(order, list[(int(turn%uint64(len(list)))+i)%len(list)])
		}
	}
	d := net.Dialer{Timeout: orDefault(g.cfg.DialTimeout, 3*time.Second)}
	var errs []error
	for _, addr := range order {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c, addr, nil
		}
		g.metrics.errors.WithLabelValues(service, "dial").Inc()
		g.log.Warn("backend unreachable", "service", service, "backend", addr, "err", err)
		errs = append(errs, err)
	}
	return nil, "", fmt.Errorf("gateway: every backend of %s refused: %w", service, errors.Join(errs...))
}

// closeWrite half-closes a TCP connection so the other side sees EOF.
func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	c.Close()
}

// peek reads until parse stops asking for more, without consuming.
func peek(br *bufio.Reader, parse func([]byte) (string, error)) (string, error) {
	for n := 1; ; {
		b, err := br.Peek(n)
		if len(b) > 0 {
			h, perr := parse(b[:br.Buffered()])
			if !errors.Is(perr, errIncomplete) {
				return h, perr
			}
		}
		if err != nil {
			return "", fmt.Errorf("reading the routing header: %w", err)
		}
		n = br.Buffered() + 1
		if n > br.Size() {
			return "", errors.New("routing header too long")
		}
	}
}

func (g *Gateway) track(c *conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.conns[c] = struct{}{}
	return true
}

func (g *Gateway) untrack(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.conns, c)
	if d := c.drain; d != nil {
		d.left--
		if d.left == 0 {
			if d.timer != nil {
				d.timer.Stop()
			}
			g.metrics.drainSeconds.WithLabelValues(d.service).Observe(g.now().Sub(d.start).Seconds())
			g.log.Info("drained", "service", d.service)
		}
	}
}
