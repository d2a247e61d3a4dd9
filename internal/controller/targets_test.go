package controller

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/controller/controllertest"
	"github.com/refuge-project/refuge/internal/daemon"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/monitor"
	"github.com/refuge-project/refuge/internal/store"
	"github.com/refuge-project/refuge/internal/world"
)

// solo starts one controller with its embedded member on the simulated
// federation, speed times faster than real time, and waits
// until it leads.
func solo(t *testing.T, fed *model.Federation, speed float64) (*Controller, *world.Sim) {
	t.Helper()
	return soloWith(t, fed, speed, func(*Config) {})
}

// soloWith is solo with the controller's Config changed by set.
func soloWith(t *testing.T, fed *model.Federation, speed float64, set func(*Config)) (*Controller, *world.Sim) {
	t.Helper()
	m, err := store.StartMember(store.MemberConfig{DataDir: t.TempDir(), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open([]string{m.ClientURL()})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	w, err := NewSimWorld(fed, speed)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: "solo", Store: st, World: w, TTL: 1}
	set(&cfg)
	ctl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	worldDone, runDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(worldDone); _ = w.Run(ctx) }()
	go func() { defer close(runDone); _ = ctl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-runDone
		<-worldDone
		st.Close()
		m.Close()
	})
	if !controllertest.Poll(10*time.Second, ctl.IsLeader) {
		t.Fatal("the controller does not lead")
	}
	return ctl, w
}

// run returns the live run of operation id (nil once it ended).
func (c *Controller) run(id string) *opRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

// timeline returns the run's executor timeline so far.
func (r *opRun) timeline() []executor.Event {
	var rep executor.Report
	r.c.cfg.World.Do(func() { rep = r.exec.Report() })
	return rep.Timeline
}

func hasEvent(evs []executor.Event, kind, detail string) bool {
	for _, ev := range evs {
		if ev.Kind == kind && strings.Contains(ev.Detail, detail) {
			return true
		}
	}
	return false
}

// liveOps returns the live operations in the store.
func liveOps(t *testing.T, c *Controller) []store.Operation {
	t.Helper()
	ops, err := c.Store().Operations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Operation
	for _, op := range ops {
		if store.Live(op.Status) {
			out = append(out, op)
		}
	}
	return out
}

// TestAlertsRetargetTheRunningEvacuation: the alert pipeline's updates
// reach its running evacuation: a moved deadline moves in the executor
// and the store, a site at watch level is excluded as a destination, a
// newly threatened site joins the same operation, and withdrawing every
// threat ends it, cancelled, with the reason.
func TestAlertsRetargetTheRunningEvacuation(t *testing.T) {
	ctl, w := solo(t, controllertest.Nankai(t), 1)
	tg := ctl.AlertTarget()
	now := w.Now()
	kochi := now.Add(30 * time.Minute)
	if err := tg.Apply(map[string]time.Time{"kochi": kochi}, nil, false); err != nil {
		t.Fatal(err)
	}
	ops := liveOps(t, ctl)
	if len(ops) != 1 || ops[0].CreatedBy != AlertBy {
		t.Fatalf("live operations %+v, want the alert pipeline's one", ops)
	}
	id := ops[0].ID
	r := ctl.run(id)

	// The same deadline again changes nothing; an earlier one moves it.
	if err := tg.Apply(map[string]time.Time{"kochi": kochi}, nil, false); err != nil {
		t.Fatal(err)
	}
	earlier := now.Add(20 * time.Minute)
	if err := tg.Apply(map[string]time.Time{"kochi": earlier}, nil, false); err != nil {
		t.Fatal(err)
	}
	if !hasEvent(r.timeline(), executor.EvDeadline, "kochi deadline now") {
		t.Error("the moved deadline did not reach the executor")
	}
	op, err := ctl.Store().Operation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(op.Sites) != 1 || !op.Sites[0].Deadline.Equal(earlier) {
		t.Errorf("stored sites %+v, want kochi by %v", op.Sites, earlier)
	}

	// Osaka at watch level: the evacuation sends it no VM.
	if err := tg.Apply(map[string]time.Time{"kochi": earlier}, []string{"osaka"}, false); err != nil {
		t.Fatal(err)
	}
	if !hasEvent(r.timeline(), executor.EvWatch, "osaka at watch level") {
		t.Error("the watched site did not reach the executor")
	}

	// Kagawa threatened too: the same operation evacuates it.
	kagawa := now.Add(40 * time.Minute)
	if err := tg.Apply(map[string]time.Time{"kochi": earlier, "kagawa": kagawa}, nil, false); err != nil {
		t.Fatal(err)
	}
	if ops := liveOps(t, ctl); len(ops) != 1 || len(ops[0].Sites) != 2 {
		t.Errorf("after kagawa: live operations %+v, want one of two sites", ops)
	}
	if !hasEvent(r.timeline(), executor.EvDeadline, "kagawa deadline now") {
		t.Error("kagawa did not join the executor")
	}
	if !hasEvent(r.timeline(), executor.EvWatch, "osaka no longer at watch level") {
		t.Error("osaka, no longer watched, is still excluded")
	}

	// Every threat withdrawn: the evacuation ends, cancelled.
	if err := tg.Apply(map[string]time.Time{}, nil, true); err != nil {
		t.Fatal(err)
	}
	if !hasEvent(r.timeline(), executor.EvDeadline, "kochi threat withdrawn") {
		t.Error("the withdrawal did not reach the executor")
	}
	if !controllertest.Poll(20*time.Second, func() bool {
		op, err = ctl.Store().Operation(context.Background(), id)
		return err == nil && op.Status == store.OpCancelled
	}) {
		t.Fatalf("operation %+v, want cancelled", op)
	}
	if op.Error != "every threat was withdrawn" || len(op.Sites) != 0 {
		t.Errorf("cancelled operation %+v", op)
	}

	// A new alert afterwards starts a new evacuation.
	if err := tg.Apply(map[string]time.Time{"kochi": earlier}, nil, false); err != nil {
		t.Fatal(err)
	}
	if ops := liveOps(t, ctl); len(ops) != 1 || ops[0].ID == id {
		t.Errorf("after the withdrawal, live operations %+v, want a new one", ops)
	}
}

// threeSites: a's two VMs can only go to b (c is full); c's one VM can
// go to a or b. Each migration takes about a minute.
const threeSites = `
name: three
sites:
  - {name: a, lat: 33, lon: 135, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 16, memory_mib: 32768, nic_mbps: 1000}]}]}
  - {name: b, lat: 34, lon: 135, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 16, memory_mib: 65536, nic_mbps: 1000}]}]}
  - {name: c, lat: 35, lon: 135, fabrics: [{name: fc, hosts: [{name: c1, vcpu: 4, memory_mib: 8192, nic_mbps: 1000}]}]}
links:
  - {name: a-b, a: a, b: b, bandwidth_mbps: 1000, rtt_ms: 5}
  - {name: a-c, a: a, b: c, bandwidth_mbps: 1000, rtt_ms: 5}
  - {name: b-c, a: b, b: c, bandwidth_mbps: 1000, rtt_ms: 5}
vms:
  - {name: v1, host: a1, vcpu: 2, memory_mib: 8192, storage: shared}
  - {name: v2, host: a1, vcpu: 2, memory_mib: 8192, storage: shared}
  - {name: v3, host: c1, vcpu: 2, memory_mib: 8192, storage: shared}
`

// TestEvacuationsSideBySide: evacuations of disjoint VMs run at once, and
// neither sends VMs to the other's sites; one that concerns a VM of a
// live evacuation is refused with a conflict that names it.
func TestEvacuationsSideBySide(t *testing.T) {
	fed, err := model.ParseFederation([]byte(threeSites))
	if err != nil {
		t.Fatal(err)
	}
	ctl, _ := solo(t, fed, 1)
	ctx := context.Background()
	evacuate := func(site string) (*store.Operation, error) {
		return ctl.Evacuate(ctx, EvacuationRequest{Sites: []SiteRequest{{Site: site, Deadline: time.Hour}}, By: "test"})
	}
	op1, err := evacuate("a")
	if err != nil {
		t.Fatal(err)
	}
	r1 := ctl.run(op1.ID)
	// a's VMs are moving to b: b's VMs are in a's evacuation.
	_, err = evacuate("b")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "is migrating VM v1 to b1") || !strings.Contains(err.Error(), op1.ID) {
		t.Errorf("evacuating b, where %s migrates VMs: %v, want a conflict naming the VM", op1.ID, err)
	}
	op2, err := evacuate("c")
	if err != nil {
		t.Fatalf("evacuating c beside a: %v", err)
	}
	r2 := ctl.run(op2.ID)
	if live := liveOps(t, ctl); len(live) != 2 {
		t.Errorf("%d live operations, want 2", len(live))
	}
	_, err = evacuate("a")
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), op1.ID+" already evacuates site a") {
		t.Errorf("second evacuation of a: %v, want a conflict naming %s", err, op1.ID)
	}
	if !hasEvent(r1.timeline(), executor.EvWatch, "c at watch level") {
		t.Error("a's executor was not told that c is evacuated")
	}
	if !hasEvent(r2.timeline(), executor.EvWatch, "a at watch level") {
		t.Error("c's executor does not know that a is evacuated")
	}
	// c's VM goes to b: a is threatened (it may wait for b1's NIC, which
	// a's migration fills: the evacuations share admission).
	var rep executor.Report
	ctl.World().Do(func() { rep = r2.exec.Report() })
	if moves := rep.FirstPlan.Moves; len(moves) != 1 || moves[0].Name != "v3" || moves[0].ToHost != "b1" {
		t.Errorf("c's evacuation plans %+v, want v3 to b1", moves)
	}
	for _, id := range []string{op1.ID, op2.ID} {
		if _, err := ctl.Control(ctx, id, ActCancel); err != nil {
			t.Errorf("cancel %s: %v", id, err)
		}
	}
}

// sharedLink: while both are evacuated, a's and b's VMs can only go to c
// (each evacuation keeps the other's site at watch level, and the hub h
// has no room), over the link h-c.
const sharedLink = `
name: shared-link
sites:
  - {name: a, lat: 33, lon: 135, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 16, memory_mib: 32768, nic_mbps: 1000}]}]}
  - {name: b, lat: 34, lon: 135, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 16, memory_mib: 32768, nic_mbps: 1000}]}]}
  - {name: h, lat: 35, lon: 135, fabrics: [{name: fh, hosts: [{name: h1, vcpu: 4, memory_mib: 1024, nic_mbps: 1000}]}]}
  - {name: c, lat: 36, lon: 135, fabrics: [{name: fc, hosts: [{name: c1, vcpu: 16, memory_mib: 32768, nic_mbps: 1000}]}]}
links:
  - {name: a-h, a: a, b: h, bandwidth_mbps: 1000, rtt_ms: 5}
  - {name: b-h, a: b, b: h, bandwidth_mbps: 1000, rtt_ms: 5}
  - {name: h-c, a: h, b: c, bandwidth_mbps: 1000, rtt_ms: 5}
vms:
  - {name: v1, host: a1, vcpu: 2, memory_mib: 8192, storage: shared}
  - {name: v2, host: a1, vcpu: 2, memory_mib: 8192, storage: shared}
  - {name: v3, host: b1, vcpu: 2, memory_mib: 2048, storage: shared}
  - {name: v4, host: b1, vcpu: 2, memory_mib: 2048, storage: shared}
`

// TestEvacuationsSideBySideShareALink: two evacuations running at once
// keep, together, the admission of the link both cross (one migration at
// a time on h-c): the controller's executors share one ledger. a's
// migrations take about 75 s each, b's 20 s; once a is empty, b's VMs may
// go there instead.
func TestEvacuationsSideBySideShareALink(t *testing.T) {
	fed, err := model.ParseFederation([]byte(sharedLink))
	if err != nil {
		t.Fatal(err)
	}
	pol := model.RefugePolicy()
	pol.Concurrency.PerLinkLimit = 1
	ctl, w := soloWith(t, fed, 50, func(c *Config) { c.Policy = pol })
	var runs []*opRun
	for _, site := range []string{"a", "b"} {
		op, err := ctl.Evacuate(context.Background(), EvacuationRequest{Sites: []SiteRequest{{Site: site, Deadline: time.Hour}}, By: "test"})
		if err != nil {
			t.Fatalf("evacuating %s: %v", site, err)
		}
		runs = append(runs, ctl.run(op.ID))
	}
	type span struct {
		vm         string
		start, end time.Time
	}
	var spans []span
	var aEnd time.Time
	for _, r := range runs {
		select {
		case <-r.finished:
		case <-time.After(30 * time.Second):
			t.Fatalf("evacuation %s did not finish", r.op.ID)
		}
		var rep executor.Report
		w.Do(func() { rep = r.exec.Report() })
		for _, v := range rep.VMs {
			if v.Status == executor.StatusSafe {
				continue
			}
			if v.Status != executor.StatusMigrated {
				t.Errorf("%s: %s (%s), want migrated", v.Name, v.Status, v.Reason)
			}
			if v.To == "c1" {
				spans = append(spans, span{v.Name, r.start.Add(v.Started), r.start.Add(v.Finished)})
			}
			if r == runs[0] && r.start.Add(v.Finished).After(aEnd) {
				aEnd = r.start.Add(v.Finished)
			}
		}
	}
	if !runs[1].start.Before(aEnd) {
		t.Fatalf("b's evacuation started at %s, after a's ended (%s): they did not run side by side",
			runs[1].start.Format(time.TimeOnly), aEnd.Format(time.TimeOnly))
	}
	if len(spans) < 3 {
		t.Fatalf("%d migrations to c1, want both of a's and at least one of b's", len(spans))
	}
	for i, x := range spans {
		for _, y := range spans[i+1:] {
			if x.start.Before(y.end) && y.start.Before(x.end) {
				t.Errorf("%s (%s–%s) and %s (%s–%s) crossed h-c at once", x.vm, x.start.Format(time.TimeOnly), x.end.Format(time.TimeOnly),
					y.vm, y.start.Format(time.TimeOnly), y.end.Format(time.TimeOnly))
			}
		}
	}
}

// TestMonitorFailureReachesTheExecutor: the n-queen monitoring (master–
// slave for three hosts) runs over loopback UDP with an agent per host;
// when a1's agent stops, the failure it declares reaches the running
// evacuation's executor (HostDown), and the simulated host fails with it;
// when the agent is back, so is the simulated host (HostUp).
func TestMonitorFailureReachesTheExecutor(t *testing.T) {
	fed, err := model.ParseFederation([]byte(threeSites))
	if err != nil {
		t.Fatal(err)
	}
	ctl, _ := solo(t, fed, 1)
	op, err := ctl.Evacuate(context.Background(), EvacuationRequest{Sites: []SiteRequest{{Site: "a", Deadline: time.Hour}}, By: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r := ctl.run(op.ID)

	const interval = 50 * time.Millisecond
	det := monitor.DetectorConfig{Timeout: time.Second}
	udp := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctrlConn := udp()
	var hosts []monitor.HostInfo
	agents := map[string]*monitor.Agent{}
	for i, name := range []string{"a1", "b1", "c1"} {
		a, err := monitor.NewAgent(monitor.AgentConfig{ID: uint32(i + 1), Conn: udp(), Controller: ctrlConn.LocalAddr().(*net.UDPAddr).AddrPort(),
			Interval: interval, Detector: det})
		if err != nil {
			t.Fatal(err)
		}
		a.Start()
		agents[name] = a
		hosts = append(hosts, monitor.HostInfo{ID: uint32(i + 1), Name: name, Addr: a.Addr()})
	}
	defer func() {
		for _, a := range agents {
			a.Close()
		}
	}()
	mon, err := daemon.Monitor(daemon.MonitorConfig{Federation: fed, HostDown: ctl.HostDown, HostUp: ctl.HostUp,
		Controller: monitor.ControllerConfig{Hosts: hosts, Scheme: monitor.SchemeMasterSlave, Conn: ctrlConn, Interval: interval, Detector: det}})
	if err != nil {
		t.Fatal(err)
	}
	mon.Start()
	defer mon.Close()

	agents["a1"].Close()
	if !controllertest.Poll(20*time.Second, func() bool { return hasEvent(r.timeline(), executor.EvHostDown, "a1") }) {
		t.Fatalf("the executor was not told that a1 is down: %+v", r.timeline())
	}
	a1 := ctl.ix.HostByName["a1"]
	hostDown := func() bool {
		var down []bool
		ctl.World().Do(func() { _, down = ctl.World().State() })
		return down[a1]
	}
	if !hostDown() {
		t.Error("the world still has a1 up")
	}
	// a1 restarts (its agent at the same address): the simulated host
	// comes back, empty, for later evacuations.
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(hosts[0].Addr))
	if err != nil {
		t.Fatal(err)
	}
	again, err := monitor.NewAgent(monitor.AgentConfig{ID: 1, Conn: conn, Controller: ctrlConn.LocalAddr().(*net.UDPAddr).AddrPort(),
		Interval: interval, Detector: det})
	if err != nil {
		t.Fatal(err)
	}
	again.Start()
	agents["a1"] = again
	if !controllertest.Poll(20*time.Second, func() bool { return !hostDown() }) {
		t.Error("a1's agent is back but the world still has a1 down")
	}
	// a1's VMs are lost with it: the evacuation may have ended already.
	if _, err := ctl.Control(context.Background(), op.ID, ActCancel); err != nil && !errors.Is(err, ErrConflict) {
		t.Error(err)
	}
}

// TestMonitorRosterOutsideTheFederation: a roster host the federation
// lacks is refused, naming the field.
func TestMonitorRosterOutsideTheFederation(t *testing.T) {
	fed, err := model.ParseFederation([]byte(threeSites))
	if err != nil {
		t.Fatal(err)
	}
	_, err = daemon.Monitor(daemon.MonitorConfig{Federation: fed, HostDown: func(string) error { return nil },
		Controller: monitor.ControllerConfig{Hosts: []monitor.HostInfo{{ID: 1, Name: "a1"}, {ID: 2, Name: "zz9"}}}})
	if err == nil || !strings.Contains(err.Error(), `hosts[1].name: "zz9"`) {
		t.Errorf("roster with zz9: %v", err)
	}
}

// TestPrepareBeforeTheExecutor: Config.Prepare (continuity's TTL
// lowering) runs with the evacuation's sites before its executor starts;
// a Prepare slower than PrepareWait delays the start by PrepareWait only,
// and finishes meanwhile.
func TestPrepareBeforeTheExecutor(t *testing.T) {
	fed, err := model.ParseFederation([]byte(threeSites))
	if err != nil {
		t.Fatal(err)
	}
	type call struct {
		op      string
		sites   []string
		running bool // an executor of op was running when Prepare began
	}
	calls := make(chan call, 4)
	release := make(chan struct{})
	var ctl *Controller
	ctl, _ = soloWith(t, fed, 1, func(c *Config) {
		c.PrepareWait = 200 * time.Millisecond
		c.Prepare = func(ctx context.Context, op string, sites []string) error {
			calls <- call{op, sites, ctl.run(op) != nil}
			if sites[0] == "c" {
				select { // slower than PrepareWait
				case <-release:
				case <-ctx.Done():
				}
			}
			return nil
		}
	})
	ctx := context.Background()
	op, err := ctl.Evacuate(ctx, EvacuationRequest{Sites: []SiteRequest{{Site: "a", Deadline: time.Hour}}, By: "test"})
	if err != nil {
		t.Fatal(err)
	}
	c := <-calls
	if c.op != op.ID || len(c.sites) != 1 || c.sites[0] != "a" || c.running {
		t.Errorf("Prepare(%s, %v), executor running %v; want (%s, [a]) before the executor", c.op, c.sites, c.running, op.ID)
	}
	op2, err := ctl.Evacuate(ctx, EvacuationRequest{Sites: []SiteRequest{{Site: "c", Deadline: time.Hour}}, By: "test"})
	if err != nil {
		t.Fatalf("an evacuation whose Prepare outlasts PrepareWait: %v", err)
	}
	if ctl.run(op2.ID) == nil {
		t.Errorf("%s did not start while its Prepare was still running", op2.ID)
	}
	close(release)
	for _, id := range []string{op.ID, op2.ID} {
		if _, err := ctl.Control(ctx, id, ActCancel); err != nil {
			t.Errorf("cancel %s: %v", id, err)
		}
	}
}
