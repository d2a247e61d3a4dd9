package evacuate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/hypervisor/libvirt"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/world"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a manual clock: time moves only when told (Advance); due
// timers then run on their own goroutines, as the wall clock's do.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	f    func()
	done bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	if d <= 0 {
		t.done = true
		go f()
	}
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		go t.f()
	}
}

// dueTimes lists the times of every timer ever set.
func (c *fakeClock) dueTimes() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, t := range c.timers {
		out = append(out, t.at)
	}
	return out
}

// fakeHV is a federation of hosts behind the Hypervisor interface:
// connecting and listing take (fake) time, migrations end at once.
type fakeHV struct {
	clk         *fakeClock
	connectTime time.Duration
	listTime    time.Duration
	down        map[string]string // host → reason

	mu       sync.Mutex
	doms     map[string]map[string]bool // host → running domains
	migrated []hypervisor.MigrateRequest
	records  []libvirt.Record
	sampled  []string
}

type fakeJob struct{}

func (fakeJob) Info() (hypervisor.JobInfo, error) { return hypervisor.JobInfo{}, nil }
func (fakeJob) SetMaxSpeed(float64) error         { return nil }
func (fakeJob) Abort() error                      { return nil }
func (fakeJob) StartPostCopy() error              { return nil }
func (fakeJob) Pause() error                      { return nil }

func (f *fakeHV) WaitHosts(_ context.Context, _ time.Duration) []libvirt.HostState {
	f.clk.Advance(f.connectTime)
	var out []libvirt.HostState
	for h := range f.doms {
		st := libvirt.HostState{Host: h, Up: true}
		if why, ok := f.down[h]; ok {
			st = libvirt.HostState{Host: h, Reason: why, Err: errors.New(why)}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

func (f *fakeHV) ListDomains(_ context.Context, host string) ([]hypervisor.Domain, error) {
	if _, down := f.down[host]; down {
		return nil, fmt.Errorf("list %s: %w", host, hypervisor.ErrHostUnreachable)
	}
	f.clk.Advance(f.listTime)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []hypervisor.Domain
	for d := range f.doms[host] {
		out = append(out, hypervisor.Domain{Name: d, Host: host, State: hypervisor.StateRunning})
	}
	return out, nil
}

func (f *fakeHV) Migrate(_ context.Context, req hypervisor.MigrateRequest, obs hypervisor.Observer) (hypervisor.Job, error) {
	for _, h := range []string{req.SourceHost, req.DestHost} {
		if _, down := f.down[h]; down {
			return nil, fmt.Errorf("migrate %s: %w", req.Domain, hypervisor.ErrHostUnreachable)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.migrated = append(f.migrated, req)
	delete(f.doms[req.SourceHost], req.Domain)
	f.doms[req.DestHost][req.Domain] = true
	now := f.clk.Now()
	f.records = append(f.records, libvirt.Record{Domain: req.Domain, Source: req.SourceHost, Dest: req.DestHost, Started: now, Finished: now.Add(time.Second), Bytes: 1 << 20})
	res := hypervisor.Result{Domain: req.Domain, Source: req.SourceHost, Dest: req.DestHost, Started: now, Finished: now, RunningOn: req.DestHost}
	go obs.MigrationDone(res)
	return fakeJob{}, nil
}

func (f *fakeHV) SampleNonZero(_ context.Context, host, domain string, _ int, _ *rand.Rand) (float64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sampled = append(f.sampled, host+"/"+domain)
	return 0.5, nil
}

func (f *fakeHV) Records() []libvirt.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]libvirt.Record(nil), f.records...)
}
func (f *fakeHV) Steps() []libvirt.Step { return nil }
func (f *fakeHV) Close() error          { return nil }

const testFederation = `
name: three
sites:
  - {name: a, lat: 33, lon: 135, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 8, memory_mib: 4096, nic_mbps: 10000, uri: "test:///a1"}]}]}
  - {name: b, lat: 34, lon: 135, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 8, memory_mib: 4096, nic_mbps: 10000, uri: "test:///b1"}]}]}
  - {name: c, lat: 35, lon: 135, fabrics: [{name: fc, hosts: [{name: c1, vcpu: 8, memory_mib: 4096, nic_mbps: 10000, uri: "test:///c1"}]}]}
links:
  - {name: a-b, a: a, b: b, bandwidth_mbps: 1000, rtt_ms: 5}
  - {name: a-c, a: a, b: c, bandwidth_mbps: 1000, rtt_ms: 5}
vms:
  - {name: v1, host: a1, vcpu: 1, memory_mib: 128, storage: shared}
  - {name: v2, host: a1, vcpu: 1, memory_mib: 128, storage: shared}
  - {name: v3, host: c1, vcpu: 1, memory_mib: 128, storage: shared}
`

func setup(t *testing.T, deadline, connect time.Duration, down map[string]string) (*fakeHV, Options) {
	t.Helper()
	fed, err := model.ParseFederation([]byte(testFederation))
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	hv := &fakeHV{clk: clk, connectTime: connect, listTime: time.Second, down: down, doms: map[string]map[string]bool{
		"a1": {"v1": true, "v2": true}, "b1": {}, "c1": {"v3": true}}}
	o := Options{Federation: fed, Policy: model.RefugePolicy(), Clock: clk, Start: clk.Now(), NonLive: true,
		Scenario: &model.Scenario{Name: "t", Threats: []model.Threat{{Site: "a", Deadline: model.Duration(deadline)}}},
		Open:     func(libvirt.Config) (world.Hypervisor, error) { return hv, nil }}
	return hv, o
}

// run runs the evacuation, failing the test if it does not end.
func run(t *testing.T, o Options) (*Report, error) {
	t.Helper()
	type result struct {
		rep *Report
		err error
	}
	ch := make(chan result, 1)
	go func() {
		rep, err := Run(context.Background(), o)
		ch <- result{rep, err}
	}()
	select {
	case r := <-ch:
		return r.rep, r.err
	case <-time.After(30 * time.Second):
		t.Fatal("evacuation did not end")
		return nil, nil
	}
}

// TestUnreachableHostEvacuatesTheRest: a host whose daemon is down is
// reported once with its reason, its VM is lost as unreachable, and the
// others are evacuated — never to or from the down host.
func TestUnreachableHostEvacuatesTheRest(t *testing.T) {
	hv, o := setup(t, 10*time.Minute, time.Second, map[string]string{"c1": "dial /run/c1/libvirt-sock: connection refused"})
	var seen [][]libvirt.HostState
	o.OnHosts = func(s []libvirt.HostState) { seen = append(seen, s) }
	rep, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || len(seen[0]) != 3 {
		t.Fatalf("OnHosts calls: %+v", seen)
	}
	if len(rep.HostsDown) != 1 || rep.HostsDown[0].Host != "c1" || !strings.Contains(rep.HostsDown[0].Reason, "connection refused") {
		t.Errorf("hosts down: %+v", rep.HostsDown)
	}
	for _, m := range hv.migrated {
		if m.SourceHost == "c1" || m.DestHost == "c1" {
			t.Errorf("migration touches the down host: %+v", m)
		}
	}
	status := map[string]VM{}
	for _, v := range rep.VMs {
		status[v.Name] = v
	}
	for _, n := range []string{"v1", "v2"} {
		if v := status[n]; v.Status != string(executor.StatusMigrated) || v.To != "b1" {
			t.Errorf("%s: %+v; want migrated to b1", n, v)
		}
	}
	if v := status["v3"]; v.Status != string(executor.StatusLost) || v.From != "c1" || !strings.Contains(v.Reason, "host c1 unreachable: dial") {
		t.Errorf("v3: %+v; want lost, unreachable", v)
	}
	if rep.VMsEvacuated != 2 || rep.VMsAtRisk != 2 || rep.VMsUnreachable != 1 {
		t.Errorf("evacuated %d, at risk %d, unreachable %d; want 2, 2, 1", rep.VMsEvacuated, rep.VMsAtRisk, rep.VMsUnreachable)
	}
	// The prediction leaves out the down host and sends the sampled
	// non-zero memory of paused guests.
	sort.Strings(hv.sampled)
	if strings.Join(hv.sampled, ",") != "b1/v1,b1/v2" {
		t.Errorf("sampled %v", hv.sampled)
	}
	for _, n := range []string{"v1", "v2"} {
		if v := status[n]; v.PredictedTo != "b1" || v.PredictedS <= 0 || v.NonZeroShare != 0.5 {
			t.Errorf("%s: prediction %+v", n, v)
		}
		// Paused for the copy: more than the live switch-over (80 ms),
		// less than the whole migration (the set-up runs first).
		if v := status[n]; v.PredictedDowntimeMS <= 80 || v.PredictedDowntimeMS >= 1000*v.PredictedS {
			t.Errorf("%s: predicted pause %.0f ms of a %.2f s migration", n, v.PredictedDowntimeMS, v.PredictedS)
		}
	}
}

// TestAllHostsDown: nothing can be done; the error says so in one line.
func TestAllHostsDown(t *testing.T) {
	_, o := setup(t, 10*time.Minute, time.Second, map[string]string{"a1": "x", "b1": "x", "c1": "x"})
	_, err := run(t, o)
	if err == nil || !strings.Contains(err.Error(), "none of the 3 hosts") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v", err)
	}
}

// TestDeadlineAnchoredAtStart: the deadline counts from Options.Start, not
// from when connecting and inventory ended.
func TestDeadlineAnchoredAtStart(t *testing.T) {
	hv, o := setup(t, 10*time.Minute, 20*time.Second, nil)
	o.NoPredict = true
	rep, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	// 20 s connecting, then the three hosts listed concurrently, 1 s each
	// on the fake clock.
	if rep.ReadyS != 23 {
		t.Errorf("ready at %v s; want 23", rep.ReadyS)
	}
	want := o.Start.Add(10 * time.Minute)
	found := false
	for _, at := range hv.clk.dueTimes() {
		found = found || at.Equal(want)
	}
	if !found {
		t.Errorf("no deadline timer at start + 10m (%v); timers at %v", want, hv.clk.dueTimes())
	}
	if len(rep.Timeline) == 0 || rep.Timeline[0].At != 23*time.Second {
		t.Errorf("timeline starts at %v; want 23s from the start", rep.Timeline)
	}

	// Connecting used the whole warning: 42 s, 43 s of them gone by the
	// end of the inventory. Nothing can leave in time and nothing is
	// started (from the end of the inventory, 42 s would have been plenty
	// for these small VMs).
	hv, o = setup(t, 42*time.Second, 40*time.Second, nil)
	o.NoPredict = true
	rep, err = run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(hv.migrated) != 0 || rep.VMsEvacuated != 0 {
		t.Errorf("deadline passed while connecting, yet migrated %v", hv.migrated)
	}
	for _, v := range rep.VMs {
		if v.Status == string(executor.StatusMigrated) {
			t.Errorf("%+v", v)
		}
	}
}
