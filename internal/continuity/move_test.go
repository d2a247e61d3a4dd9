package continuity

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/continuity/dns"
	"github.com/refuge-project/refuge/internal/continuity/dnstest"
	"github.com/refuge-project/refuge/internal/continuity/gateway"
	"github.com/refuge-project/refuge/internal/model"
)

// TestMain doubles as the "VM": with REFUGE_TEST_VM=name@addr the test
// binary (started inside a site's network namespace) serves HTTP on addr,
// answering name, until SIGTERM, then shuts down gracefully.
func TestMain(m *testing.M) {
	if spec := os.Getenv("REFUGE_TEST_VM"); spec != "" {
		os.Exit(serveVM(spec))
	}
	goleak.VerifyTestMain(m)
}

func serveVM(spec string) int {
	name, addr, _ := strings.Cut(spec, "@")
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, name)
	})}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "vm:", err)
		return 1
	}
	return 0
}

// fakeRoutes and fakeDNS record what the Coordinator does.
type fakeRoutes struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeRoutes) SetBackends(_ context.Context, service string, backends []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, service+"→"+strings.Join(backends, ","))
	return f.err
}

type fakeDNS struct {
	switched []string
	ttl      map[string]uint32
	err      error
}

func (f *fakeDNS) Switch(_ context.Context, name string, from, to []netip.Addr, _ uint32) error {
	f.switched = append(f.switched, fmt.Sprintf("%s %v→%v", name, from, to))
	return f.err
}

func (f *fakeDNS) LowerTTL(_ context.Context, name string, ttl uint32) (dns.Records, error) {
	old := f.ttl[name]
	f.ttl[name] = min(old, ttl)
	return dns.Records{Name: name, TTL: old}, f.err
}

func (f *fakeDNS) SetTTL(_ context.Context, name string, ttl uint32) (dns.Records, error) {
	f.ttl[name] = ttl
	return dns.Records{Name: name, TTL: ttl}, f.err
}

func TestCoordinator(t *testing.T) {
	ra, rb := &fakeRoutes{}, &fakeRoutes{}
	fd := &fakeDNS{ttl: map[string]uint32{"moodle.example.test.": 300}}
	var events []Event
	c := &Coordinator{
		DNS: fd,
		Sites: map[string]Site{
			"osaka": {Gateway: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, Routes: ra},
			"tokyo": {Gateway: []netip.Addr{netip.MustParseAddr("198.51.100.1")}, Routes: rb},
		},
		Services: map[string]Service{"moodle": {FQDN: "moodle.example.test.", Route: "moodle-http", Backends: map[string][]string{"osaka": {"10.1.0.5:80"}, "tokyo": {"10.2.0.5:80", "10.2.0.6:80"}}}},
		Report:   func(e Event) { events = append(events, e) },
	}
	ctx := context.Background()
	if err := c.LowerTTL(ctx, []string{"moodle"}, 5); err != nil || fd.ttl["moodle.example.test."] != 5 {
		t.Fatalf("lower: %v %v", err, fd.ttl)
	}
	if err := c.Switchover(ctx, "vm1", "moodle", "osaka", "tokyo"); err != nil {
		t.Fatal(err)
	}
	if ra.calls[0] != "moodle-http→10.2.0.5:80,10.2.0.6:80" || rb.calls[0] != "moodle-http→10.2.0.5:80,10.2.0.6:80" {
		t.Fatalf("gateways: %v %v", ra.calls, rb.calls)
	}
	if fd.switched[0] != "moodle.example.test. [192.0.2.1]→[198.51.100.1]" {
		t.Fatalf("dns: %v", fd.switched)
	}
	if err := c.RestoreTTL(ctx, []string{"moodle"}); err != nil || fd.ttl["moodle.example.test."] != 300 {
		t.Fatalf("restore: %v %v", err, fd.ttl)
	}
	// A failing gateway does not stop the DNS step; the error names it.
	ra.err = fmt.Errorf("connection refused")
	err := c.Switchover(ctx, "vm1", "moodle", "tokyo", "osaka")
	if err == nil || !strings.Contains(err.Error(), "gateway at osaka: connection refused") || len(fd.switched) != 2 {
		t.Fatalf("err %v, dns %v", err, fd.switched)
	}
	if len(events) != 1+3+1+3 {
		t.Fatalf("events %d: %+v", len(events), events)
	}
	if err := c.Switchover(ctx, "vm1", "nope", "a", "b"); err == nil {
		t.Fatal("unknown service accepted")
	}
	// Without gateways, DNS points at the VMs themselves.
	direct := &Coordinator{DNS: fd, Services: c.Services}
	if err := direct.Switchover(ctx, "vm1", "moodle", "osaka", "tokyo"); err != nil {
		t.Fatal(err)
	}
	if got := fd.switched[2]; got != "moodle.example.test. [10.1.0.5]→[10.2.0.5 10.2.0.6]" { // without gateways, every backend of the site
		t.Fatalf("direct: %s", got)
	}
}

// requireRoot skips unless root and ip(8) are there (or fails when
// REFUGE_INTEGRATION=1).
func requireRoot(t *testing.T) {
	t.Helper()
	msg := ""
	if os.Geteuid() != 0 {
		msg = "needs root to create network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		msg = "needs ip(8) from iproute2"
	}
	if msg == "" {
		return
	}
	if os.Getenv("REFUGE_INTEGRATION") == "1" {
		t.Fatal("REFUGE_INTEGRATION=1 but the test " + msg)
	}
	t.Skip("integration test skipped: " + msg)
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// site is a network namespace joined to the host by a veth pair: the host
// end holds .1 (where the site's gateway listens), the namespace end .2
// (the VM).
type site struct {
	ns, host, vm string
}

func newSite(t *testing.T, name string, subnet int) site {
	t.Helper()
	id := fmt.Sprintf("%s%d", name, os.Getpid()%100000)
	s := site{ns: "rfg-" + id, host: fmt.Sprintf("10.231.%d.1", subnet), vm: fmt.Sprintf("10.231.%d.2", subnet)}
	ip(t, "netns", "add", s.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", s.ns).Run() })
	ip(t, "link", "add", "rh"+id, "type", "veth", "peer", "name", "rn"+id)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "rh"+id).Run() })
	ip(t, "link", "set", "rn"+id, "netns", s.ns)
	ip(t, "addr", "add", s.host+"/24", "dev", "rh"+id)
	ip(t, "link", "set", "rh"+id, "up")
	ip(t, "-n", s.ns, "addr", "add", s.vm+"/24", "dev", "rn"+id)
	ip(t, "-n", s.ns, "link", "set", "rn"+id, "up")
	ip(t, "-n", s.ns, "link", "set", "lo", "up")
	return s
}

// vm is the service's process inside a site.
type vm struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startVM(t *testing.T, s site, name string) *vm {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	v := &vm{addr: net.JoinHostPort(s.vm, "8080"), done: make(chan struct{})}
	v.cmd = exec.Command("ip", "netns", "exec", s.ns, exe, "-test.run=^$")
	v.cmd.Env = append(os.Environ(), "REFUGE_TEST_VM="+name+"@"+v.addr)
	v.cmd.Stderr = os.Stderr
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = v.cmd.Wait(); close(v.done) }()
	t.Cleanup(v.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if body, err := fetch(context.Background(), v.addr, "x"); err == nil && body == name {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("vm %s at %s not answering", name, v.addr)
		}
		select {
		case <-v.done:
			t.Fatalf("vm %s exited", name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends the VM gracefully (in-flight requests finish) and waits.
func (v *vm) stop() { dnstest.Stop(v.cmd.Process, v.done, syscall.SIGTERM, 10*time.Second) }

// fetch GETs http://host/ from addr on a new connection.
func fetch(ctx context.Context, addr, host string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

// resolver is a stub resolver with a cache that honours the TTL, as a
// client's would.
type resolver struct {
	server  string
	addr    netip.Addr
	expires time.Time
}

func (r *resolver) resolve(ctx context.Context, name string) (netip.Addr, error) {
	if time.Now().Before(r.expires) {
		return r.addr, nil
	}
	m := new(mdns.Msg).SetQuestion(name, mdns.TypeA)
	c := &mdns.Client{Timeout: time.Second}
	resp, _, err := c.ExchangeContext(ctx, m, r.server)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*mdns.A); ok {
			r.addr, _ = netip.AddrFromSlice(a.A.To4())
			r.expires = time.Now().Add(time.Duration(a.Hdr.Ttl) * time.Second)
			return r.addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no A record for %s", name)
}

// result is one client request.
type result struct {
	at time.Time
	ok bool
}

// outcome summarises a run around the switchover.
type outcome struct {
	Requests, Failed int
	// Window is the longest gap between consecutive successful requests
	// (the time the service was unavailable to this client).
	Window time.Duration
	// Recovered is false when the run ended before a request succeeded
	// again: Window is then a lower bound.
	Recovered bool
	// MedianGap is the usual time between successes (the client's pace),
	// against which Window is to be read.
	MedianGap time.Duration
}

func summarise(rs []result) (o outcome) {
	o.Recovered = true
	var last time.Time
	var gaps []time.Duration
	defer func() {
		if len(gaps) > 0 {
			slices.Sort(gaps)
			o.MedianGap = gaps[len(gaps)/2]
		}
	}()
	for _, r := range rs {
		o.Requests++
		if !r.ok {
			o.Failed++
			continue
		}
		if !last.IsZero() {
			gaps = append(gaps, r.at.Sub(last))
			o.Window = max(o.Window, r.at.Sub(last))
		}
		last = r.at
	}
	if n := len(rs); n > 0 && !rs[n-1].ok {
		o.Recovered = false
		if gap := rs[n-1].at.Sub(last); gap > o.Window {
			o.Window = gap
		}
	}
	return o
}

// TestMoveService moves a service from site A to site B while a client
// resolves its name through Knot and fetches it, with and without the
// gateways, with record TTLs of 300 s and 5 s, and reports the
// unavailability window and the failed requests.
func TestMoveService(t *testing.T) {
	requireRoot(t)
	dnstest.Require(t, dnstest.Knot)
	if testing.Short() {
		t.Skip("-short: the move test runs about 20 s")
	}
	a, b := newSite(t, "a", 41), newSite(t, "b", 42)
	const fqdn = "moodle.example.test."

	zero := model.Duration(0)
	gws := map[string]*gateway.Gateway{}
	for name, s := range map[string]site{"a": a, "b": b} {
		g, err := gateway.New(gateway.Config{
			Site: name, DrainTimeout: &zero,
			Health:    gateway.HealthConfig{Interval: model.Duration(200 * time.Millisecond)},
			Listeners: []gateway.ListenerConfig{{Name: "http", Listen: net.JoinHostPort(s.host, "8080"), Protocol: gateway.HTTP}},
			Services:  []gateway.ServiceConfig{{Name: "moodle", Listener: "http", Hosts: []string{"moodle.example.test"}, Backend: net.JoinHostPort(a.vm, "8080")}},
		}, gateway.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		gws[name] = g
	}

	cases := []struct {
		gateway bool
		ttl     uint32
		after   time.Duration
	}{
		{true, 300, 2 * time.Second},
		{true, 5, 2 * time.Second},
		{false, 300, 4 * time.Second},
		{false, 5, 7 * time.Second},
	}
	var report strings.Builder
	fmt.Fprintf(&report, "| path | record TTL | requests | failed | unavailability window | median gap between requests |\n|---|---|---|---|---|---|\n")
	for _, tc := range cases {
		name := fmt.Sprintf("gateway=%v/ttl=%d", tc.gateway, tc.ttl)
		t.Run(name, func(t *testing.T) {
			for _, g := range gws {
				if _, err := g.SetBackend("moodle", net.JoinHostPort(a.vm, "8080")); err != nil {
					t.Fatal(err)
				}
			}
			first := a.vm
			if tc.gateway {
				first = a.host
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			srv := dnstest.StartT(t, dnstest.Knot, dnstest.Options{
				Zone: "example.test.", Records: []string{fmt.Sprintf("moodle %d IN A %s", tc.ttl, first)},
			})
			up, err := dns.New(dns.Config{Server: srv.Addr, Zone: srv.Zone, KeyName: srv.KeyName, Secret: srv.Secret})
			if err != nil {
				t.Fatal(err)
			}
			coord := &Coordinator{DNS: up, Services: map[string]Service{"moodle": {
				FQDN: fqdn, Route: "moodle",
				Backends: map[string][]string{"a": {net.JoinHostPort(a.vm, "8080")}, "b": {net.JoinHostPort(b.vm, "8080")}},
			}}}
			if tc.gateway {
				coord.Sites = map[string]Site{
					"a": {Gateway: []netip.Addr{netip.MustParseAddr(a.host)}, Routes: Local(gws["a"])},
					"b": {Gateway: []netip.Addr{netip.MustParseAddr(b.host)}, Routes: Local(gws["b"])},
				}
			}

			vmA := startVM(t, a, "A")
			// The client: resolve (cached per TTL), fetch on a new
			// connection, every 10 ms; at most 10 000 requests.
			var mu sync.Mutex
			var results []result
			stop := make(chan struct{})
			clientDone := make(chan struct{})
			go func() {
				defer close(clientDone)
				res := &resolver{server: srv.Addr}
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for i := 0; i < 10000; i++ {
					ok := false
					if addr, err := res.resolve(ctx, fqdn); err == nil {
						body, err := fetch(ctx, net.JoinHostPort(addr.String(), "8080"), "moodle.example.test")
						ok = err == nil && (body == "A" || body == "B")
					}
					mu.Lock()
					results = append(results, result{time.Now(), ok})
					mu.Unlock()
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			waitRequests := func(n int) {
				deadline := time.Now().Add(10 * time.Second)
				for {
					mu.Lock()
					got := len(results)
					mu.Unlock()
					if got >= n || time.Now().After(deadline) {
						return
					}
					select {
					case <-clientDone:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
			waitRequests(50)

			// The move: the destination runs, the switchover is reported,
			// then the source is destroyed.
			startVM(t, b, "B")
			if err := coord.Switchover(ctx, "vm-moodle", "moodle", "a", "b"); err != nil {
				t.Fatal(err)
			}
			vmA.stop()
			mu.Lock()
			n0 := len(results)
			mu.Unlock()
			waitRequests(n0 + int(tc.after/(10*time.Millisecond)))
			close(stop)
			<-clientDone

			mu.Lock()
			o := summarise(results)
			mu.Unlock()
			path := "direct to the VM"
			if tc.gateway {
				path = "through the gateways"
			}
			window := o.Window.Round(time.Millisecond).String()
			if !o.Recovered {
				window = "≥ " + window + " (not recovered when the run ended)"
			}
			fmt.Fprintf(&report, "| %s | %d s | %d | %d | %s | %s |\n", path, tc.ttl, o.Requests, o.Failed, window, o.MedianGap.Round(time.Millisecond))
			t.Logf("%s: %+v", name, o)
			if tc.gateway && (o.Failed != 0 || o.Window > time.Second) {
				t.Errorf("through the gateways: %d failed requests, window %v; want 0 and < 1 s", o.Failed, o.Window)
			}
			if !tc.gateway && o.Failed == 0 {
				t.Errorf("direct: no failed requests — the client did not use the stale record?")
			}
		})
	}
	t.Logf("measured:\n%s", report.String())
	if path := os.Getenv("REFUGE_CONTINUITY_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(report.String()), 0o644)
	}
}
