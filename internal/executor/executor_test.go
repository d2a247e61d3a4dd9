package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/planner"
	"github.com/refuge-project/refuge/internal/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fedYAML builds a small federation: site "a" (threatened in tests) with
// hosts a1, a2; safe sites b (b1, b2) and c (c1); links a-b, a-c, b-c.
func testFederation(t *testing.T, vms int, memMiB int64) *model.Index {
	t.Helper()
	return testFederationMbps(t, vms, memMiB, 10000)
}

// testFederationMbps is testFederation with every NIC and link at mbps.
func testFederationMbps(t *testing.T, vms int, memMiB int64, mbps float64) *model.Index {
	t.Helper()
	var b strings.Builder
	b.WriteString(`name: t
sites:
  - name: a
    lat: 33
    lon: 133
    fabrics: [{name: fa, hosts: [{name: a1, vcpu: 64, memory_mib: 262144, nic_mbps: 10000}, {name: a2, vcpu: 64, memory_mib: 262144, nic_mbps: 10000}]}]
  - name: b
    lat: 34
    lon: 135
    fabrics: [{name: fb, hosts: [{name: b1, vcpu: 64, memory_mib: 65536, nic_mbps: 10000}, {name: b2, vcpu: 64, memory_mib: 65536, nic_mbps: 10000}]}]
  - name: c
    lat: 35
    lon: 139
    fabrics: [{name: fc, hosts: [{name: c1, vcpu: 64, memory_mib: 65536, nic_mbps: 10000}]}]
links:
  - {name: ab, a: a, b: b, bandwidth_mbps: 10000, rtt_ms: 5}
  - {name: ac, a: a, b: c, bandwidth_mbps: 10000, rtt_ms: 10}
  - {name: bc, a: b, b: c, bandwidth_mbps: 10000, rtt_ms: 8}
vms:
`)
	for i := range vms {
		fmt.Fprintf(&b, "  - {name: vm%02d, host: a%d, vcpu: 2, memory_mib: %d, dirty_rate_mibps: 5, priority: %d}\n", i, i%2+1, memMiB, 100+i)
	}
	return indexOf(t, strings.ReplaceAll(b.String(), "10000", fmt.Sprint(mbps)))
}

// fakeDriver completes each migration after a fixed virtual duration, or
// fails it as told; it records concurrency per source host.
type fakeDriver struct {
	eng      *sim.Engine
	ix       *model.Index
	duration time.Duration
	// failFirst: VM names whose first attempts fail, and how many.
	failFirst map[string]int
	calls     map[string]int
	destCalls map[string][]string
	running   map[string]int
	maxRun    map[string]int
	active    map[string]*fakeJob
}

func newFakeDriver(eng *sim.Engine, ix *model.Index, d time.Duration) *fakeDriver {
	return &fakeDriver{eng: eng, ix: ix, duration: d, failFirst: map[string]int{}, calls: map[string]int{},
		destCalls: map[string][]string{}, running: map[string]int{}, maxRun: map[string]int{}, active: map[string]*fakeJob{}}
}

type fakeJob struct {
	d     *fakeDriver
	req   hypervisor.MigrateRequest
	obs   hypervisor.Observer
	timer clock.Timer
	start time.Time
	ended bool
}

func (d *fakeDriver) ListDomains(context.Context, string) ([]hypervisor.Domain, error) {
	return nil, nil
}

func (d *fakeDriver) Migrate(_ context.Context, req hypervisor.MigrateRequest, obs hypervisor.Observer) (hypervisor.Job, error) {
	if d.active[req.Domain] != nil {
		return nil, hypervisor.ErrJobAlreadyActive
	}
	d.calls[req.Domain]++
	d.destCalls[req.Domain] = append(d.destCalls[req.Domain], req.DestHost)
	d.running[req.SourceHost]++
	d.maxRun[req.SourceHost] = max(d.maxRun[req.SourceHost], d.running[req.SourceHost])
	j := &fakeJob{d: d, req: req, obs: obs, start: d.eng.Now()}
	d.active[req.Domain] = j
	j.timer = d.eng.AfterFunc(d.duration, func() {
		var err error
		if d.failFirst[req.Domain] > 0 {
			d.failFirst[req.Domain]--
			err = errors.New("injected failure")
		}
		j.end(err)
	})
	return j, nil
}

func (j *fakeJob) end(err error) {
	if j.ended {
		return
	}
	j.ended = true
	d := j.d
	d.running[j.req.SourceHost]--
	delete(d.active, j.req.Domain)
	on := j.req.DestHost
	if err != nil {
		on = j.req.SourceHost
	}
	j.obs.MigrationDone(hypervisor.Result{Domain: j.req.Domain, Source: j.req.SourceHost, Dest: j.req.DestHost,
		Started: j.start, Finished: d.eng.Now(), Downtime: 50 * time.Millisecond, Err: err, RunningOn: on})
}

// fakeRate is the rate every fake migration reports; its data is what that
// rate sends over the driver's duration.
const fakeRate = 100 * model.MiB

func (j *fakeJob) Info() (hypervisor.JobInfo, error) {
	total := fakeRate * j.d.duration.Seconds()
	sent := fakeRate * j.d.eng.Now().Sub(j.start).Seconds()
	return hypervisor.JobInfo{Type: hypervisor.JobUnbounded, Phase: hypervisor.PhasePrecopy, MemBytesPerSec: fakeRate,
		DataTotal: uint64(total), DataProcessed: uint64(sent), DataRemaining: uint64(max(0, total-sent))}, nil
}
func (j *fakeJob) SetMaxSpeed(float64) error { return nil }
func (j *fakeJob) Pause() error              { return nil }
func (j *fakeJob) StartPostCopy() error      { return hypervisor.ErrNotAllowed }
func (j *fakeJob) Abort() error {
	j.timer.Stop()
	j.d.eng.AfterFunc(0, func() { j.end(hypervisor.ErrAborted) })
	return nil
}

func fixedPolicy() model.Policy {
	p := model.RefugePolicy()
	p.Concurrency = model.ConcurrencyPolicy{PerHostOut: 2, PerHostIn: 3}
	return p
}

func run(t *testing.T, ix *model.Index, pol model.Policy, drv hypervisor.Driver, eng *sim.Engine, deadlines map[int]time.Duration, during func(*Executor)) Report {
	t.Helper()
	ex, err := New(Config{Index: ix, Policy: pol, Driver: drv, Clock: eng, Start: epoch})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(deadlines); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during(ex)
	}
	eng.Run()
	select {
	case <-ex.Done():
	default:
		t.Fatal("executor did not finish")
	}
	return ex.Report()
}

func statuses(rep Report) map[Status]int {
	m := map[Status]int{}
	for _, r := range rep.VMs {
		m[r.Status]++
	}
	return m
}

func TestEvacuatesWithinHostLimits(t *testing.T) {
	// Links and NICs so fast that only the count limits bind (the fake
	// driver's migrations take 20 s whatever the bandwidth).
	ix := testFederationMbps(t, 12, 4096, 400000)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 20*time.Second)
	rep := run(t, ix, fixedPolicy(), drv, eng, map[int]time.Duration{0: time.Hour}, nil)
	if got := statuses(rep)[StatusMigrated]; got != 12 {
		t.Fatalf("migrated %d of 12: %v", got, statuses(rep))
	}
	for h, n := range drv.maxRun {
		if n > 2 {
			t.Errorf("host %s ran %d outbound migrations at once, limit 2", h, n)
		}
	}
	for _, r := range rep.VMs {
		if strings.HasPrefix(r.To, "a") {
			t.Errorf("%s sent to threatened site host %s", r.Name, r.To)
		}
		if drv.calls[r.Name] != 1 {
			t.Errorf("%s migrated %d times", r.Name, drv.calls[r.Name])
		}
	}
	// 12 migrations of 20 s, 2 sources × 2 at once: 3 waves.
	if last := rep.Timeline[len(rep.Timeline)-1]; last.Kind != EvFinished || last.At != 60*time.Second {
		t.Errorf("finished event %+v, want at 60s", last)
	}
}

func TestRetriesFailedMigrationThenGivesUp(t *testing.T) {
	ix := testFederation(t, 2, 4096)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 10*time.Second)
	drv.failFirst["vm00"] = 1           // succeeds on the second attempt
	drv.failFirst["vm01"] = MaxAttempts // never succeeds
	rep := run(t, ix, fixedPolicy(), drv, eng, map[int]time.Duration{0: time.Hour}, nil)
	byName := map[string]VMRecord{}
	for _, r := range rep.VMs {
		byName[r.Name] = r
	}
	if r := byName["vm00"]; r.Status != StatusMigrated || r.Attempts != 2 {
		t.Errorf("vm00: %+v, want migrated on attempt 2", r)
	}
	if r := byName["vm01"]; r.Status != StatusFailed || r.Attempts != MaxAttempts || drv.calls["vm01"] != MaxAttempts {
		t.Errorf("vm01: %+v after %d calls, want failed after %d attempts", r, drv.calls["vm01"], MaxAttempts)
	}
}

func TestAbortsMigrationsTowardsNewlyThreatenedSite(t *testing.T) {
	ix := testFederation(t, 4, 4096)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 30*time.Second)
	siteB := ix.SiteByName["b"]
	rep := run(t, ix, fixedPolicy(), drv, eng, map[int]time.Duration{0: time.Hour}, func(ex *Executor) {
		eng.AfterFunc(10*time.Second, func() { ex.SetDeadline(siteB, 2*time.Hour) })
	})
	aborted := 0
	for _, e := range rep.Timeline {
		if e.Kind == EvAbort {
			aborted++
		}
	}
	if aborted == 0 {
		t.Fatal("no migration towards b was aborted; the test does not exercise the abort path")
	}
	for _, r := range rep.VMs {
		if r.Status != StatusMigrated || !strings.HasPrefix(r.To, "c") {
			t.Errorf("%s: %s to %q, want migrated to site c", r.Name, r.Status, r.To)
		}
	}
}

func TestDeadlineMarksVMsLeftBehind(t *testing.T) {
	ix := testFederation(t, 8, 4096)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 100*time.Second)
	pol := fixedPolicy()
	pol.DeadlineAware = false
	pol.Concurrency = model.ConcurrencyPolicy{Global: 1}
	rep := run(t, ix, pol, drv, eng, map[int]time.Duration{0: 250 * time.Second}, nil)
	// One at a time, 100 s each, deadline 250 s: two finish in time, the
	// third is running at the deadline (the fake site does not go down, so
	// the driver completes it), the other five are missed.
	st := statuses(rep)
	inTime := 0
	for _, r := range rep.VMs {
		if r.Status == StatusMigrated && r.Finished <= 250*time.Second {
			inTime++
		}
	}
	if inTime != 2 || st[StatusMigrated] != 3 || st[StatusMissed] != 5 {
		t.Errorf("%d migrated in time, statuses %v; want 2 in time, 3 migrated, 5 missed", inTime, st)
	}
}

func TestAbortsMigrationsThatCannotMeetTheDeadline(t *testing.T) {
	// Each migration takes 100 s; the deadline is at 60 s. The planner
	// is told nothing of that (its model predicts far less for a 4 GiB VM at
	// 10 Gbit/s), so the executor must notice from the job statistics.
	ix := testFederation(t, 2, 4096)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 100*time.Second)
	rep := run(t, ix, fixedPolicy(), drv, eng, map[int]time.Duration{0: 60 * time.Second}, nil)
	for _, r := range rep.VMs {
		if r.Status != StatusMissed || drv.calls[r.Name] != 1 {
			t.Errorf("%s: %s after %d attempts; want missed after one aborted attempt", r.Name, r.Status, drv.calls[r.Name])
		}
		if !strings.Contains(r.Reason, "cannot finish before the deadline") {
			t.Errorf("%s: reason %q does not say why it was aborted", r.Name, r.Reason)
		}
		// The fake sends 100 MiB/s for 100 s, but the path could carry
		// about 770 MiB/s (a 4 MiB TCP window over 5.2 ms): the executor
		// gives up only once even that could not deliver the rest by 60 s,
		// which first happens at the tick of 55 s.
		if r.Finished != 55*time.Second {
			t.Errorf("%s aborted at %s, want 55s", r.Name, r.Finished)
		}
	}
}

// TestRefusesInfeasiblePlans plugs in a planner that sends every VM to one
// host: the executor must start only what fits there (memory and
// anti-affinity), mark the rest unsaved with the reason, and finish.
func TestRefusesInfeasiblePlans(t *testing.T) {
	ix := testFederation(t, 6, 16384) // b1 holds 64 GiB: four 16 GiB VMs
	ix.Fed.VMs[0].AntiAffinity, ix.Fed.VMs[1].AntiAffinity = "db", "db"
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 10*time.Second)
	b1 := ix.HostByName["b1"]
	greedy := func(in planner.Input) (*planner.Plan, error) {
		p := &planner.Plan{}
		for v, h := range in.Placement {
			if !in.Frozen[v] && ix.HostSite(h) == 0 {
				p.Moves = append(p.Moves, planner.Move{VM: v, Name: ix.Fed.VMs[v].Name, From: h, To: b1})
			}
		}
		return p, nil
	}
	ex, err := New(Config{Index: ix, Policy: fixedPolicy(), Driver: drv, Clock: eng, Start: epoch, Plan: greedy})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(map[int]time.Duration{0: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eng.Run()
	select {
	case <-ex.Done():
	default:
		t.Fatal("executor did not finish")
	}
	rep := ex.Report()
	st := statuses(rep)
	// vm00 and vm01 share an anti-affinity group: one of them is refused;
	// of the other five, four fit in b1's 64 GiB.
	if st[StatusMigrated] != 4 || st[StatusUnsaved] != 2 {
		t.Fatalf("statuses %v, want 4 migrated and 2 unsaved", st)
	}
	for _, r := range rep.VMs {
		if r.Status == StatusUnsaved && !strings.Contains(r.Reason, "executor refused") {
			t.Errorf("%s unsaved with reason %q", r.Name, r.Reason)
		}
	}
	if rep.VMs[0].Status == StatusMigrated && rep.VMs[1].Status == StatusMigrated {
		t.Error("both VMs of anti-affinity group db were placed on b1")
	}
}

// TestReplansWhenIdleBeforeTheDeadline: a pessimistic first plan leaves VMs
// behind; once the executor is idle with time left it plans again.
func TestReplansWhenIdleBeforeTheDeadline(t *testing.T) {
	ix := testFederation(t, 3, 4096)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 10*time.Second)
	calls := 0
	oneAtATime := func(in planner.Input) (*planner.Plan, error) {
		calls++
		p := &planner.Plan{}
		for v, h := range in.Placement {
			if in.Frozen[v] || ix.HostSite(h) != 0 {
				continue
			}
			if len(p.Moves) == 0 {
				p.Moves = append(p.Moves, planner.Move{VM: v, Name: ix.Fed.VMs[v].Name, From: h, To: ix.HostByName["b1"]})
			} else {
				p.Unsaved = append(p.Unsaved, planner.Unsaved{VM: v, Name: ix.Fed.VMs[v].Name, Code: planner.CodeDeadline, Reason: "pessimistic"})
			}
		}
		return p, nil
	}
	ex, err := New(Config{Index: ix, Policy: fixedPolicy(), Driver: drv, Clock: eng, Start: epoch, Plan: oneAtATime})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(map[int]time.Duration{0: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eng.Run()
	if st := statuses(ex.Report()); st[StatusMigrated] != 3 {
		t.Fatalf("statuses %v after %d plans, want all 3 migrated", st, calls)
	}
	if calls != 3 { // one plan per VM: nothing is left after the third
		t.Errorf("%d plans, want 3", calls)
	}
}

func TestCancelThreatStopsNewMigrations(t *testing.T) {
	for _, abort := range []bool{false, true} {
		ix := testFederation(t, 8, 4096)
		eng := sim.NewEngine(epoch)
		drv := newFakeDriver(eng, ix, 30*time.Second)
		rep := run(t, ix, fixedPolicy(), drv, eng, map[int]time.Duration{0: time.Hour}, func(ex *Executor) {
			eng.AfterFunc(10*time.Second, func() { ex.CancelThreat(0, abort) })
		})
		st := statuses(rep)
		// Two sources × two at once were running when the warning was
		// cancelled; nothing else starts.
		total := 0
		for _, n := range drv.calls {
			total += n
		}
		if total != 4 {
			t.Errorf("abort=%v: %d migrations started, want the 4 already running", abort, total)
		}
		want := map[Status]int{StatusMigrated: 4, StatusSafe: 4}
		if abort {
			want = map[Status]int{StatusAborted: 4, StatusSafe: 4}
		}
		for s, n := range want {
			if st[s] != n {
				t.Errorf("abort=%v: statuses %v, want %v", abort, st, want)
				break
			}
		}
	}
}

func TestNeverExceedsDestinationMemory(t *testing.T) {
	// 20 VMs of 16 GiB: b1, b2, c1 hold 64 GiB each → at most 12 fit.
	ix := testFederation(t, 20, 16384)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 10*time.Second)
	rep := run(t, ix, fixedPolicy(), drv, eng, map[int]time.Duration{0: time.Hour}, nil)
	used := map[string]int64{}
	for _, r := range rep.VMs {
		if r.Status == StatusMigrated {
			used[r.To] += 16384
		}
	}
	for h, m := range used {
		if m > 65536 {
			t.Errorf("host %s holds %d MiB, more than its 65536", h, m)
		}
	}
	if st := statuses(rep); st[StatusMigrated] != 12 || st[StatusUnsaved] != 8 {
		t.Errorf("statuses %v, want 12 migrated and 8 unsaved for lack of capacity", st)
	}
}

// realDriver completes migrations on its own goroutines, like a libvirt
// driver's event loop.
type realDriver struct {
	wg sync.WaitGroup
}

type realJob struct{}

func (realJob) Info() (hypervisor.JobInfo, error) { return hypervisor.JobInfo{}, nil }
func (realJob) SetMaxSpeed(float64) error         { return nil }
func (realJob) Abort() error                      { return nil }
func (realJob) Pause() error                      { return nil }
func (realJob) StartPostCopy() error              { return nil }

func (d *realDriver) ListDomains(context.Context, string) ([]hypervisor.Domain, error) {
	return nil, nil
}
func (d *realDriver) Migrate(_ context.Context, req hypervisor.MigrateRequest, obs hypervisor.Observer) (hypervisor.Job, error) {
	d.wg.Go(func() {
		obs.MigrationDone(hypervisor.Result{Domain: req.Domain, RunningOn: req.DestHost})
	})
	return realJob{}, nil
}

func TestRealClockAndConcurrentCallbacks(t *testing.T) {
	ix := testFederation(t, 10, 2048)
	drv := &realDriver{}
	ex, err := New(Config{Index: ix, Policy: fixedPolicy(), Driver: drv, Clock: clock.Real{}, Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(map[int]time.Duration{0: time.Hour}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ex.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("executor did not finish within 30 s")
	}
	drv.wg.Wait()
	if st := statuses(ex.Report()); st[StatusMigrated] != 10 {
		t.Fatalf("statuses %v, want 10 migrated", st)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ix := testFederation(t, 1, 1024)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, time.Second)
	bad := model.RefugePolicy()
	bad.Concurrency.Interval = 0
	for name, cfg := range map[string]Config{
		"no index":       {Driver: drv, Clock: eng},
		"no driver":      {Index: ix, Clock: eng},
		"no clock":       {Index: ix, Driver: drv},
		"placement size": {Index: ix, Driver: drv, Clock: eng, Placement: []int{0, 1}},
		"adaptive":       {Index: ix, Driver: drv, Clock: eng, Policy: bad},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted a bad config", name)
		}
	}
}

// recJournal records steps and refuses intents after the first allow.
type recJournal struct {
	allow   int
	intents []Step
	results []Step
}

func (j *recJournal) Intent(s Step) error {
	if len(j.intents) >= j.allow {
		return errors.New("not the leader any more")
	}
	j.intents = append(j.intents, s)
	return nil
}
func (j *recJournal) Result(s Step, _ error) { j.results = append(j.results, s) }

func TestJournalRecordsEveryStepAndFences(t *testing.T) {
	ix := testFederationMbps(t, 6, 4096, 400000)
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 20*time.Second)
	j := &recJournal{allow: 100}
	ex, err := New(Config{Index: ix, Policy: fixedPolicy(), Driver: drv, Clock: eng, Start: epoch, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(map[int]time.Duration{0: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eng.Run()
	starts, ends := 0, 0
	for _, s := range j.intents {
		if s.Kind == StepStart {
			starts++
		}
	}
	for _, s := range j.results {
		if s.Kind == StepEnd {
			ends++
		}
	}
	if starts != 6 || ends != 6 || statuses(ex.Report())[StatusMigrated] != 6 {
		t.Fatalf("%d start intents, %d ends journaled, statuses %v; want 6, 6, 6 migrated", starts, ends, statuses(ex.Report()))
	}

	// A journal that refuses the third intent fences the executor: the
	// refused start is not made, nor anything after it.
	eng = sim.NewEngine(epoch)
	drv = newFakeDriver(eng, ix, 20*time.Second)
	j = &recJournal{allow: 2}
	ex, err = New(Config{Index: ix, Policy: fixedPolicy(), Driver: drv, Clock: eng, Start: epoch, Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(map[int]time.Duration{0: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eng.Run()
	calls := 0
	for _, n := range drv.calls {
		calls += n
	}
	select {
	case <-ex.Done():
	default:
		t.Fatal("a fenced executor is not done")
	}
	if calls != 2 {
		t.Errorf("%d migrations started, want the 2 the journal allowed", calls)
	}
}

type recSwitcher struct{ calls []string }

func (s *recSwitcher) Switchover(_ context.Context, vm, service, from, to string) error {
	s.calls = append(s.calls, fmt.Sprintf("%s/%s:%s→%s", service, vm, from, to))
	return nil
}

func TestSwitcherFollowsEachMigratedService(t *testing.T) {
	ix := testFederationMbps(t, 4, 4096, 400000)
	ix.Fed.Services = []model.Service{{Name: "web"}}
	ix.Fed.VMs[0].Service, ix.Fed.VMs[2].Service = "web", "web"
	ix = model.NewIndex(ix.Fed)
	eng := sim.NewEngine(epoch)
	sw := &recSwitcher{}
	ex, err := New(Config{Index: ix, Policy: fixedPolicy(), Driver: newFakeDriver(eng, ix, 10*time.Second), Clock: eng, Start: epoch, Switcher: sw})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(map[int]time.Duration{0: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eng.Run()
	if len(sw.calls) != 2 {
		t.Fatalf("switchovers %v, want one per migrated VM of service web", sw.calls)
	}
	for _, c := range sw.calls {
		if !strings.HasPrefix(c, "web/vm0") || !strings.Contains(c, ":a→") {
			t.Errorf("switchover %q", c)
		}
	}
}

// A second warning after the executor finished (another site threatened)
// re-opens it: Done returns a new channel, and the new site's VMs move.
func TestSecondWarningAfterDone(t *testing.T) {
	ix := testFederationMbps(t, 4, 4096, 400000)
	// Move two of a's VMs to b first, so that b has VMs to save later.
	eng := sim.NewEngine(epoch)
	drv := newFakeDriver(eng, ix, 10*time.Second)
	ex, err := New(Config{Index: ix, Policy: fixedPolicy(), Driver: drv, Clock: eng, Start: epoch})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Start(map[int]time.Duration{ix.SiteByName["a"]: time.Hour}); err != nil {
		t.Fatal(err)
	}
	eng.Run()
	first := ex.Done()
	select {
	case <-first:
	default:
		t.Fatal("first evacuation not done")
	}
	onB := 0
	for _, r := range ex.Report().VMs {
		if strings.HasPrefix(r.To, "b") {
			onB++
		}
	}
	if onB == 0 {
		t.Fatal("no VM went to b; the test needs some there")
	}
	ex.SetDeadline(ix.SiteByName["b"], eng.Elapsed()+time.Hour)
	second := ex.Done()
	if second == first {
		t.Fatal("Done did not re-open for the second warning")
	}
	eng.Run()
	select {
	case <-second:
	default:
		t.Fatal("second evacuation not done")
	}
	for _, r := range ex.Report().VMs {
		if strings.HasPrefix(r.To, "b") || r.Status != StatusMigrated {
			t.Errorf("%s: %s, on %q; want every VM migrated off a and b", r.Name, r.Status, r.To)
		}
	}
}

// A site a migration only crosses is lost with its links: when a second
// warning gives x (between a and b) 20 s, the migration of a's VM through
// it cannot end in time, is aborted saying so, and the VM, with no other
// way out, stays on a1.
func TestAbortsMigrationsThroughASiteLostFirst(t *testing.T) {
	ix := indexOf(t, `name: chain
sites:
  - {name: a, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 16, memory_mib: 65536, nic_mbps: 10000}]}]}
  - {name: x, fabrics: [{name: fx, hosts: [{name: x1, vcpu: 16, memory_mib: 4096, nic_mbps: 10000}]}]}
  - {name: b, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 16, memory_mib: 65536, nic_mbps: 10000}]}]}
links:
  - {name: ax, a: a, b: x, bandwidth_mbps: 1000, rtt_ms: 2}
  - {name: xb, a: x, b: b, bandwidth_mbps: 1000, rtt_ms: 2}
vms:
  - {name: v, host: a1, vcpu: 2, memory_mib: 8192, storage: shared}
`)
	eng, cl := simulated(t, ix)
	x := ix.SiteByName["x"]
	rep := run(t, ix, model.RefugePolicy(), cl, eng, map[int]time.Duration{ix.SiteByName["a"]: time.Hour}, func(ex *Executor) {
		eng.AfterFunc(5*time.Second, func() { ex.SetDeadline(x, 20*time.Second) })
		eng.AfterFunc(20*time.Second, func() {
			if err := cl.LoseSite(x); err != nil {
				t.Error(err)
			}
		})
	})
	r := rep.VMs[0]
	if r.Status == StatusMigrated || !strings.Contains(r.Reason, "x, which its path crosses, is lost at 20s") {
		t.Errorf("v %s (%s); want it aborted for x's loss", r.Status, r.Reason)
	}
	if p := cl.Placement()[0]; p != ix.HostByName["a1"] {
		t.Errorf("v on host %d, want a1", p)
	}
}
