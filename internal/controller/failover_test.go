package controller

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/controller/controllertest"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/pipeline"
	"github.com/refuge-project/refuge/internal/store"
	"github.com/refuge-project/refuge/internal/world"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, controllertest.LeakOptions()...) }

// logBuf collects the controllers' logs, shown when the test fails.
var logBuf syncBuf

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// countingWorld counts each VM's successful migrations.
type countingWorld struct {
	*world.Sim
	mu   sync.Mutex
	done map[string]int
}

func (w *countingWorld) Driver() hypervisor.Driver { return countingDriver{w} }

type countingDriver struct{ w *countingWorld }

func (d countingDriver) ListDomains(ctx context.Context, host string) ([]hypervisor.Domain, error) {
	return d.w.Sim.Driver().ListDomains(ctx, host)
}

func (d countingDriver) Migrate(ctx context.Context, req hypervisor.MigrateRequest, obs hypervisor.Observer) (hypervisor.Job, error) {
	return d.w.Sim.Driver().Migrate(ctx, req, countingObserver{d.w, obs})
}

type countingObserver struct {
	w   *countingWorld
	obs hypervisor.Observer
}

func (o countingObserver) MigrationDone(r hypervisor.Result) {
	if r.Err == nil {
		o.w.mu.Lock()
		o.w.done[r.Domain]++
		o.w.mu.Unlock()
	}
	o.obs.MigrationDone(r)
}

// runCountingWorld runs a counting simulated world of fed, speed times
// faster than real time, until the test's cleanup (after the cluster's,
// when the cluster is made after it).
func runCountingWorld(t *testing.T, fed *model.Federation, speed float64) *countingWorld {
	sw, err := NewSimWorld(fed, speed)
	if err != nil {
		t.Fatal(err)
	}
	w := &countingWorld{Sim: sw, done: map[string]int{}}
	wctx, stopWorld := context.WithCancel(context.Background())
	worldDone := make(chan struct{})
	go func() { defer close(worldDone); _ = w.Run(wctx) }()
	t.Cleanup(func() { stopWorld(); <-worldDone })
	return w
}

// site is one controller with its embedded member, as at one site.
type site struct {
	cfg    store.MemberConfig
	member *store.Member
	st     *store.Store
	ctl    *Controller
	cancel context.CancelFunc
	done   chan struct{}
	// closed is closed once a killed member has stopped.
	closed chan struct{}
	// alerts is the controller's alert pipeline (cluster.pipeline).
	alerts *pipeline.Pipeline
}

// cluster is three controllers on one simulated federation.
type cluster struct {
	t     *testing.T
	world *countingWorld
	sites []*site
	fp    func(id, name string) bool
	// pipeline, if set, configures each controller's alert pipeline.
	pipeline *pipeline.Config
}

func newCluster(t *testing.T, w *countingWorld, fp func(id, name string) bool) *cluster {
	return newClusterWith(t, &cluster{t: t, world: w, fp: fp})
}

// newClusterWith starts c's members and controllers.
func newClusterWith(t *testing.T, c *cluster) *cluster {
	dir := t.TempDir()
	var peers []string
	for i := range 3 {
		cu, err := store.FreeURL()
		if err != nil {
			t.Fatal(err)
		}
		pu, err := store.FreeURL()
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("site%d", i)
		c.sites = append(c.sites, &site{cfg: store.MemberConfig{Name: name, DataDir: filepath.Join(dir, name),
			ClientURL: cu, PeerURL: pu, Fast: true, StartTimeout: 20 * time.Second}})
		peers = append(peers, name+"="+pu)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, s := range c.sites {
		s.cfg.InitialCluster = strings.Join(peers, ",")
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.member, errs[i] = store.StartMember(s.cfg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	for _, s := range c.sites {
		c.startController(s)
	}
	t.Cleanup(c.close)
	return c
}

func (c *cluster) startController(s *site) {
	st, err := store.Open([]string{s.member.ClientURL()})
	if err != nil {
		c.t.Fatal(err)
	}
	id := s.cfg.Name
	ctl, err := New(Config{ID: id, Store: st, World: c.world, TTL: 1, SettleTimeout: 20 * time.Second,
		Logger:    slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Failpoint: func(name string) bool { return c.fp(id, name) }})
	if err != nil {
		c.t.Fatal(err)
	}
	if c.pipeline != nil {
		if s.alerts, err = ctl.AlertPipeline(*c.pipeline); err != nil {
			c.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.st, s.ctl, s.cancel, s.done = st, ctl, cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := ctl.Run(ctx); err != nil {
			c.t.Errorf("%s: Run: %v", id, err)
		}
	}()
}

// kill stops a site as a crash would: its controller acts no more, its
// member and client go.
func (c *cluster) kill(s *site) {
	s.ctl.Kill()
	s.closed = make(chan struct{})
	go func() {
		defer close(s.closed)
		s.member.Close() // etcd's graceful stop takes seconds
	}()
	<-s.done
	s.st.Close()
}

// restart brings a killed site back: its member rejoins from its data,
// a fresh controller campaigns.
func (c *cluster) restart(s *site) {
	<-s.closed
	m, err := store.StartMember(s.cfg)
	if err != nil {
		c.t.Fatalf("restart %s: %v", s.cfg.Name, err)
	}
	s.member = m
	c.startController(s)
}

func (c *cluster) close() {
	for _, s := range c.sites {
		s.cancel()
		<-s.done
		s.st.Close()
	}
	for _, s := range c.sites {
		s.member.Close()
	}
}

// leader waits for a leader that has taken over, or fails.
func (c *cluster) leader(timeout time.Duration) *site {
	var l *site
	if !controllertest.Poll(timeout, func() bool {
		for _, s := range c.sites {
			if s.ctl.IsLeader() {
				l = s
				return true
			}
		}
		return false
	}) {
		c.t.Fatalf("no leader after %v", timeout)
	}
	return l
}

// TestFailover evacuates the 123 VMs of Kochi while killing the leader at
// five failpoints in turn (the third time each is reached), restarting
// each killed site after its successor took over. A new leader must
// resume within 5 s; at the end every VM runs on exactly one host, every
// Kochi VM is out, and none was migrated twice.
func TestFailover(t *testing.T) {
	fed := controllertest.Nankai(t)
	w := runCountingWorld(t, fed, 30)

	var armed struct {
		sync.Mutex
		id, name string
		hits     int
		fired    chan struct{}
	}
	fp := func(id, name string) bool {
		armed.Lock()
		defer armed.Unlock()
		if armed.fired == nil || id != armed.id || name != armed.name {
			return false
		}
		if armed.hits++; armed.hits != 3 {
			return false
		}
		close(armed.fired)
		return true
	}
	c := newCluster(t, w, fp)
	lead := c.leader(15 * time.Second)
	kochi := fed.Sites[0].Name
	op, err := lead.ctl.Evacuate(context.Background(), EvacuationRequest{Sites: []SiteRequest{{Site: kochi, Deadline: 3 * time.Hour}}, By: "test"})
	if err != nil {
		t.Fatal(err)
	}
	atRisk := 0
	for _, vm := range fed.VMs {
		if hostSite(fed, vm.Host) == kochi {
			atRisk++
		}
	}
	if atRisk < 100 {
		t.Fatalf("%d VMs at risk, want >= 100", atRisk)
	}
	for i, name := range Failpoints[:5] {
		fired := make(chan struct{})
		armed.Lock()
		armed.id, armed.name, armed.hits, armed.fired = lead.cfg.Name, name, 0, fired
		armed.Unlock()
		select {
		case <-fired:
		case <-time.After(30 * time.Second):
			t.Fatalf("failpoint %s never reached on %s", name, lead.cfg.Name)
		}
		killed := time.Now() // the controller crashed at the failpoint
		c.kill(lead)
		var next *site
		var resumed time.Duration
		if !controllertest.Poll(10*time.Second, func() bool {
			for _, s := range c.sites {
				if s == lead {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				got, err := s.st.Operation(ctx, op.ID)
				cancel()
				if err == nil && got.Resumes == i+1 && got.Leader == s.cfg.Name {
					next, resumed = s, time.Since(killed)
					return true
				}
			}
			return false
		}) {
			t.Fatalf("failpoint %s: no controller resumed %s within 10 s", name, op.ID)
		}
		t.Logf("failpoint %s: %s killed, %s resumed after %v", name, lead.cfg.Name, next.cfg.Name, resumed.Round(time.Millisecond))
		if resumed > 5*time.Second {
			t.Errorf("failpoint %s: resumed after %v, want <= 5 s", name, resumed)
		}
		c.restart(lead)
		lead = next
	}
	var final *store.Operation
	if !controllertest.Poll(60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		got, err := lead.st.Operation(ctx, op.ID)
		final = got
		return err == nil && !store.Live(got.Status)
	}) {
		t.Fatalf("operation not finished: %+v", final)
	}
	if final.Status != store.OpSucceeded || final.Progress.Migrated != atRisk {
		t.Errorf("operation %s: %d of %d migrated; want all (%+v)", final.Status, final.Progress.Migrated, atRisk, final.Progress)
		logBuf.mu.Lock()
		for _, l := range strings.Split(logBuf.b.String(), "\n") {
			if strings.Contains(l, "failpoint") || strings.Contains(l, "resumed") || strings.Contains(l, "did not start") {
				t.Log(l)
			}
		}
		logBuf.mu.Unlock()
		steps, _ := lead.st.Steps(context.Background(), op.ID)
		for _, st := range steps {
			if st.State != store.VMMigrated {
				t.Logf("  %+v", st)
			}
		}
	}
	var checkErr error
	var placement []int
	w.Do(func() {
		checkErr = w.Check()
		placement, _ = w.State()
	})
	if checkErr != nil {
		t.Errorf("invariants: %v", checkErr)
	}
	ix := w.Index()
	for v, h := range placement {
		switch {
		case h < 0:
			t.Errorf("VM %s is on no host", ix.Fed.VMs[v].Name)
		case ix.Fed.Sites[ix.HostSite(h)].Name == kochi:
			t.Errorf("VM %s still on %s", ix.Fed.VMs[v].Name, ix.Host(h).Name)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for vm, n := range w.done {
		if n > 1 {
			t.Errorf("VM %s migrated %d times", vm, n)
		}
	}
	if len(w.done) != atRisk {
		t.Errorf("%d VMs migrated, want %d", len(w.done), atRisk)
	}
}

func hostSite(f *model.Federation, host string) string {
	for _, s := range f.Sites {
		for _, fb := range s.Fabrics {
			for _, h := range fb.Hosts {
				if h.Name == host {
					return s.Name
				}
			}
		}
	}
	return ""
}
