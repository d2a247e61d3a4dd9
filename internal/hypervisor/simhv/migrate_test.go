package simhv

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/precopy"
)

// setupAB is the setup time between sites a and b (5 ms link).
var setupAB = precopy.Setup(5*time.Millisecond + 200*time.Microsecond)

func TestMigrateRejects(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	noop := obsFunc(func(hypervisor.Result) {})
	tests := []struct {
		name  string
		setup func(t *testing.T, c *Cluster)
		ctx   context.Context
		req   hypervisor.MigrateRequest
		obs   hypervisor.Observer
		want  error
	}{
		{name: "unknown domain", req: hypervisor.MigrateRequest{Domain: "nope", SourceHost: "a1", DestHost: "b1"}, want: hypervisor.ErrNoSuchDomain},
		{name: "unknown source", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "x", DestHost: "b1"}, want: hypervisor.ErrHostUnreachable},
		{name: "unknown destination", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "x"}, want: hypervisor.ErrHostUnreachable},
		{name: "not on source", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a2", DestHost: "b1"}, want: hypervisor.ErrNoSuchDomain},
		{name: "same host", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "a1"}, want: ErrSameHost},
		{name: "no route", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "c1"}, want: hypervisor.ErrLinkDown},
		{name: "local disk without copy", req: hypervisor.MigrateRequest{Domain: "local", SourceHost: "a2", DestHost: "b1"}, want: ErrUnsafe},
		{name: "too big for destination", req: hypervisor.MigrateRequest{Domain: "db", SourceHost: "a1", DestHost: "b2", Params: hypervisor.MigrateParams{Live: true}}, setup: func(t *testing.T, c *Cluster) {
			start(t, c, req(c, "app", "b2"), noop) // 2 GiB of b2's 3 GiB promised
		}, want: hypervisor.ErrDestinationFull},
		{name: "already migrating", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "b2"}, setup: func(t *testing.T, c *Cluster) {
			start(t, c, req(c, "web", "b1"), noop)
		}, want: hypervisor.ErrJobAlreadyActive},
		{name: "destination down", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "b1"}, setup: func(t *testing.T, c *Cluster) {
			_ = c.FailHost(c.ix.HostByName["b1"])
		}, want: hypervisor.ErrHostDown},
		{name: "source down", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "b1"}, setup: func(t *testing.T, c *Cluster) {
			_ = c.FailHost(c.ix.HostByName["a1"])
		}, want: hypervisor.ErrHostDown},
		{name: "domain lost", req: hypervisor.MigrateRequest{Domain: "far", SourceHost: "a1", DestHost: "a2"}, setup: func(t *testing.T, c *Cluster) {
			_ = c.FailHost(c.ix.HostByName["c1"])
		}, want: hypervisor.ErrDomainLost},
		{name: "cut link", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "b1"}, setup: func(t *testing.T, c *Cluster) {
			_ = c.SetLinkMbps(0, 0)
		}, want: hypervisor.ErrLinkDown},
		{name: "no observer", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "b1"}, obs: obsNil{}, want: ErrBadArgument},
		{name: "negative bandwidth", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "b1", Params: hypervisor.MigrateParams{BandwidthBytes: -1}}, want: ErrBadArgument},
		{name: "negative downtime", req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "b1", Params: hypervisor.MigrateParams{MaxDowntime: -1}}, want: ErrBadArgument},
		{name: "cancelled context", ctx: cancelled, req: hypervisor.MigrateRequest{Domain: "web", SourceHost: "a1", DestHost: "b1"}, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, twoSites)
			if tt.setup != nil {
				tt.setup(t, c)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var obs hypervisor.Observer = obsFunc(func(hypervisor.Result) { t.Error("observer called for a rejected migration") })
			if _, isNil := tt.obs.(obsNil); isNil {
				obs = nil
			}
			running := c.Running()
			j, err := c.Migrate(ctx, tt.req, obs)
			if !errors.Is(err, tt.want) || j != nil {
				t.Fatalf("Migrate = %v, %v; want error %v", j, err, tt.want)
			}
			if c.Running() != running {
				t.Errorf("Running changed from %d to %d", running, c.Running())
			}
			if err := c.Check(); err != nil {
				t.Error(err)
			}
			c.Engine().Run()
		})
	}
}

// obsNil marks a test case that passes a nil observer.
type obsNil struct{}

func (obsNil) MigrationDone(hypervisor.Result) {}

func TestDestinationCountsIncoming(t *testing.T) {
	c := newCluster(t, twoSites)
	var rec recorder
	start(t, c, req(c, "web", "b2"), &rec) // 1 GiB of 3
	start(t, c, req(c, "app", "b2"), &rec) // 3 GiB of 3
	_, err := c.Migrate(t.Context(), req(c, "web2", "b2"), &rec)
	if !errors.Is(err, hypervisor.ErrDestinationFull) {
		t.Fatalf("third migration to a full host: %v", err)
	}
	c.Engine().Run()
	// Both arrived: b2 is still full.
	if _, err := c.Migrate(t.Context(), req(c, "web2", "b2"), &rec); !errors.Is(err, hypervisor.ErrDestinationFull) {
		t.Fatalf("migration to a full host: %v", err)
	}
	// An aborted migration releases its reservation.
	j := start(t, c, req(c, "web", "b1"), &rec)
	if err := j.Abort(); err != nil {
		t.Fatal(err)
	}
	start(t, c, req(c, "web2", "a1"), &rec)
	c.Engine().Run()
	if err := c.Check(); err != nil {
		t.Error(err)
	}
}

func TestConvergence(t *testing.T) {
	tests := []struct {
		name         string
		autoConverge bool
		wantErr      error
	}{
		{"dirty rate above bandwidth fails", false, hypervisor.ErrNotConverging},
		{"auto-converge throttles until it converges", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, twoSites)
			var rec recorder
			r0 := req(c, "hot", "b1")
			r0.Params.AutoConverge = tt.autoConverge
			j := start(t, c, r0, &rec)
			c.Engine().Run()
			r := rec.one(t)
			if !errors.Is(r.Err, tt.wantErr) {
				t.Fatalf("Err = %v, want %v", r.Err, tt.wantErr)
			}
			info, _ := j.Info()
			hot := c.ix.VMByName["hot"]
			if tt.wantErr != nil {
				if r.RunningOn != "a2" || c.Placement()[hot] != c.ix.HostByName["a2"] || info.Type != hypervisor.JobFailed {
					t.Errorf("failed migration: running on %q, placement %d, job %s", r.RunningOn, c.Placement()[hot], info.Type)
				}
				if r.Rounds != precopy.MaxRoundsWithoutThrottle {
					t.Errorf("gave up after %d rounds", r.Rounds)
				}
				return
			}
			if r.RunningOn != "b1" || info.AutoConvergeThrottle <= 0 || info.MemDirtyRate >= 200<<20 {
				t.Errorf("converged: running on %q, throttle %d%%, dirty rate %.0f", r.RunningOn, info.AutoConvergeThrottle, info.MemDirtyRate)
			}
			if r.Downtime > DefaultMaxDowntime+precopy.SwitchoverOverhead {
				t.Errorf("downtime %v above the limit", r.Downtime)
			}
			t.Logf("converged after %d rounds at %d%% throttle in %v, downtime %v", r.Rounds, info.AutoConvergeThrottle, r.Finished.Sub(r.Started), r.Downtime)
		})
	}
}

func TestLocalDiskCopied(t *testing.T) {
	c := newCluster(t, twoSites)
	var rec recorder
	r0 := req(c, "local", "b1")
	r0.Params.CopyStorage = hypervisor.CopyStorageAll
	j := start(t, c, r0, &rec)
	c.Engine().RunUntil(setupAB + 10*time.Second)
	info, _ := j.Info()
	rate, rtt := pathRate(c, "a2", "b1", 0)
	if info.Phase != hypervisor.PhaseDisk || !within(float64(info.DiskProcessed), 10*rate, 1e-6) ||
		info.DiskTotal != 10<<30 || info.DiskProcessed+info.DiskRemaining != info.DiskTotal || info.MemProcessed != 0 {
		t.Errorf("during disk copy: %+v", info)
	}
	c.Engine().Run()
	r := rec.one(t)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	est := precopy.Solo(precopy.Guest{MemoryBytes: 1 << 30, DiskBytes: 10 << 30}, precopy.Config{MaxDowntime: DefaultMaxDowntime}, rate, rtt)
	if got := r.Finished.Sub(r.Started); !within(got.Seconds(), est.Total.Seconds(), 0.001) {
		t.Errorf("took %v, Solo %v", got, est.Total)
	}
	if r.Bytes < 11<<30 || !within(float64(r.Bytes), est.Bytes, 1e-6) {
		t.Errorf("sent %d bytes, want disk + memory = %.0f", r.Bytes, est.Bytes)
	}
}

func TestNonLive(t *testing.T) {
	c := newCluster(t, twoSites)
	var rec recorder
	r0 := req(c, "db", "b1")
	r0.Params.Live = false
	start(t, c, r0, &rec)
	c.Engine().RunUntil(setupAB + time.Second)
	doms, _ := c.ListDomains(t.Context(), "a1")
	for _, d := range doms {
		if want := map[string]hypervisor.DomainState{"web": hypervisor.StateRunning, "db": hypervisor.StatePaused}[d.Name]; d.State != want {
			t.Errorf("%s is %s during a non-live migration, want %s", d.Name, d.State, want)
		}
	}
	c.Engine().Run()
	r := rec.one(t)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	rate, _ := pathRate(c, "a1", "b1", 0)
	transfer := time.Duration(float64(2<<30) / rate * float64(time.Second))
	if !within(r.Downtime.Seconds(), (transfer + precopy.SwitchoverOverhead).Seconds(), 1e-6) {
		t.Errorf("downtime %v, want the whole transfer %v + %v", r.Downtime, transfer, precopy.SwitchoverOverhead)
	}
	if got := r.Finished.Sub(r.Started); got != setupAB+r.Downtime {
		t.Errorf("took %v, want setup %v + downtime %v", got, setupAB, r.Downtime)
	}
	if r.Rounds != 0 || r.Bytes != 2<<30 {
		t.Errorf("rounds %d bytes %d; want 0 rounds, memory sent once", r.Rounds, r.Bytes)
	}
}

func TestConcurrentMigrationsShareLink(t *testing.T) {
	solo := func(vm, dst string) time.Duration {
		c := newCluster(t, twoSites)
		var rec recorder
		start(t, c, req(c, vm, dst), &rec)
		c.Engine().Run()
		r := rec.one(t)
		return r.Finished.Sub(r.Started)
	}
	tSolo := solo("web", "b1")
	c := newCluster(t, twoSites)
	var rec recorder
	// web (a1) and web2 (a2) leave by different NICs and arrive on
	// different hosts: only the link is shared.
	start(t, c, req(c, "web", "b1"), &rec)
	start(t, c, req(c, "web2", "b2"), &rec)
	c.Engine().Run()
	if len(rec.results) != 2 {
		t.Fatalf("%d results", len(rec.results))
	}
	fixed := setupAB + precopy.SwitchoverOverhead
	for _, r := range rec.results {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		ratio := (r.Finished.Sub(r.Started) - fixed).Seconds() / (tSolo - fixed).Seconds()
		if !within(ratio, 2, 0.001) {
			t.Errorf("%s: transfer took %.3f× its solo time, want 2×", r.Domain, ratio)
		}
	}
	var link float64
	for _, s := range c.Resources() {
		if s.Name == "link:ab(a→b)" {
			link = s.Bytes
		}
	}
	if link != 2<<30 {
		t.Errorf("link carried %.0f bytes, want %d", link, 2<<30)
	}
}

func TestSetMaxSpeed(t *testing.T) {
	c := newCluster(t, twoSites)
	var rec recorder
	r0 := req(c, "web", "b1")
	r0.Params.BandwidthBytes = 50e6
	j := start(t, c, r0, &rec)
	e := c.Engine()
	e.RunUntil(setupAB + 2*time.Second)
	if info, _ := j.Info(); info.MemBytesPerSec != 50e6 {
		t.Errorf("rate %v under a 50 MB/s cap", info.MemBytesPerSec)
	}
	if err := j.SetMaxSpeed(10e6); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1)} {
		if err := j.SetMaxSpeed(bad); !errors.Is(err, ErrBadArgument) {
			t.Errorf("SetMaxSpeed(%v) = %v", bad, err)
		}
	}
	if info, _ := j.Info(); info.MemBytesPerSec != 10e6 {
		t.Errorf("rate %v after SetMaxSpeed(10 MB/s)", info.MemBytesPerSec)
	}
	e.Run()
	r := rec.one(t)
	want := setupAB + 2*time.Second + time.Duration((float64(1<<30)-2*50e6)/10e6*float64(time.Second)) + precopy.SwitchoverOverhead
	if d := r.Finished.Sub(r.Started) - want; d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("took %v, want %v", r.Finished.Sub(r.Started), want)
	}
	if err := j.SetMaxSpeed(1); !errors.Is(err, ErrJobNotActive) {
		t.Errorf("SetMaxSpeed after the end: %v", err)
	}
}

func TestAbort(t *testing.T) {
	c := newCluster(t, twoSites)
	var rec recorder
	j := start(t, c, req(c, "app", "b1"), &rec)
	e := c.Engine()
	e.RunUntil(setupAB + 5*time.Second)
	if err := j.Abort(); err != nil {
		t.Fatal(err)
	}
	if len(rec.results) != 0 {
		t.Fatal("observer called from within Abort")
	}
	if err := j.Abort(); !errors.Is(err, ErrJobNotActive) {
		t.Errorf("second Abort: %v", err)
	}
	e.Run()
	r := rec.one(t)
	rate, _ := pathRate(c, "a2", "b1", 0)
	if !errors.Is(r.Err, hypervisor.ErrAborted) || r.RunningOn != "a2" || !within(float64(r.Bytes), 5*rate, 1e-6) {
		t.Errorf("result %+v", r)
	}
	if info, _ := j.Info(); info.Type != hypervisor.JobCancelled {
		t.Errorf("job type %s", info.Type)
	}
	if c.Placement()[c.ix.VMByName["app"]] != c.ix.HostByName["a2"] || c.Running() != 0 {
		t.Error("aborted VM moved or still running")
	}
	if err := c.Check(); err != nil {
		t.Error(err)
	}
}

func TestFaultsDuringMigration(t *testing.T) {
	tests := []struct {
		name        string
		fault       func(c *Cluster) error
		wantErr     error
		wantOn      string
		wantLost    []string
		wantElapsed time.Duration // from the start of the migration
	}{
		{
			name:        "source host fails",
			fault:       func(c *Cluster) error { return c.FailHost(c.ix.HostByName["a1"]) },
			wantErr:     hypervisor.ErrDomainLost,
			wantLost:    []string{"web", "db"},
			wantElapsed: setupAB + 3*time.Second,
		},
		{
			name:        "destination host fails",
			fault:       func(c *Cluster) error { return c.FailHost(c.ix.HostByName["b1"]) },
			wantErr:     hypervisor.ErrHostDown,
			wantOn:      "a1",
			wantElapsed: setupAB + 3*time.Second,
		},
		{
			name:        "source site lost",
			fault:       func(c *Cluster) error { return c.LoseSite(c.ix.SiteByName["a"]) },
			wantErr:     hypervisor.ErrDomainLost,
			wantLost:    []string{"web", "db", "hot", "local", "app", "web2"},
			wantElapsed: setupAB + 3*time.Second,
		},
		{
			name:        "link cut past the stall timeout",
			fault:       func(c *Cluster) error { return c.SetLinkMbps(0, 0) },
			wantErr:     hypervisor.ErrLinkDown,
			wantOn:      "a1",
			wantElapsed: setupAB + 3*time.Second + DefaultStallTimeout,
		},
		{
			name: "link cut shorter than the stall timeout",
			fault: func(c *Cluster) error {
				c.Engine().AfterFunc(20*time.Second, func() { _ = c.SetLinkMbps(0, 1000) })
				return c.SetLinkMbps(0, 0)
			},
			wantOn: "b1",
		},
		{
			name:        "link degraded",
			fault:       func(c *Cluster) error { return c.SetLinkMbps(0, 100) },
			wantOn:      "b1",
			wantElapsed: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, twoSites)
			var rec recorder
			start(t, c, req(c, "web", "b1"), &rec)
			e := c.Engine()
			e.RunUntil(setupAB + 3*time.Second)
			if err := tt.fault(c); err != nil {
				t.Fatal(err)
			}
			if len(rec.results) != 0 {
				t.Fatal("observer called from within the fault injector")
			}
			if err := c.Check(); err != nil {
				t.Error(err)
			}
			e.Run()
			r := rec.one(t)
			if !errors.Is(r.Err, tt.wantErr) || r.RunningOn != tt.wantOn {
				t.Fatalf("Err %v, RunningOn %q; want %v, %q", r.Err, r.RunningOn, tt.wantErr, tt.wantOn)
			}
			if tt.wantElapsed > 0 && r.Finished.Sub(r.Started) != tt.wantElapsed {
				t.Errorf("ended after %v, want %v", r.Finished.Sub(r.Started), tt.wantElapsed)
			}
			pl := c.Placement()
			web := c.ix.VMByName["web"]
			if want := c.ix.HostByName[tt.wantOn]; tt.wantOn != "" && pl[web] != want {
				t.Errorf("web placed on %d, want %d", pl[web], want)
			}
			for _, name := range tt.wantLost {
				if pl[c.ix.VMByName[name]] != -1 {
					t.Errorf("%s not lost", name)
				}
			}
			if err := c.Check(); err != nil {
				t.Error(err)
			}
		})
	}
}

// A lost site takes its links with it: a migration that only crosses it
// stalls and fails once the stall timeout passes, the domain left on its
// source.
func TestTransitSiteLost(t *testing.T) {
	c := newCluster(t, `name: chain
sites:
  - {name: a, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 8, memory_mib: 8192, nic_mbps: 1000}]}]}
  - {name: x, fabrics: [{name: fx, hosts: [{name: x1, vcpu: 8, memory_mib: 8192, nic_mbps: 1000}]}]}
  - {name: b, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 8, memory_mib: 8192, nic_mbps: 1000}]}]}
links:
  - {name: ax, a: a, b: x, bandwidth_mbps: 1000, rtt_ms: 5}
  - {name: xb, a: x, b: b, bandwidth_mbps: 1000, rtt_ms: 5}
vms:
  - {name: web, host: a1, vcpu: 2, memory_mib: 4096, dirty_rate_mibps: 0}
`)
	var rec recorder
	start(t, c, req(c, "web", "b1"), &rec)
	e := c.Engine()
	e.RunUntil(10 * time.Second)
	if err := c.LoseSite(c.ix.SiteByName["x"]); err != nil {
		t.Fatal(err)
	}
	if mbps := c.LinkMbps(); mbps[0] != 0 || mbps[1] != 0 {
		t.Errorf("links of the lost site at %v Mbit/s, want cut", mbps)
	}
	e.Run()
	r := rec.one(t)
	if !errors.Is(r.Err, hypervisor.ErrLinkDown) || r.RunningOn != "a1" || r.Finished.Sub(epoch) != 10*time.Second+DefaultStallTimeout {
		t.Fatalf("migration through the lost site: %v on %q at %v; want ErrLinkDown on a1 at %v", r.Err, r.RunningOn, r.Finished.Sub(epoch), 10*time.Second+DefaultStallTimeout)
	}
	if err := c.Check(); err != nil {
		t.Error(err)
	}
}

func TestStallTimeoutSetting(t *testing.T) {
	c := newCluster(t, twoSites)
	c.StallTimeout = 10 * time.Second
	var rec recorder
	start(t, c, req(c, "web", "b1"), &rec)
	// Cut during setup: the stall clock runs from the cut.
	c.Engine().RunUntil(time.Second)
	if err := c.SetLinkMbps(0, 0); err != nil {
		t.Fatal(err)
	}
	c.Engine().Run()
	r := rec.one(t)
	if !errors.Is(r.Err, hypervisor.ErrLinkDown) || r.Finished.Sub(r.Started) != 11*time.Second || r.RunningOn != "a1" {
		t.Errorf("result %+v", r)
	}
}

func TestFaultInjectorsRejectBadInput(t *testing.T) {
	c := newCluster(t, twoSites)
	for name, err := range map[string]error{
		"FailHost(-1)":         c.FailHost(-1),
		"FailHost(99)":         c.FailHost(99),
		"RecoverHost(99)":      c.RecoverHost(99),
		"LoseSite(9)":          c.LoseSite(9),
		"SetLinkMbps(5, 1)":    c.SetLinkMbps(5, 1),
		"SetLinkMbps(0, -1)":   c.SetLinkMbps(0, -1),
		"SetLinkMbps(0, NaN)":  c.SetLinkMbps(0, math.NaN()),
		"SetLinkMbps(0, +Inf)": c.SetLinkMbps(0, math.Inf(1)),
	} {
		if !errors.Is(err, ErrBadArgument) {
			t.Errorf("%s = %v", name, err)
		}
	}
	if _, err := New(nil, nil); !errors.Is(err, ErrBadArgument) {
		t.Errorf("New(nil, nil) = %v", err)
	}
	if c.HostUp(-1) || c.Migrating(-1) {
		t.Error("unknown host up or VM migrating")
	}
}

// A failed host that recovers is up and empty: the VMs it held stay lost,
// migrations to it are refused while it is down and, once it is back, run
// as fast as to a host that never failed.
func TestRecoverHost(t *testing.T) {
	solo := func(c *Cluster) time.Duration {
		var rec recorder
		start(t, c, req(c, "web", "b1"), &rec)
		c.Engine().Run()
		r := rec.one(t)
		if r.Err != nil || r.RunningOn != "b1" {
			t.Fatalf("web to b1: %+v", r)
		}
		return r.Finished.Sub(r.Started)
	}
	want := solo(newCluster(t, twoSites))
	c := newCluster(t, twoSites)
	a2 := c.ix.HostByName["a2"]
	b1 := c.ix.HostByName["b1"]
	if err := c.RecoverHost(b1); err != nil {
		t.Fatalf("recovering a host that is up: %v", err)
	}
	for _, h := range []int{a2, b1} {
		if err := c.FailHost(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Migrate(t.Context(), req(c, "web", "b1"), &recorder{}); !errors.Is(err, hypervisor.ErrHostDown) {
		t.Fatalf("migration to a failed host: %v, want ErrHostDown", err)
	}
	for _, h := range []int{a2, b1} {
		if err := c.RecoverHost(h); err != nil {
			t.Fatal(err)
		}
		if !c.HostUp(h) {
			t.Fatalf("%s not up after RecoverHost", c.ix.Host(h).Name)
		}
	}
	if got := solo(c); got != want {
		t.Errorf("web to the recovered b1 took %v, to a b1 that never failed %v", got, want)
	}
	for _, vm := range []string{"hot", "local", "app", "web2"} {
		if h := c.Placement()[c.ix.VMByName[vm]]; h != -1 {
			t.Errorf("%s (on a2 when it failed) is on host %d after a2 recovered, want lost", vm, h)
		}
	}
	if err := c.Check(); err != nil {
		t.Error(err)
	}
}

func TestListDomains(t *testing.T) {
	c := newCluster(t, twoSites)
	doms, err := c.ListDomains(t.Context(), "a2")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range doms {
		names = append(names, d.Name)
		if d.Host != "a2" || d.State != hypervisor.StateRunning {
			t.Errorf("%+v", d)
		}
		if d.Name == "local" && (d.LocalDiskBytes != 10<<30 || d.MemoryBytes != 1<<30) {
			t.Errorf("local: %+v", d)
		}
		if d.Name == "hot" && d.DirtyRateBytes != 200<<20 {
			t.Errorf("hot: %+v", d)
		}
	}
	if len(names) != 4 || names[0] != "hot" || names[3] != "web2" {
		t.Errorf("domains on a2: %v", names)
	}
	if _, err := c.ListDomains(t.Context(), "zz"); !errors.Is(err, hypervisor.ErrHostUnreachable) {
		t.Errorf("unknown host: %v", err)
	}
	_ = c.FailHost(c.ix.HostByName["a2"])
	if _, err := c.ListDomains(t.Context(), "a2"); !errors.Is(err, hypervisor.ErrHostDown) {
		t.Errorf("down host: %v", err)
	}
	if d, err := c.ListDomains(t.Context(), "b1"); err != nil || len(d) != 0 {
		t.Errorf("empty host: %v, %v", d, err)
	}
}
