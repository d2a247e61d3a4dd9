package world

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/hypervisor/libvirt"
	"github.com/refuge-project/refuge/internal/model"
)

// fakeDaemons is a federation's libvirt daemons behind Hypervisor: each
// host lists its domains; a host in down does not answer.
type fakeDaemons struct {
	mu   sync.Mutex
	doms map[string][]hypervisor.Domain // host → domains
	down map[string]bool
}

func (f *fakeDaemons) WaitHosts(context.Context, time.Duration) []libvirt.HostState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []libvirt.HostState
	for _, h := range []string{"a1", "b1", "c1"} {
		st := libvirt.HostState{Host: h, Up: !f.down[h]}
		if f.down[h] {
			st.Reason, st.Err = "connection refused", errors.New("connection refused")
		}
		out = append(out, st)
	}
	return out
}

func (f *fakeDaemons) ListDomains(_ context.Context, host string) ([]hypervisor.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down[host] {
		return nil, fmt.Errorf("list %s: %w", host, hypervisor.ErrHostUnreachable)
	}
	return f.doms[host], nil
}

// Migrate moves the domain at once and reports it done.
func (f *fakeDaemons) Migrate(_ context.Context, req hypervisor.MigrateRequest, obs hypervisor.Observer) (hypervisor.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	src := f.doms[req.SourceHost]
	for i, d := range src {
		if d.Name == req.Domain {
			f.doms[req.SourceHost] = append(src[:i:i], src[i+1:]...)
			d.Host = req.DestHost
			f.doms[req.DestHost] = append(f.doms[req.DestHost], d)
			now := time.Now()
			go obs.MigrationDone(hypervisor.Result{Domain: req.Domain, Source: req.SourceHost, Dest: req.DestHost,
				Started: now, Finished: now, RunningOn: req.DestHost})
			return fakeJob{}, nil
		}
	}
	return nil, fmt.Errorf("migrate %s: %w", req.Domain, hypervisor.ErrNoSuchDomain)
}

type fakeJob struct{}

func (fakeJob) Info() (hypervisor.JobInfo, error) { return hypervisor.JobInfo{}, nil }
func (fakeJob) SetMaxSpeed(float64) error         { return nil }
func (fakeJob) Abort() error                      { return nil }
func (fakeJob) StartPostCopy() error              { return nil }
func (fakeJob) Pause() error                      { return nil }

func (f *fakeDaemons) SampleNonZero(context.Context, string, string, int, *rand.Rand) (float64, error) {
	return 1, nil
}
func (f *fakeDaemons) Records() []libvirt.Record { return nil }
func (f *fakeDaemons) Steps() []libvirt.Step     { return nil }
func (f *fakeDaemons) Close() error              { return nil }

const threeHosts = `
name: three
sites:
  - {name: a, lat: 33, lon: 135, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 8, memory_mib: 4096, nic_mbps: 1000, uri: "test:///a1"}]}]}
  - {name: b, lat: 34, lon: 135, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 8, memory_mib: 4096, nic_mbps: 1000, uri: "test:///b1"}]}]}
  - {name: c, lat: 35, lon: 135, fabrics: [{name: fc, hosts: [{name: c1, vcpu: 8, memory_mib: 4096, nic_mbps: 1000, uri: "test:///c1"}]}]}
links:
  - {name: a-b, a: a, b: b, bandwidth_mbps: 1000, rtt_ms: 5}
  - {name: b-c, a: b, b: c, bandwidth_mbps: 1000, rtt_ms: 5}
vms:
  - {name: v1, host: a1, vcpu: 1, memory_mib: 128, storage: shared}
  - {name: v2, host: a1, vcpu: 1, memory_mib: 128, storage: shared}
  - {name: v3, host: c1, vcpu: 1, memory_mib: 128, storage: shared}
`

func connectFake(t *testing.T, f *fakeDaemons) (*Hosts, error) {
	t.Helper()
	fed, err := model.ParseFederation([]byte(threeHosts))
	if err != nil {
		t.Fatal(err)
	}
	return Connect(context.Background(), HostsConfig{Federation: fed, Open: func(libvirt.Config) (Hypervisor, error) { return f, nil }})
}

func running(name, host string, st hypervisor.DomainState) hypervisor.Domain {
	return hypervisor.Domain{Name: name, Host: host, State: st}
}

// TestHostsState: the world's state is an inventory of the daemons: a VM
// active on two hosts is in flight and placed where it runs (not where it
// waits paused), a host that stops answering is down, and one monitoring
// declared down is left out from then on.
func TestHostsState(t *testing.T) {
	f := &fakeDaemons{down: map[string]bool{}, doms: map[string][]hypervisor.Domain{
		"a1": {running("v1", "a1", hypervisor.StateRunning), running("v2", "a1", hypervisor.StateRunning)},
		"b1": {running("v1", "b1", hypervisor.StatePaused)}, // v1's migration is under way
		"c1": {running("v3", "c1", hypervisor.StateRunning), running("stray", "c1", hypervisor.StateRunning)},
	}}
	w, err := connectFake(t, f)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ix := w.Index()
	placement, down := w.State()
	a1, b1, c1 := ix.HostByName["a1"], ix.HostByName["b1"], ix.HostByName["c1"]
	if want := []int{a1, a1, c1}; fmt.Sprint(placement) != fmt.Sprint(want) || fmt.Sprint(down) != "[false false false]" {
		t.Errorf("state %v %v, want %v, none down", placement, down, want)
	}
	if !w.InFlight(ix.VMByName["v1"]) || w.InFlight(ix.VMByName["v2"]) {
		t.Error("v1 (active on a1 and b1) should be in flight, v2 not")
	}
	inv, err := w.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.CheckOnce(ix); err == nil || !strings.Contains(err.Error(), "v1 is active on both a1 and b1") {
		t.Errorf("CheckOnce: %v", err)
	}

	// c1's daemon stops answering: c1 is down, v3 lost (unreachable); a
	// strict inventory fails, naming it.
	f.mu.Lock()
	f.down["c1"] = true
	f.mu.Unlock()
	placement, down = w.State()
	if !down[c1] || placement[ix.VMByName["v3"]] != -1 {
		t.Errorf("c1 not answering: state %v %v", placement, down)
	}
	if _, err := w.Inventory(context.Background()); err == nil || !strings.Contains(err.Error(), "c1") {
		t.Errorf("strict inventory with c1 not answering: %v", err)
	}
	f.mu.Lock()
	f.down["c1"] = false
	f.mu.Unlock()

	// Monitoring declares a1 down: it is left out though it answers.
	if err := w.HostDown(a1); err != nil {
		t.Fatal(err)
	}
	placement, down = w.State()
	if !down[a1] || placement[ix.VMByName["v2"]] != -1 || placement[ix.VMByName["v1"]] != b1 {
		t.Errorf("a1 declared down: state %v %v", placement, down)
	}
	if err := w.HostDown(99); err == nil {
		t.Error("HostDown of an unknown host index accepted")
	}
	// Monitoring sees a1 recover: it is asked again.
	if err := w.HostUp(a1); err != nil {
		t.Fatal(err)
	}
	if placement, down = w.State(); down[a1] || placement[ix.VMByName["v2"]] != a1 {
		t.Errorf("a1 recovered: state %v %v", placement, down)
	}
}

// TestHostsDownWhenConnectingComeBack: a host down when connecting is
// left out of a one-shot inventory (refuge evacuate) but asked again by
// State (the daemons): once its daemon answers it is up.
func TestHostsDownWhenConnectingComeBack(t *testing.T) {
	f := &fakeDaemons{down: map[string]bool{"c1": true}, doms: map[string][]hypervisor.Domain{
		"a1": {running("v1", "a1", hypervisor.StateRunning), running("v2", "a1", hypervisor.StateRunning)},
		"c1": {running("v3", "c1", hypervisor.StateRunning)},
	}}
	w, err := connectFake(t, f)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ix := w.Index()
	c1 := ix.HostByName["c1"]
	if u := w.Unreachable(); len(u) != 1 || u[0].Host != "c1" {
		t.Errorf("unreachable %+v, want c1", u)
	}
	f.mu.Lock()
	f.down["c1"] = false
	f.mu.Unlock()
	inv, err := w.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !inv.Down[c1] || !strings.Contains(inv.Unreachable[ix.VMByName["v3"]], "host c1 unreachable: connection refused") {
		t.Errorf("one-shot inventory: c1 down %v, v3 %q", inv.Down[c1], inv.Unreachable[ix.VMByName["v3"]])
	}
	if placement, down := w.State(); down[c1] || placement[ix.VMByName["v3"]] != c1 {
		t.Errorf("c1 back: state %v %v", placement, down)
	}
}

// TestConnectRefuses: a federation with a host lacking its uri, and one
// none of whose hosts answers, are refused, saying so.
func TestConnectRefuses(t *testing.T) {
	fed, err := model.ParseFederation([]byte(strings.Replace(threeHosts, `, uri: "test:///b1"`, "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(context.Background(), HostsConfig{Federation: fed}); err == nil || !strings.Contains(err.Error(), "2 of 3 hosts have a libvirt uri") {
		t.Errorf("a host without uri: %v", err)
	}
	_, err = connectFake(t, &fakeDaemons{down: map[string]bool{"a1": true, "b1": true, "c1": true}})
	if err == nil || !strings.Contains(err.Error(), "none of the 3 hosts of three is reachable (first: a1: connection refused)") {
		t.Errorf("no host answering: %v", err)
	}
	if _, err := Connect(context.Background(), HostsConfig{}); err == nil || !strings.Contains(err.Error(), "Federation is required") {
		t.Errorf("no federation: %v", err)
	}
}

// TestHostsTarget: the pipeline's target on the real hosts evacuates a
// threatened site through the driver, on the wall clock, from the
// daemons' inventory.
func TestHostsTarget(t *testing.T) {
	f := &fakeDaemons{down: map[string]bool{}, doms: map[string][]hypervisor.Domain{
		"a1": {running("v1", "a1", hypervisor.StateRunning), running("v2", "a1", hypervisor.StateRunning)},
		"c1": {running("v3", "c1", hypervisor.StateRunning)},
	}}
	w, err := connectFake(t, f)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Target().Apply(map[string]time.Time{"a": w.Now().Add(10 * time.Minute)}, nil, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Target().Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the evacuation of a did not end")
	}
	placement, _ := w.State()
	ix := w.Index()
	for _, v := range []string{"v1", "v2"} {
		if h := placement[ix.VMByName[v]]; h < 0 || ix.HostSite(h) == ix.SiteByName["a"] {
			t.Errorf("%s still on a (host %d)", v, h)
		}
	}
}

// TestConnectDrivesSwitchovers: with Switchover (continuity configured)
// the driver runs the migration's phases itself, so that services switch
// before the source is destroyed; without it, libvirt runs them peer to
// peer.
func TestConnectDrivesSwitchovers(t *testing.T) {
	fed, err := model.ParseFederation([]byte(threeHosts))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []bool{false, true} {
		var got libvirt.Config
		open := func(c libvirt.Config) (Hypervisor, error) { got = c; return nil, errors.New("not opened") }
		if _, err := Connect(context.Background(), HostsConfig{Federation: fed, Switchover: want, Open: open}); err == nil {
			t.Fatal("Connect succeeded without a driver")
		}
		if got.Drive != want {
			t.Errorf("Switchover %v: driver Drive %v", want, got.Drive)
		}
	}
}
