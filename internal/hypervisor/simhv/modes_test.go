package simhv

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/precopy"
)

// triangle: sites a, b, c joined pairwise by 1 Gbit/s links. On a1: web
// (no dirtying), hot (dirties 200 MiB/s of a 256 MiB working set, more
// than the link carries) and db (converges in a few rounds).
const triangle = `
name: triangle
sites:
  - {name: a, lat: 34, lon: 134, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 8, memory_mib: 8192, disk_gib: 500, nic_mbps: 1000}]}]}
  - {name: b, lat: 35, lon: 135, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 8, memory_mib: 8192, disk_gib: 500, nic_mbps: 1000}]}]}
  - {name: c, lat: 36, lon: 136, fabrics: [{name: fc, hosts: [{name: c1, vcpu: 8, memory_mib: 8192, disk_gib: 500, nic_mbps: 1000}]}]}
links:
  - {name: ab, a: a, b: b, bandwidth_mbps: 1000, rtt_ms: 5}
  - {name: bc, a: b, b: c, bandwidth_mbps: 1000, rtt_ms: 5}
  - {name: ac, a: a, b: c, bandwidth_mbps: 1000, rtt_ms: 20}
vms:
  - {name: web, host: a1, vcpu: 2, memory_mib: 1024}
  - {name: hot, host: a1, vcpu: 2, memory_mib: 1024, dirty_rate_mibps: 200, working_set_mib: 256}
  - {name: db, host: a1, vcpu: 2, memory_mib: 2048, dirty_rate_mibps: 10, working_set_mib: 256}
`

func linkRes(c *Cluster, name string, dir int) netpath.Resource {
	return netpath.Resource{Kind: netpath.Link, ID: c.ix.LinkByName[name], Dir: dir}
}

func TestRouteCarriesTheMigrationOnItsLinks(t *testing.T) {
	for _, tc := range []struct {
		route    []string
		carrying []string // links a → … → c in their A→B direction
		idle     []string
	}{
		{nil, []string{"ac"}, []string{"ab", "bc"}},
		{[]string{"ab", "bc"}, []string{"ab", "bc"}, []string{"ac"}},
		{[]string{"ac"}, []string{"ac"}, []string{"ab", "bc"}},
	} {
		c := newCluster(t, triangle)
		var rec recorder
		r := req(c, "web", "c1")
		r.Route = tc.route
		start(t, c, r, &rec)
		c.Engine().Run()
		res := rec.one(t)
		if res.Err != nil || res.RunningOn != "c1" {
			t.Fatalf("route %v: %+v", tc.route, res)
		}
		for _, l := range tc.carrying {
			if got := c.Carried(linkRes(c, l, 0)); !within(got, float64(res.Bytes), 1e-9) {
				t.Errorf("route %v: link %s carried %.0f bytes, the migration sent %d", tc.route, l, got, res.Bytes)
			}
		}
		for _, l := range tc.idle {
			if got := c.Carried(linkRes(c, l, 0)) + c.Carried(linkRes(c, l, 1)); got != 0 {
				t.Errorf("route %v: link %s off the route carried %.0f bytes", tc.route, l, got)
			}
		}
	}
}

func TestRouteRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route []string
		cut   string
		want  []error
	}{
		{"unknown link", []string{"ab", "zz"}, "", []error{hypervisor.ErrBadRequest, netpath.ErrBadRoute}},
		{"does not start at the source", []string{"bc"}, "", []error{hypervisor.ErrBadRequest, netpath.ErrBadRoute}},
		{"does not reach the destination", []string{"ab"}, "", []error{hypervisor.ErrBadRequest, netpath.ErrBadRoute}},
		{"cut link on the route", []string{"ab", "bc"}, "bc", []error{hypervisor.ErrLinkDown}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, triangle)
			if tc.cut != "" {
				if err := c.SetLinkMbps(c.ix.LinkByName[tc.cut], 0); err != nil {
					t.Fatal(err)
				}
			}
			r := req(c, "web", "c1")
			r.Route = tc.route
			_, err := c.Migrate(context.Background(), r, obsFunc(func(hypervisor.Result) { t.Error("observer called") }))
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("Migrate = %v; want %v", err, w)
				}
			}
		})
	}
	// A cut off the route does not matter.
	c := newCluster(t, triangle)
	_ = c.SetLinkMbps(c.ix.LinkByName["ac"], 0)
	r := req(c, "web", "c1")
	r.Route = []string{"ab", "bc"}
	var rec recorder
	start(t, c, r, &rec)
	c.Engine().Run()
	if res := rec.one(t); res.Err != nil {
		t.Errorf("around the cut link: %v", res.Err)
	}
}

// abRate is the rate and set-up time of a lone migration from a1 to b1.
func abRate(c *Cluster) (float64, time.Duration) {
	rate, rtt := pathRate(c, "a1", "b1", 0)
	return rate, precopy.Setup(rtt)
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// inThirdRound runs hot's migration one second into its third round (the
// first sends 1 GiB, the second its 256 MiB working set) and returns the
// job's statistics then.
func inThirdRound(t *testing.T, c *Cluster, j hypervisor.Job) hypervisor.JobInfo {
	t.Helper()
	rate, setup := abRate(c)
	c.Engine().RunUntil(setup + secs(1024*model.MiB/rate) + secs(256*model.MiB/rate) + time.Second)
	info, _ := j.Info()
	if info.Phase != hypervisor.PhasePrecopy || info.MemIteration != 3 || !within(info.MemRoundElapsed.Seconds(), 1, 1e-6) {
		t.Fatalf("not 1 s into the third round: %+v", info)
	}
	return info
}

// startHot starts hot's migration from a1 to b1, allowing post-copy or not.
func startHot(t *testing.T, postCopy bool) (*Cluster, *recorder, hypervisor.MigrateRequest, hypervisor.Job) {
	t.Helper()
	c := newCluster(t, triangle)
	rec := &recorder{}
	r := req(c, "hot", "b1")
	r.Params.PostCopy = postCopy
	return c, rec, r, start(t, c, r, rec)
}

func predictNow(c *Cluster, info hypervisor.JobInfo, vm string, p hypervisor.MigrateParams) precopy.Prediction {
	v := &c.ix.Fed.VMs[c.ix.VMByName[vm]]
	return precopy.Predict(info.Progress(v.WorkingSetMiB*model.MiB, precopy.Config{MaxDowntime: DefaultMaxDowntime, AutoConverge: p.AutoConverge}))
}

func TestPauseFinishesWhatCannotConverge(t *testing.T) {
	c, rec, r, j := startHot(t, false)
	info := inThirdRound(t, c, j)
	pred := predictNow(c, info, "hot", r.Params)
	if pred.Live.OK {
		t.Fatalf("hot converges live: %+v", pred.Live)
	}
	pausedAt := c.Engine().Elapsed()
	if err := j.Pause(); err != nil {
		t.Fatal(err)
	}
	if info, _ := j.Info(); !info.Paused || info.PostCopy || info.Phase != hypervisor.PhaseSwitchover {
		t.Errorf("after Pause: %+v", info)
	}
	if doms, _ := c.ListDomains(context.Background(), "a1"); !paused(doms, "hot") {
		t.Errorf("hot not paused on a1: %+v", doms)
	}
	if err := j.Pause(); err != nil {
		t.Errorf("second Pause: %v", err)
	}
	if err := j.StartPostCopy(); !errors.Is(err, hypervisor.ErrNotAllowed) {
		t.Errorf("StartPostCopy of a paused migration: %v", err)
	}
	c.Engine().Run()
	res := rec.one(t)
	if res.Err != nil || res.RunningOn != "b1" {
		t.Fatalf("result %+v", res)
	}
	// The rest of the round (256 MiB − 1 s of sending) and the 200 MiB
	// dirtied in that second, then the switch-over; the guest is paused
	// throughout.
	rate, _ := abRate(c)
	unsent := 256*model.MiB - rate + 200*model.MiB
	took := res.Finished.Sub(epoch) - pausedAt
	if want := secs(unsent/rate) + precopy.SwitchoverOverhead; !within(took.Seconds(), want.Seconds(), 1e-6) || res.Downtime != took {
		t.Errorf("took %v with downtime %v after the pause; want %v for both", took, res.Downtime, want)
	}
	if !within(took.Seconds(), pred.Paused.Time.Seconds(), 0.01) || !within(float64(res.Bytes), float64(info.MemProcessed)+pred.Paused.Bytes, 0.01) {
		t.Errorf("took %v, sent %d; Predict said %v, %.0f more after %d", took, res.Bytes, pred.Paused.Time, pred.Paused.Bytes, info.MemProcessed)
	}
	if res.Rounds != 2 {
		t.Errorf("%d rounds, want the 2 completed before the pause", res.Rounds)
	}
	if err := j.Pause(); !errors.Is(err, ErrJobNotActive) {
		t.Errorf("Pause after the end: %v", err)
	}
	if err := c.Check(); err != nil {
		t.Error(err)
	}
}

func paused(doms []hypervisor.Domain, name string) bool {
	for _, d := range doms {
		if d.Name == name {
			return d.State == hypervisor.StatePaused
		}
	}
	return false
}

func TestPauseBeforeMemoryCopiesItOnce(t *testing.T) {
	c, rec, _, j := startHot(t, false)
	rate, setup := abRate(c)
	c.Engine().RunUntil(setup / 2)
	if err := j.Pause(); err != nil {
		t.Fatal(err)
	}
	c.Engine().Run()
	res := rec.one(t)
	want := setup/2 + secs(1024*model.MiB/rate) + precopy.SwitchoverOverhead
	if res.Err != nil || res.Rounds != 0 || !within(res.Downtime.Seconds(), want.Seconds(), 1e-6) || res.Bytes != 1024*model.MiB {
		t.Errorf("result %+v; want 1 GiB sent once, downtime %v", res, want)
	}
	// Non-live migrations are paused already: Pause does nothing.
	c = newCluster(t, triangle)
	r := req(c, "web", "b1")
	r.Params.Live = false
	j = start(t, c, r, rec)
	c.Engine().RunUntil(setup + time.Second)
	if err := j.Pause(); err != nil {
		t.Errorf("Pause of a non-live migration: %v", err)
	}
	if info, _ := j.Info(); !info.Paused {
		t.Errorf("non-live migration not reported paused: %+v", info)
	}
}

func TestPostCopyFinishesWhatCannotConverge(t *testing.T) {
	c, rec, r, j := startHot(t, true)
	info := inThirdRound(t, c, j)
	pred := predictNow(c, info, "hot", r.Params)
	switchedAt := c.Engine().Elapsed()
	if err := j.StartPostCopy(); err != nil {
		t.Fatal(err)
	}
	if info, _ := j.Info(); !info.PostCopy || info.Paused || info.Phase != hypervisor.PhasePostcopy || info.Downtime != precopy.SwitchoverOverhead {
		t.Errorf("after StartPostCopy: %+v", info)
	}
	if err := j.StartPostCopy(); err != nil {
		t.Errorf("second StartPostCopy: %v", err)
	}
	if err := j.Abort(); !errors.Is(err, hypervisor.ErrNotAllowed) {
		t.Errorf("Abort in post-copy: %v", err)
	}
	if err := j.Pause(); !errors.Is(err, hypervisor.ErrNotAllowed) {
		t.Errorf("Pause in post-copy: %v", err)
	}
	c.Engine().Run()
	res := rec.one(t)
	if res.Err != nil || res.RunningOn != "b1" || res.Downtime != precopy.SwitchoverOverhead {
		t.Fatalf("result %+v", res)
	}
	took := res.Finished.Sub(epoch) - switchedAt
	if !within(took.Seconds(), pred.PostCopy.Time.Seconds(), 0.01) || !within(float64(res.Bytes), float64(info.MemProcessed)+pred.PostCopy.Bytes, 0.01) {
		t.Errorf("took %v, sent %d; Predict said %v, %.0f more after %d", took, res.Bytes, pred.PostCopy.Time, pred.PostCopy.Bytes, info.MemProcessed)
	}
	if err := c.Check(); err != nil {
		t.Error(err)
	}
}

func TestPostCopyNotAllowed(t *testing.T) {
	c := newCluster(t, triangle)
	var rec recorder
	plain := start(t, c, req(c, "hot", "b1"), &rec)
	r := req(c, "web", "b1")
	r.Params.Live, r.Params.PostCopy = false, true
	cold := start(t, c, r, &rec)
	for name, j := range map[string]hypervisor.Job{"without Params.PostCopy": plain, "non-live": cold} {
		if err := j.StartPostCopy(); !errors.Is(err, hypervisor.ErrNotAllowed) {
			t.Errorf("%s: StartPostCopy = %v", name, err)
		}
	}
	c.Engine().Run()
	if err := cold.StartPostCopy(); !errors.Is(err, ErrJobNotActive) {
		t.Errorf("after the end: %v", err)
	}
}

// Requested before memory moves, post-copy pulls all of it.
func TestPostCopyRequestedDuringSetup(t *testing.T) {
	c, rec, _, j := startHot(t, true)
	if err := j.StartPostCopy(); err != nil {
		t.Fatal(err)
	}
	c.Engine().Run()
	res := rec.one(t)
	rate, setup := abRate(c)
	if want := setup + secs(1024*model.MiB/rate); res.Err != nil || res.Bytes != 1024*model.MiB ||
		res.Downtime != precopy.SwitchoverOverhead || !within(res.Finished.Sub(res.Started).Seconds(), want.Seconds(), 1e-6) {
		t.Errorf("result %+v; want 1 GiB pulled by %v", res, want)
	}
}

func TestPostCopyLosesTheDomainWithAHostOrThePath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(c *Cluster) error
		after time.Duration // from the fault to the failure
	}{
		{"source site lost", func(c *Cluster) error { return c.LoseSite(c.ix.SiteByName["a"]) }, 0},
		{"destination host failed", func(c *Cluster) error { return c.FailHost(c.ix.HostByName["b1"]) }, 0},
		{"path cut", func(c *Cluster) error { return c.SetLinkMbps(c.ix.LinkByName["ab"], 0) }, DefaultStallTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rec, _, j := startHot(t, true)
			inThirdRound(t, c, j)
			if err := j.StartPostCopy(); err != nil {
				t.Fatal(err)
			}
			e := c.Engine()
			e.RunUntil(e.Elapsed() + time.Second)
			faultAt := e.Elapsed()
			if err := tc.fault(c); err != nil {
				t.Fatal(err)
			}
			e.Run()
			res := rec.one(t)
			if !errors.Is(res.Err, hypervisor.ErrDomainLost) || res.RunningOn != "" {
				t.Errorf("result %+v; want the domain lost", res)
			}
			if got := res.Finished.Sub(epoch) - faultAt; got != tc.after {
				t.Errorf("failed %v after the fault, want %v", got, tc.after)
			}
			if c.Placement()[c.ix.VMByName["hot"]] != -1 {
				t.Error("domain still placed")
			}
			if err := c.Check(); err != nil {
				t.Error(err)
			}
		})
	}
	// The same destination failure in pre-copy leaves the domain on its
	// source.
	c := newCluster(t, triangle)
	var rec recorder
	start(t, c, req(c, "hot", "b1"), &rec)
	c.Engine().RunUntil(20 * time.Second)
	_ = c.FailHost(c.ix.HostByName["b1"])
	c.Engine().Run()
	if res := rec.one(t); res.RunningOn != "a1" {
		t.Errorf("pre-copy: %+v", res)
	}
}

// Predict, fed the job statistics mid-flight, agrees with the simulation.
func TestPredictMatchesTheSimulation(t *testing.T) {
	for _, at := range []time.Duration{5 * time.Second, 18500 * time.Millisecond, 19500 * time.Millisecond} {
		c := newCluster(t, triangle)
		_, setup := abRate(c)
		var rec recorder
		r := req(c, "db", "b1")
		j := start(t, c, r, &rec)
		c.Engine().RunUntil(setup + at)
		info, _ := j.Info()
		if info.Phase != hypervisor.PhasePrecopy {
			t.Fatalf("at %v: %+v", at, info)
		}
		pred := predictNow(c, info, "db", r.Params)
		c.Engine().Run()
		res := rec.one(t)
		left := res.Finished.Sub(epoch) - (setup + at)
		if !pred.Live.OK || !within(left.Seconds(), pred.Live.Time.Seconds(), 0.02) ||
			!within(float64(res.Bytes), float64(info.MemProcessed)+pred.Live.Bytes, 0.02) {
			t.Errorf("at %v (round %d): %v and %d bytes left; Predict said %v and %.0f more after %d",
				at, info.MemIteration, left, res.Bytes, pred.Live.Time, pred.Live.Bytes, info.MemProcessed)
		}
		t.Logf("at %v (round %d): %v left, predicted %v", at, info.MemIteration, left, pred.Live.Time)
	}
}

// With auto-converge, Predict does not know QEMU's count of high-dirtying
// rounds and restarts it: right after the throttle rises it is exact; one
// round later it predicts the next increase a round late (conservative).
func TestPredictWithAutoConverge(t *testing.T) {
	for _, tc := range []struct {
		at    time.Duration
		exact bool
	}{{5 * time.Second, true}, {12 * time.Second, false}, {15 * time.Second, true}, {25 * time.Second, true}} {
		c := newCluster(t, triangle)
		_, setup := abRate(c)
		var rec recorder
		r := req(c, "hot", "b1")
		r.Params.AutoConverge = true
		j := start(t, c, r, &rec)
		c.Engine().RunUntil(setup + tc.at)
		info, _ := j.Info()
		pred := predictNow(c, info, "hot", r.Params)
		c.Engine().Run()
		res := rec.one(t)
		left := (res.Finished.Sub(epoch) - (setup + tc.at)).Seconds()
		got := pred.Live.Time.Seconds()
		if res.Err != nil || !pred.Live.OK || (tc.exact && !within(got, left, 0.02)) || (!tc.exact && (got < left || got > 1.15*left)) {
			t.Errorf("at %v (round %d, throttle %d %%): %.2f s left, Predict said %.2f s", tc.at, info.MemIteration, info.AutoConvergeThrottle, left, got)
		}
	}
}
