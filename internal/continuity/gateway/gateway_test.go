package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/model"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// named is an HTTP handler answering with its name.
func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) })
}

func hostport(u string) string {
	return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
}

func testConfig(backends map[string]string) Config {
	zero := model.Duration(0)
	return Config{
		Site:         "osaka",
		DrainTimeout: &zero,
		Health:       HealthConfig{Interval: model.Duration(20 * time.Millisecond), Timeout: model.Duration(200 * time.Millisecond)},
		Listeners: []ListenerConfig{
			{Name: "web", Listen: "127.0.0.1:0", Protocol: HTTP},
			{Name: "tls", Listen: "127.0.0.1:0", Protocol: TLS},
			{Name: "ssh", Listen: "127.0.0.1:0", Protocol: TCP},
		},
		Services: []ServiceConfig{
			{Name: "moodle", Listener: "web", Hosts: []string{"moodle.example.test"}, Backend: backends["moodle"]},
			{Name: "wiki", Listener: "web", Hosts: []string{"*.wiki.example.test"}, Default: true, Backend: backends["wiki"]},
			{Name: "moodle-tls", Listener: "tls", Hosts: []string{"moodle.example.test"}, Backend: backends["moodle-tls"]},
			{Name: "ssh", Listener: "ssh", Backend: backends["ssh"]},
		},
	}
}

func start(t *testing.T, cfg Config) *Gateway {
	t.Helper()
	g, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

// get fetches http://host/ through the gateway's listener on a new
// connection.
func get(t *testing.T, g *Gateway, listener, host string) (string, int) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", g.Addr(listener).String())
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + host + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

func TestRouting(t *testing.T) {
	a := httptest.NewServer(named("moodle-A"))
	defer a.Close()
	w := httptest.NewServer(named("wiki"))
	defer w.Close()
	s := httptest.NewTLSServer(named("moodle-tls"))
	defer s.Close()
	echo := echoServer(t)
	g := start(t, testConfig(map[string]string{"moodle": hostport(a.URL), "wiki": hostport(w.URL), "moodle-tls": hostport(s.URL), "ssh": echo}))

	for host, want := range map[string]string{"moodle.example.test": "moodle-A", "MOODLE.example.test:80": "moodle-A", "x.wiki.example.test": "wiki", "other.test": "wiki"} {
		if got, code := get(t, g, "web", host); got != want || code != 200 {
			t.Errorf("Host %s: %d %q, want %q", host, code, got, want)
		}
	}

	// TLS passes through by SNI: the client talks TLS with the backend.
	tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // test certificate
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", g.Addr("tls").String())
		}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://moodle.example.test/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "moodle-tls" {
		t.Fatalf("tls: %q", b)
	}
	// An unknown SNI on a listener without default is closed.
	c, err := tls.Dial("tcp", g.Addr("tls").String(), &tls.Config{ServerName: "nope.test", InsecureSkipVerify: true}) //nolint:gosec // test
	if err == nil {
		c.Close()
		t.Fatal("unknown SNI was proxied")
	}

	// TCP: bytes both ways.
	conn, err := net.Dial("tcp", g.Addr("ssh").String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "ping\n")
	line, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if line != "ping\n" {
		t.Fatalf("tcp echo %q", line)
	}
	if v := testutil.ToFloat64(g.metrics.connections.WithLabelValues("moodle")); v != 2 {
		t.Errorf("moodle connections = %v, want 2", v)
	}
	if v := testutil.ToFloat64(g.metrics.errors.WithLabelValues("", "no_route")); v != 1 {
		t.Errorf("no_route errors = %v, want 1", v)
	}
}

// echoServer echoes lines until the client closes.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// keepAlive is one client connection carrying several requests.
type keepAlive struct {
	c  net.Conn
	br *bufio.Reader
}

func (k *keepAlive) get(t *testing.T, host string) (string, error) {
	t.Helper()
	fmt.Fprintf(k.c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host)
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// twoBackends starts HTTP servers "A" and "B" and a configuration routing
// every service to A.
func twoBackends(t *testing.T) (cfg Config, a, b string) {
	sa := httptest.NewServer(named("A"))
	t.Cleanup(sa.Close)
	sb := httptest.NewServer(named("B"))
	t.Cleanup(sb.Close)
	a, b = hostport(sa.URL), hostport(sb.URL)
	return testConfig(map[string]string{"moodle": a, "wiki": a, "moodle-tls": a, "ssh": a}), a, b
}

func TestSwitchoverDrains(t *testing.T) {
	cfg, aAddr, bAddr := twoBackends(t)
	g := start(t, cfg)

	c, err := net.Dial("tcp", g.Addr("web").String())
	if err != nil {
		t.Fatal(err)
	}
	old := &keepAlive{c, bufio.NewReader(c)}
	if got, err := old.get(t, "moodle.example.test"); got != "A" || err != nil {
		t.Fatalf("before: %q %v", got, err)
	}
	sw, err := g.SetBackend("moodle", bAddr)
	if err != nil {
		t.Fatal(err)
	}
	if sw.Draining != 1 || len(sw.From) != 1 || sw.From[0] != aAddr {
		t.Fatalf("switchover %+v", sw)
	}
	// New connections go to B, the open one stays with A.
	if got, _ := get(t, g, "web", "moodle.example.test"); got != "B" {
		t.Fatalf("new connection after switchover: %q", got)
	}
	if got, err := old.get(t, "moodle.example.test"); got != "A" || err != nil {
		t.Fatalf("existing connection after switchover: %q %v", got, err)
	}
	// Other services keep their routes; a repeated switchover is a no-op.
	if w := g.Routes()["wiki"]; len(w) != 1 || w[0] != aAddr {
		t.Fatal("wiki moved")
	}
	if sw, _ := g.SetBackend("moodle", bAddr); sw.Draining != 0 {
		t.Fatalf("repeat: %+v", sw)
	}
	c.Close()
	waitFor(t, "the drain to be observed", func() bool {
		return testutil.CollectAndCount(g.metrics.drainSeconds) == 1
	})
	if _, err := g.SetBackend("nope", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "known: moodle, moodle-tls, ssh, wiki") {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := g.SetBackend("moodle", "no-port"); err == nil {
		t.Fatal("bad backend accepted")
	}
}

func TestDrainTimeoutClosesOldConnections(t *testing.T) {
	cfg, _, bAddr := twoBackends(t)
	short := model.Duration(30 * time.Millisecond)
	cfg.DrainTimeout = &short
	g := start(t, cfg)
	c, err := net.Dial("tcp", g.Addr("web").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old := &keepAlive{c, bufio.NewReader(c)}
	if got, _ := old.get(t, "moodle.example.test"); got != "A" {
		t.Fatalf("before: %q", got)
	}
	if _, err := g.SetBackend("moodle", bAddr); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("old connection not closed by the drain timeout: n=%d err=%v", n, err)
	}
}

func TestBackendDown(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	cfg := testConfig(map[string]string{"moodle": dead, "wiki": dead, "moodle-tls": dead, "ssh": dead})
	g := start(t, cfg)
	if _, code := get(t, g, "web", "moodle.example.test"); code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", code)
	}
	if v := testutil.ToFloat64(g.metrics.errors.WithLabelValues("moodle", "dial")); v != 1 {
		t.Fatalf("dial errors %v", v)
	}
	waitFor(t, "the health check to mark the backend down", func() bool {
		return testutil.CollectAndCount(g.metrics.backendUp) == 1 && testutil.ToFloat64(g.metrics.backendUp.WithLabelValues(dead)) == 0
	})
	if g.Up(dead) {
		t.Fatal("dead backend up")
	}
	// Once it listens, the check sees it.
	l2, err := net.Listen("tcp", dead)
	if err != nil {
		t.Skipf("port reused meanwhile: %v", err)
	}
	defer l2.Close()
	waitFor(t, "the backend to come up", func() bool { return g.Up(dead) })
}

func TestAdminAPI(t *testing.T) {
	a := httptest.NewServer(named("A"))
	defer a.Close()
	g := start(t, testConfig(map[string]string{"moodle": hostport(a.URL), "wiki": hostport(a.URL), "moodle-tls": hostport(a.URL), "ssh": hostport(a.URL)}))
	srv := httptest.NewServer(g.AdminHandler("s3cret"))
	defer srv.Close()
	put := func(service, body, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/routes/"+service, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := put("moodle", `{"backend":"127.0.0.1:9"}`, ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := put("moodle", `{"backend":"127.0.0.1:9"}`, "wrong"); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, body := put("nope", `{"backend":"127.0.0.1:9"}`, "s3cret"); code != 404 || !strings.Contains(body, "no service") {
		t.Fatalf("unknown service: %d %s", code, body)
	}
	if code, body := put("moodle", `{"backnd":"127.0.0.1:9"}`, "s3cret"); code != 400 || !strings.Contains(body, "backnd") {
		t.Fatalf("bad body: %d %s", code, body)
	}
	if code, body := put("moodle", `{"backend":"127.0.0.1:9","backends":["127.0.0.1:10"]}`, "s3cret"); code != 400 || !strings.Contains(body, "not both") {
		t.Fatalf("both backend and backends: %d %s", code, body)
	}
	if code, body := put("moodle", `{"backends":["127.0.0.1:9","127.0.0.1:9"]}`, "s3cret"); code != 400 || !strings.Contains(body, "listed twice") {
		t.Fatalf("a backend twice: %d %s", code, body)
	}
	if code, body := put("moodle", `{"backend":"127.0.0.1:9"}`, "s3cret"); code != 200 || !strings.Contains(body, `"to":["127.0.0.1:9"]`) {
		t.Fatalf("switch: %d %s", code, body)
	}
	resp, err := http.Get(srv.URL + "/v1/routes")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `{"service":"moodle","backends":[{"addr":"127.0.0.1:9","up":`) {
		t.Fatalf("routes: %s", b)
	}
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `refuge_gateway_switchovers_total{service="moodle",site="osaka"} 1`) {
		t.Fatalf("metrics:\n%s", b)
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// TestSeveralBackends: a service with three backends at its site. New
// connections take them in turn; once the health check has found one
// down, no connection goes there (none fails); a switchover to a set
// that keeps one backend drains only the connections on the others.
func TestSeveralBackends(t *testing.T) {
	var addrs []string
	for _, n := range []string{"A", "B"} {
		s := httptest.NewServer(named(n))
		t.Cleanup(s.Close)
		addrs = append(addrs, hostport(s.URL))
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	cfg := testConfig(map[string]string{"moodle": addrs[0], "wiki": addrs[0], "moodle-tls": addrs[0], "ssh": addrs[0]})
	cfg.Services[0].Backend, cfg.Services[0].Backends = "", []string{addrs[0], dead, addrs[1]}
	g := start(t, cfg)
	waitFor(t, "the health check to mark the dead backend down", func() bool {
		return g.Up(addrs[0]) && g.Up(addrs[1]) && testutil.CollectAndCount(g.metrics.backendUp) == 3
	})
	seen := map[string]int{}
	for range 6 {
		got, code := get(t, g, "web", "moodle.example.test")
		if code != http.StatusOK {
			t.Fatalf("status %d with a healthy backend left", code)
		}
		seen[got]++
	}
	if seen["A"] != 3 || seen["B"] != 3 {
		t.Errorf("answers %v, want A and B in turn (3 each), none to the dead one", seen)
	}
	if v := testutil.ToFloat64(g.metrics.errors.WithLabelValues("moodle", "dial")); v != 0 {
		t.Errorf("%v dial errors: the dead backend was tried", v)
	}

	c, err := net.Dial("tcp", g.Addr("web").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old := &keepAlive{c, bufio.NewReader(c)}
	first, _ := old.get(t, "moodle.example.test")
	keep := map[string]string{"A": addrs[0], "B": addrs[1]}[first]
	waitFor(t, "the earlier connections to close", func() bool {
		return testutil.ToFloat64(g.metrics.active.WithLabelValues("moodle")) == 1
	})
	sw, err := g.SetBackends("moodle", []string{keep})
	if err != nil {
		t.Fatal(err)
	}
	if sw.Draining != 0 || len(sw.From) != 3 {
		t.Errorf("switchover to the backend the open connection uses: %+v, want nothing to drain", sw)
	}
	if got, err := old.get(t, "moodle.example.test"); got != first || err != nil {
		t.Errorf("open connection after the switchover: %q %v, want %q", got, err, first)
	}
	if _, err := g.SetBackends("moodle", nil); err == nil {
		t.Error("an empty set of backends accepted")
	}
}
