package planner

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/precopy"
)

// twoSites is site a (to evacuate, one big host a1) linked to site b.
func twoSites(bHosts ...model.Host) *fedBuilder {
	return newFed().site("a", host("a1", memGiB(1024), diskGiB(4000))).site("b", bHosts...).link("a", "b", 10000)
}

// refuge is refuge's policy with the migration parameters the tests'
// expectations rest on pinned: QEMU's 128 MiB/s cap, 300 ms downtime,
// auto-converge.
// refuge is refuge's policy with a 128 MiB/s cap per migration, live
// migrations only and the priority order, which the rule tests below are
// written for (the deadline order and pause-and-copy have their own tests).
func refuge() model.Policy {
	p := model.RefugePolicy()
	p.Order = model.OrderPriority
	p.Migration = model.MigrationPolicy{MaxBandwidthMiBps: 128, MaxDowntime: model.Duration(300 * time.Millisecond), AutoConverge: true}
	return p
}

func TestDeadlineOrder(t *testing.T) {
	// Two threatened sites share the link into b; c's deadline comes first,
	// so its VMs go first whatever their priority, the smallest first.
	b := newFed().site("a", host("a1")).site("c", host("c1")).site("b", host("b1", memGiB(512))).
		link("a", "b", 1000).link("c", "b", 1000)
	b.vm("a-important", "a1", 2, dirty(0), prio(1000))
	b.vm("c-big", "c1", 8, dirty(0), prio(10))
	b.vm("c-small", "c1", 2, dirty(0), prio(10))
	ix := b.index(t)
	pol := refuge()
	pol.Order = model.OrderDeadline
	dl := map[int]time.Duration{ix.SiteByName["a"]: time.Hour, ix.SiteByName["c"]: 30 * time.Minute}
	p := compute(t, Input{Index: ix, Policy: pol, Deadlines: dl})
	if got, want := moved(p), []string{"c-small", "c-big", "a-important"}; !reflect.DeepEqual(got, want) &&
		!reflect.DeepEqual(got, []string{"c-big", "c-small", "a-important"}) {
		t.Fatalf("moved %v, want c's VMs before a's", got)
	}
}

func TestPausedCopyUnderPressure(t *testing.T) {
	// A dirty guest on a narrow link: pre-copy re-sends a lot. When the site
	// cannot send everything live before its deadline, a policy that
	// allows pause-and-copy plans more VMs, paused.
	b := newFed().site("a", host("a1")).site("b", host("b1", memGiB(512))).link("a", "b", 1000)
	for _, n := range []string{"v1", "v2", "v3", "v4", "v5", "v6"} {
		b.vm(n, "a1", 4, dirty(60))
	}
	ix := b.index(t)
	dl := threaten(t, ix, 3*time.Minute, "a")
	live := refuge()
	live.Migration.MaxBandwidthMiBps = 0
	paused := live
	paused.Migration.PauseAndCopy = true
	pl := compute(t, Input{Index: ix, Policy: live, Deadlines: dl})
	pp := compute(t, Input{Index: ix, Policy: paused, Deadlines: dl})
	if len(pp.Moves) <= len(pl.Moves) {
		t.Fatalf("pause-and-copy plans %d moves, live %d: want more", len(pp.Moves), len(pl.Moves))
	}
	for _, m := range pp.Moves {
		if m.Mode != ModePause && m.Mode != ModeLive {
			t.Errorf("%s: mode %q", m.Name, m.Mode)
		}
	}
	if pp.Moves[0].Mode != ModePause {
		t.Errorf("first move %+v, want paused under pressure", pp.Moves[0])
	}
}

func TestMemoryNeverOvercommitted(t *testing.T) {
	ix := twoSites(host("b1", memGiB(16))).
		vm("x", "a1", 12).vm("y", "a1", 12).vm("resident", "b1", 4).index(t)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a")})
	if got := moved(p); !reflect.DeepEqual(got, []string{"x"}) {
		t.Fatalf("moved %v, want [x] (4 + 12 GiB fill b1's 16 GiB)", got)
	}
	if c := unsavedCode(p, "y"); c != CodeNoCapacity {
		t.Errorf("y: code %q, want %q", c, CodeNoCapacity)
	}
	if p.AtRisk != 2 || len(p.Unsaved) != 1 || !strings.Contains(p.Unsaved[0].Reason, "memory") {
		t.Errorf("at risk %d, unsaved %+v", p.AtRisk, p.Unsaved)
	}
}

func TestVCPUOvercommit(t *testing.T) {
	ix := twoSites(host("b1", vcpus(4))).
		vm("x", "a1", 1, vmCPU(3)).vm("y", "a1", 1, vmCPU(3)).vm("z", "a1", 1, vmCPU(3)).index(t)
	pol := refuge()
	pol.VCPUOvercommit = 2 // 8 vCPU on b1
	p := compute(t, Input{Index: ix, Policy: pol, Deadlines: threaten(t, ix, time.Hour, "a")})
	if len(p.Moves) != 2 || unsavedCode(p, "z") != CodeNoCapacity || !strings.Contains(p.Unsaved[0].Reason, "vCPU") {
		t.Errorf("overcommit 2: moved %v, unsaved %+v; want two moves and z unsaved for vCPU", moved(p), p.Unsaved)
	}
	pol.VCPUOvercommit = 0 // means 1
	p = compute(t, Input{Index: ix, Policy: pol, Deadlines: threaten(t, ix, time.Hour, "a")})
	if len(p.Moves) != 1 {
		t.Errorf("overcommit 0 (= 1): moved %v, want one VM", moved(p))
	}
}

func TestLocalDiskNeedsHostDisk(t *testing.T) {
	ix := twoSites(host("b1", diskGiB(100))).
		vm("l1", "a1", 1, localDisk(80)).vm("l2", "a1", 1, localDisk(80)).
		vm("shared", "a1", 1, func(v *model.VM) { v.DiskGiB = 500 }).index(t)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, 2*time.Hour, "a")})
	if moveOf(p, "l1") == nil || moveOf(p, "shared") == nil || unsavedCode(p, "l2") != CodeNoCapacity {
		t.Fatalf("moved %v, unsaved %+v; want l1 and shared moved, l2 without disk", moved(p), p.Unsaved)
	}
	if !strings.Contains(p.Unsaved[0].Reason, "disk") {
		t.Errorf("reason %q does not name the disk", p.Unsaved[0].Reason)
	}
	// The local VM copies its disk: 80 GiB more than the shared one.
	if l, s := moveOf(p, "l1").Bytes, moveOf(p, "shared").Bytes; l-s < 79*model.GiB {
		t.Errorf("local VM sends %s, shared %s; the disk is missing", bytesStr(l), bytesStr(s))
	}
}

func TestAntiAffinity(t *testing.T) {
	ix := twoSites(host("b1"), host("b2")).
		vm("g0", "b1", 1, aa("g")).
		vm("g1", "a1", 1, aa("g")).vm("g2", "a1", 1, aa("g")).vm("other", "a1", 1).index(t)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a")})
	if m := moveOf(p, "g1"); m == nil || m.ToHost != "b2" {
		t.Fatalf("g1: %+v, want a move to b2 (b1 holds g0)", m)
	}
	if c := unsavedCode(p, "g2"); c != CodeNoCapacity {
		t.Fatalf("g2: code %q, want %q", c, CodeNoCapacity)
	}
	if !strings.Contains(p.Unsaved[0].Reason, `anti-affinity group "g"`) {
		t.Errorf("reason %q does not name the group", p.Unsaved[0].Reason)
	}
	if moveOf(p, "other") == nil {
		t.Error("a VM without a group was not moved")
	}
}

// chain is web → app → db with the given priorities, plus a standalone VM.
func chain(t *testing.T, webPrio, appPrio, dbPrio, alonePrio int) *model.Index {
	return twoSites(host("b1")).
		service("db").service("app", "db").service("web", "app").
		vm("w", "a1", 2, svc("web"), prio(webPrio)).
		vm("alone", "a1", 2, prio(alonePrio)).
		vm("p", "a1", 2, svc("app"), prio(appPrio)).
		vm("d", "a1", 2, svc("db"), prio(dbPrio)).index(t)
}

func TestDependenciesFirst(t *testing.T) {
	ix := chain(t, 500, 500, 500, 0)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a")})
	if got, want := moved(p), []string{"d", "p", "w", "alone"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v (db before app before web)", got, want)
	}
}

func TestPriorityInheritance(t *testing.T) {
	ix := chain(t, 900, 100, 50, 500)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a")})
	if got, want := moved(p), []string{"d", "p", "w", "alone"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v: db and app inherit web's 900", got, want)
	}
	d := moveOf(p, "d")
	if d.Priority != 900 || !strings.Contains(d.Reason, "priority 900 (inherited from w)") {
		t.Errorf("d: priority %d, reason %q", d.Priority, d.Reason)
	}
	if a := moveOf(p, "alone"); a.Priority != 500 || strings.Contains(a.Reason, "inherited") {
		t.Errorf("alone: priority %d, reason %q", a.Priority, a.Reason)
	}
}

func TestFIFOKeepsInventoryOrder(t *testing.T) {
	ix := chain(t, 900, 100, 50, 500)
	pol := model.SequentialPolicy()
	pol.Migration = refuge().Migration
	p := compute(t, Input{Index: ix, Policy: pol, Deadlines: threaten(t, ix, time.Hour, "a")})
	if got, want := moved(p), []string{"w", "alone", "p", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want inventory order %v", got, want)
	}
	if r := p.Moves[1].Reason; !strings.HasPrefix(r, "queue position 2 (inventory order)") {
		t.Errorf("reason %q", r)
	}
}

// bigAndSmall is one important 32 GiB VM and four 2 GiB ones behind a
// 1 Gbit/s link (about 118 MB/s of goodput).
func bigAndSmall(t *testing.T) *model.Index {
	b := newFed().site("a", host("a1")).site("b", host("b1")).link("a", "b", 1000).
		vm("big", "a1", 32, prio(900))
	for _, n := range []string{"s1", "s2", "s3", "s4"} {
		b.vm(n, "a1", 2, prio(100))
	}
	return b.index(t)
}

func TestDeadlineAwareSkipLetsSmallerVMsThrough(t *testing.T) {
	ix := bigAndSmall(t)
	// 180 s − 30 s margin: the big VM needs about 300 s, the small ones
	// about 80 s together.
	dl := threaten(t, ix, 180*time.Second, "a")
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl})
	if got, want := moved(p), []string{"s1", "s2", "s3", "s4"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("moved %v, want %v", got, want)
	}
	if unsavedCode(p, "big") != CodeDeadline {
		t.Fatalf("big: %+v, want code deadline", p.Unsaved)
	}
	if r := p.Unsaved[0].Reason; !strings.Contains(r, "predicted to finish at") || !strings.Contains(r, "link:a-b(a→b)") {
		t.Errorf("reason %q should give the predicted finish and name the bottleneck", r)
	}
	for _, m := range p.Moves {
		if m.PredFinish > 150*time.Second {
			t.Errorf("%s predicted to finish at %v, after deadline − margin", m.Name, m.PredFinish)
		}
	}
	if len(p.Moves) > p.UpperBound {
		t.Errorf("%d moves > upper bound %d", len(p.Moves), p.UpperBound)
	}

	// A baseline plans everything, late or not, and says so.
	pol := refuge()
	pol.DeadlineAware = false
	p = compute(t, Input{Index: ix, Policy: pol, Deadlines: dl})
	if got, want := moved(p), []string{"big", "s1", "s2", "s3", "s4"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("not deadline-aware: moved %v, want %v", got, want)
	}
	if !strings.Contains(p.Moves[0].Reason, "predicted late") {
		t.Errorf("reason %q does not say the move is late", p.Moves[0].Reason)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "5 of 5 moves are predicted to finish after") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestNoSafeSite(t *testing.T) {
	ix := twoSites(host("b1")).vm("x", "a1", 1).vm("y", "b1", 1).index(t)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a", "b")})
	if len(p.Moves) != 0 || p.AtRisk != 2 || len(p.Unsaved) != 2 || p.UpperBound != 0 {
		t.Fatalf("plan %+v", p)
	}
	for _, u := range p.Unsaved {
		if u.Code != CodeNoSafeSite || u.Reason == "" {
			t.Errorf("%+v, want code %s with a reason", u, CodeNoSafeSite)
		}
	}
	// Down hosts do not make a site safe.
	ix = twoSites(host("b1")).vm("x", "a1", 1).index(t)
	p = compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a"), HostDown: []bool{false, true}})
	if unsavedCode(p, "x") != CodeNoSafeSite {
		t.Errorf("only safe host down: %+v", p.Unsaved)
	}
}

func TestNoRoute(t *testing.T) {
	ix := newFed().site("a", host("a1")).site("b", host("b1")).vm("x", "a1", 1).index(t)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a")})
	if unsavedCode(p, "x") != CodeNoRoute || !strings.Contains(p.Unsaved[0].Reason, "no network route") {
		t.Errorf("unsaved %+v", p.Unsaved)
	}
}

func TestCutLink(t *testing.T) {
	ix := newFed().site("a", host("a1")).site("b", host("b1")).site("c", host("c1")).
		link("a", "b", 10000).link("a", "c", 1000).
		vm("x", "a1", 1).vm("y", "a1", 1).index(t)
	dl := threaten(t, ix, time.Hour, "a")
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl})
	for _, m := range p.Moves {
		if m.ToSite != "b" {
			t.Errorf("%s goes to %s; b has the wider link", m.Name, m.ToSite)
		}
	}
	p = compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl, LinkMbps: []float64{0, 1000}})
	for _, m := range p.Moves {
		if m.ToSite != "c" {
			t.Errorf("a-b cut: %s goes to %s", m.Name, m.ToSite)
		}
	}
	if len(p.Moves) != 2 {
		t.Errorf("a-b cut: moved %v", moved(p))
	}
	p = compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl, LinkMbps: []float64{0, 0}})
	if len(p.Moves) != 0 || unsavedCode(p, "x") != CodeNoRoute {
		t.Fatalf("both cut: moved %v, unsaved %+v", moved(p), p.Unsaved)
	}
	if r := p.Unsaved[0].Reason; !strings.Contains(r, "a-b") || !strings.Contains(r, "a-c") {
		t.Errorf("reason %q does not name the cut links", r)
	}
}

func TestFrozenAndReserved(t *testing.T) {
	ix := twoSites(host("b1", memGiB(16))).vm("x", "a1", 12).vm("y", "a1", 8).vm("z", "a1", 4).index(t)
	dl := threaten(t, ix, time.Hour, "a")
	// x is migrating to b1: it is frozen and its memory is reserved there.
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl,
		Frozen: []bool{true, false, false}, Reserved: []Reservation{{VM: 0, Host: 1}}})
	if p.AtRisk != 2 || moveOf(p, "x") != nil || unsavedCode(p, "x") != "" {
		t.Fatalf("frozen x appears in the plan: %+v", p)
	}
	if moveOf(p, "z") == nil || unsavedCode(p, "y") != CodeNoCapacity {
		t.Errorf("moved %v, unsaved %+v; want z moved (4 GiB left) and y without room", moved(p), p.Unsaved)
	}
}

func TestHostDown(t *testing.T) {
	ix := twoSites(host("b1", memGiB(512)), host("b2")).vm("x", "a1", 1).vm("y", "a1", 1).index(t)
	dl := threaten(t, ix, time.Hour, "a")
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl, HostDown: []bool{false, true, false}})
	for _, m := range p.Moves {
		if m.ToHost != "b2" {
			t.Errorf("%s goes to %s, which is down", m.Name, m.ToHost)
		}
	}
	p = compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl, HostDown: []bool{true, false, false}})
	if len(p.Moves) != 0 || unsavedCode(p, "x") != CodeSourceDown || !strings.Contains(p.Unsaved[0].Reason, "a1") {
		t.Errorf("source down: moved %v, unsaved %+v", moved(p), p.Unsaved)
	}
}

func TestSpreadsOverLinksAndHosts(t *testing.T) {
	b := newFed().site("a", host("a1"), host("a2")).site("b", host("b1"), host("b2")).site("c", host("c1"), host("c2")).
		link("a", "b", 1000).link("a", "c", 1000)
	for _, n := range []string{"v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8"} {
		b.vm(n, "a1", 2)
	}
	ix := b.index(t)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a")})
	perSite, perHost := map[string]int{}, map[string]int{}
	for _, m := range p.Moves {
		perSite[m.ToSite]++
		perHost[m.ToHost]++
	}
	if perSite["b"] != 4 || perSite["c"] != 4 {
		t.Errorf("moves per site %v, want 4 and 4", perSite)
	}
	if len(perHost) != 4 {
		t.Errorf("moves per host %v, want all four hosts used", perHost)
	}
}

func TestNotConverging(t *testing.T) {
	ix := twoSites(host("b1")).vm("hot", "a1", 8, dirty(200)).vm("calm", "a1", 8).index(t)
	pol := refuge()
	pol.Migration.AutoConverge = false // 200 MiB/s > the 128 MiB/s cap
	p := compute(t, Input{Index: ix, Policy: pol, Deadlines: threaten(t, ix, time.Hour, "a")})
	if unsavedCode(p, "hot") != CodeNotConverge || moveOf(p, "calm") == nil {
		t.Fatalf("moved %v, unsaved %+v", moved(p), p.Unsaved)
	}
	if r := p.Unsaved[0].Reason; !strings.Contains(r, "200 MiB/s") || !strings.Contains(r, "auto-converge off") {
		t.Errorf("reason %q", r)
	}
	// With auto-converge but a link so thin that even full throttle leaves
	// the guest dirtying faster than it sends, pre-copy never converges:
	// the planner must say so rather than loop.
	ix = newFed().site("a", host("a1")).site("b", host("b1")).link("a", "b", 10).
		vm("hot", "a1", 8, dirty(200)).index(t)
	done := make(chan *Plan, 1)
	go func() {
		p, err := Compute(Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, 100*time.Hour, "a")})
		if err != nil {
			t.Error(err)
		}
		done <- p
	}()
	select {
	case p := <-done:
		if p != nil && unsavedCode(p, "hot") != CodeNotConverge {
			t.Errorf("thin link: unsaved %+v", p.Unsaved)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Compute did not return: a non-converging estimate loops")
	}
}

func TestBusyDelaysFinish(t *testing.T) {
	ix := newFed().site("a", host("a1")).site("b", host("b1")).link("a", "b", 1000).vm("x", "a1", 2).index(t)
	dl := threaten(t, ix, time.Hour, "a")
	idle := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl})
	busy := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl, Now: 10 * time.Second,
		Busy: map[netpath.Resource]time.Duration{{Kind: netpath.Link, ID: 0, Dir: 0}: 100 * time.Second}})
	m0, m1 := idle.Moves[0], busy.Moves[0]
	// The move waits for the link: it finishes 100 s after Now plus its
	// own transfer time, and starts no earlier than Now.
	want := 10*time.Second + 100*time.Second + time.Duration(m0.Bytes/netpath.Capacity(ix, netpath.Resource{Kind: netpath.Link}, nil)*1e9)
	if d := m1.PredFinish - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("busy link: finish %v, want %v", m1.PredFinish, want)
	}
	if m1.Bottleneck != "link:a-b(a→b)" || m1.PredStart < 10*time.Second || m1.PredStart > m1.PredFinish {
		t.Errorf("busy link: %+v", m1)
	}
	if busy.Makespan != m1.PredFinish-10*time.Second || busy.LowerBound > busy.Makespan {
		t.Errorf("makespan %v, lower bound %v, finish %v", busy.Makespan, busy.LowerBound, m1.PredFinish)
	}
}

func TestBounds(t *testing.T) {
	b := newFed().site("a", host("a1")).site("b", host("b1"), host("b2")).link("a", "b", 1000)
	for _, n := range []string{"v1", "v2", "v3", "v4"} {
		b.vm(n, "a1", 2, dirty(0))
	}
	ix := b.index(t)
	link := netpath.Capacity(ix, netpath.Resource{Kind: netpath.Link}, nil)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a")})
	if len(p.Moves) != 4 || p.UpperBound != 4 {
		t.Fatalf("moved %v, upper bound %d", moved(p), p.UpperBound)
	}
	want := time.Duration(4 * 2 * model.GiB / link * 1e9)
	if d := p.LowerBound - want; d < -time.Millisecond || d > time.Millisecond || p.Bottleneck != "link:a-b(a→b)" {
		t.Errorf("lower bound %v (%s), want %v (link:a-b(a→b))", p.LowerBound, p.Bottleneck, want)
	}
	// The link is saturated in plan order: the last move ends when it drains.
	if p.Makespan < p.LowerBound || p.Makespan-p.LowerBound > time.Millisecond {
		t.Errorf("makespan %v, lower bound %v", p.Makespan, p.LowerBound)
	}
	// The link and the site's egress (its only link) tie for the top.
	if r := p.Resources[1]; r.Name != "link:a-b(a→b)" || r.Bytes != 4*2*model.GiB || p.Resources[0].Name != "egress:a" {
		t.Errorf("resources %+v", p.Resources)
	}
	// 45 s before the deadline: the link carries two VMs, not three (the
	// bound ignores the safety margin; the moves within it come last).
	p = compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, 45*time.Second, "a")})
	if p.UpperBound != 2 || len(p.Moves) > p.UpperBound {
		t.Errorf("tight deadline: upper bound %d, moves %v", p.UpperBound, moved(p))
	}
}

func TestServiceWithoutDependencyWarns(t *testing.T) {
	ix := twoSites(host("b1", diskGiB(4000))).service("db").service("web", "db").
		vm("w", "a1", 1, svc("web"), prio(100)).
		vm("d", "a1", 64, svc("db"), prio(0), localDisk(2000)).index(t)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, 10*time.Minute, "a")})
	if moveOf(p, "w") == nil || unsavedCode(p, "d") != CodeDeadline {
		t.Fatalf("moved %v, unsaved %+v", moved(p), p.Unsaved)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "service web is evacuated but its dependency db is not: 1 of its 1 at-risk VMs stay behind (d)") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestMalformedInput(t *testing.T) {
	ix := twoSites(host("b1")).vm("x", "a1", 1).index(t)
	dl := threaten(t, ix, time.Hour, "a")
	cases := map[string]Input{
		"no index":           {Policy: refuge()},
		"placement length":   {Index: ix, Policy: refuge(), Deadlines: dl, Placement: []int{0, 1}},
		"placement range":    {Index: ix, Policy: refuge(), Deadlines: dl, Placement: []int{7}},
		"host_down length":   {Index: ix, Policy: refuge(), Deadlines: dl, HostDown: []bool{true}},
		"link_mbps length":   {Index: ix, Policy: refuge(), Deadlines: dl, LinkMbps: []float64{1, 2}},
		"link_mbps negative": {Index: ix, Policy: refuge(), Deadlines: dl, LinkMbps: []float64{-1}},
		"link_mbps NaN":      {Index: ix, Policy: refuge(), Deadlines: dl, LinkMbps: []float64{math.NaN()}},
		"frozen length":      {Index: ix, Policy: refuge(), Deadlines: dl, Frozen: []bool{true, true}},
		"reserved":           {Index: ix, Policy: refuge(), Deadlines: dl, Reserved: []Reservation{{VM: 0, Host: 9}}},
		"deadline site":      {Index: ix, Policy: refuge(), Deadlines: map[int]time.Duration{5: time.Hour}},
		"busy resource":      {Index: ix, Policy: refuge(), Deadlines: dl, Busy: map[netpath.Resource]time.Duration{{Kind: netpath.Link, ID: 3}: time.Second}},
		"busy negative":      {Index: ix, Policy: refuge(), Deadlines: dl, Busy: map[netpath.Resource]time.Duration{{Kind: netpath.HostIn, ID: 1}: -time.Second}},
		"order":              {Index: ix, Policy: model.Policy{Name: "odd", Order: "random"}, Deadlines: dl},
		"overcommit":         {Index: ix, Policy: model.Policy{Name: "odd", VCPUOvercommit: -1}, Deadlines: dl},
		"margin":             {Index: ix, Policy: model.Policy{Name: "odd", SafetyMargin: -1}, Deadlines: dl},
	}
	for name, in := range cases {
		if p, err := Compute(in); err == nil || p != nil {
			t.Errorf("%s: Compute returned %v, %v; want an error", name, p, err)
		} else if !strings.HasPrefix(err.Error(), "plan: ") {
			t.Errorf("%s: error %q lacks context", name, err)
		}
	}
	// Zero-value policy fields are usable.
	if _, err := Compute(Input{Index: ix, Deadlines: dl}); err != nil {
		t.Errorf("zero policy: %v", err)
	}
}

func TestServiceCycleIsAnError(t *testing.T) {
	ix := twoSites(host("b1")).vm("x", "a1", 1).index(t)
	ix.Fed.Services = []model.Service{{Name: "s1", DependsOn: []string{"s2"}}, {Name: "s2", DependsOn: []string{"s1"}}}
	ix.ServiceByName = map[string]int{"s1": 0, "s2": 1}
	if _, err := Compute(Input{Index: ix, Policy: refuge()}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("error %v, want a dependency cycle", err)
	}
}

func TestDeadlinesFrom(t *testing.T) {
	ix := twoSites(host("b1")).index(t)
	dl, err := DeadlinesFrom(ix, []model.Threat{{Site: "b", Deadline: model.Duration(time.Minute)}})
	if err != nil || !reflect.DeepEqual(dl, map[int]time.Duration{1: time.Minute}) {
		t.Errorf("got %v, %v", dl, err)
	}
	if _, err := DeadlinesFrom(ix, []model.Threat{{Site: "nowhere"}}); err == nil {
		t.Error("unknown site accepted")
	}
	if _, err := DeadlinesFrom(ix, []model.Threat{{Site: "a"}, {Site: "a"}}); err == nil {
		t.Error("duplicate site accepted")
	}
}

func TestCostMatchesPlan(t *testing.T) {
	ix := bigAndSmall(t)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a")})
	m := p.Moves[0]
	c, ok := Cost(ix, refuge(), m.VM, m.From, m.To, nil)
	if !ok || c.Bytes != m.Bytes || c.Solo != m.Solo || len(c.Path.Links) != 1 {
		t.Errorf("Cost = %+v, %v; move %+v", c, ok, m)
	}
	if _, ok := Cost(ix, refuge(), 99, 0, 1, nil); ok {
		t.Error("Cost accepted an unknown VM")
	}
	if _, ok := Cost(ix, refuge(), 0, 0, 1, []float64{0}); ok {
		t.Error("Cost accepted a cut link")
	}
}

// The planner estimates each VM once per rate over a zero-RTT path and adds
// the handshake's RTT cost; this must agree with precopy.Solo on the real
// RTT.
func TestSoloIsAffineInRTT(t *testing.T) {
	g := precopy.Guest{MemoryBytes: 8 * model.GiB, DiskBytes: 20 * model.GiB, DirtyRate: 50 * model.MiB, WorkingSet: 2 * model.GiB}
	cfg := precopy.Config{MaxDowntime: 300 * time.Millisecond, AutoConverge: true}
	for _, rtt := range []time.Duration{0, 200 * time.Microsecond, 14 * time.Millisecond, 80 * time.Millisecond} {
		e := soloAt(g, cfg, 100e6)
		s := precopy.Solo(g, cfg, 100e6, rtt)
		if d := dur(e.solo+setupOver(rtt)) - s.Total; d < -time.Microsecond || d > time.Microsecond || e.bytes != s.Bytes {
			t.Errorf("rtt %v: planner %v / %g B, precopy %v / %g B", rtt, dur(e.solo+setupOver(rtt)), e.bytes, s.Total, s.Bytes)
		}
	}
}

func TestExplain(t *testing.T) {
	ix := bigAndSmall(t)
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, 180*time.Second, "a")})
	var b strings.Builder
	if err := Explain(&b, ix, p); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`Plan "refuge": 5 VMs at risk, 4 planned, 1 unsaved (deadline 1).`,
		"lower bound", "(bottleneck link:a-b(a→b))", "upper bound",
		"s1: a1 → b1 (a → b via a-b)", "big on a (priority 900) [deadline]: predicted to finish at",
		"Busiest resources:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q:\n%s", want, out)
		}
	}
	if err := Explain(failWriter{}, ix, p); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("write error not reported: %v", err)
	}
	if err := Explain(&b, ix, nil); err == nil {
		t.Error("nil plan accepted")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestEmptySlicesMeanNil(t *testing.T) {
	ix := twoSites(host("b1")).vm("x", "a1", 1).index(t)
	dl := threaten(t, ix, time.Hour, "a")
	want := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl})
	got := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl,
		Placement: []int{}, HostDown: []bool{}, LinkMbps: []float64{}, Frozen: []bool{}, Reserved: []Reservation{}})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("empty slices: %+v, want %+v", got, want)
	}
	// A VM that is lost (placement -1) is not at risk.
	if p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl, Placement: []int{-1}}); p.AtRisk != 0 || len(p.Unsaved) != 0 {
		t.Errorf("lost VM: %+v", p)
	}
}

func TestUpperBoundCountsRoutedEgressOnly(t *testing.T) {
	// a's fat link leads to c, which is threatened too: a's VMs can leave
	// only over the 1 Gbit/s link to b.
	b := newFed().site("a", host("a1")).site("b", host("b1")).site("c", host("c1")).
		link("a", "b", 1000).link("a", "c", 100000)
	for _, n := range []string{"v1", "v2", "v3", "v4"} {
		b.vm(n, "a1", 2, dirty(0))
	}
	ix := b.index(t)
	dl := threaten(t, ix, 45*time.Second, "a", "c")
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl})
	if p.UpperBound != 2 || len(p.Moves) != 2 {
		t.Errorf("upper bound %d, moves %v; want 2 and 2", p.UpperBound, moved(p))
	}
	link := netpath.Capacity(ix, netpath.Resource{Kind: netpath.Link}, nil)
	for _, r := range p.Resources {
		if r.Name == "egress:a" && r.CapacityBps != link {
			t.Errorf("egress:a capacity %g, want the a-b link's %g", r.CapacityBps, link)
		}
	}
}

func TestWatchSites(t *testing.T) {
	// b is at watch level, c is safe; both have room. avoid sends x to c;
	// when c is full, to b; exclude never to b; allow treats b like c.
	build := func(cMem int64) *model.Index {
		return newFed().site("a", host("a1")).site("b", host("b1", memGiB(64))).site("c", host("c1", memGiB(cMem))).
			link("a", "b", 10000).link("a", "c", 1000).vm("x", "a1", 4, dirty(0)).index(t)
	}
	watchB := func(ix *model.Index) []bool {
		w := make([]bool, len(ix.Fed.Sites))
		w[ix.SiteByName["b"]] = true
		return w
	}
	for _, tc := range []struct {
		mode   string
		cMem   int64
		wantTo string // "" for unsaved
	}{
		{model.WatchAvoid, 64, "c"},
		{model.WatchAvoid, 2, "b"},
		{model.WatchExclude, 2, ""},
		{model.WatchAllow, 64, "b"}, // b's link is wider
	} {
		ix := build(tc.cMem)
		pol := refuge()
		pol.WatchSites = tc.mode
		p := compute(t, Input{Index: ix, Policy: pol, Deadlines: threaten(t, ix, time.Hour, "a"), Watch: watchB(ix)})
		got := ""
		if len(p.Moves) == 1 {
			got = p.Moves[0].ToSite
		}
		if got != tc.wantTo {
			t.Errorf("watch_sites %s, c with %d GiB: x to %q, want %q (unsaved %+v)", tc.mode, tc.cMem, got, tc.wantTo, p.Unsaved)
		}
	}
}

func TestRoutesAroundCutLinkAndLateTransit(t *testing.T) {
	// a—b direct is cut and c has no room; the move goes a→c→b. With c
	// threatened and lost
	// before the move could end, no route is left.
	ix := newFed().site("a", host("a1")).site("b", host("b1", memGiB(64))).site("c", host("c1", memGiB(1))).
		link("a", "b", 1000).link("a", "c", 10000).link("c", "b", 10000).vm("x", "a1", 4, dirty(0)).index(t)
	cut := []float64{0, 10000, 10000}
	p := compute(t, Input{Index: ix, Policy: refuge(), Deadlines: threaten(t, ix, time.Hour, "a"), LinkMbps: cut})
	if len(p.Moves) != 1 || len(p.Moves[0].Route) != 2 || p.Moves[0].ToSite != "b" {
		t.Fatalf("a-b cut: moves %+v, want x to b over a-c and c-b", p.Moves)
	}
	dl := threaten(t, ix, time.Hour, "a")
	dl[ix.SiteByName["c"]] = 20 * time.Second // c is lost long before x's move through it ends
	p = compute(t, Input{Index: ix, Policy: refuge(), Deadlines: dl, LinkMbps: cut})
	for _, m := range p.Moves {
		if m.Name == "x" {
			t.Fatalf("x planned through c, which is lost at 20 s: %+v", m)
		}
	}
	// The reason names what makes it late: c, not its own deadline.
	if len(p.Unsaved) != 1 || p.Unsaved[0].Code != CodeDeadline ||
		!strings.Contains(p.Unsaved[0].Reason, "after c, the site its way out crosses, is lost (deadline 20s") {
		t.Errorf("x unsaved %+v; want the deadline code and c's loss as the reason", p.Unsaved)
	}
}

func TestCountLimitsInPredictions(t *testing.T) {
	// Three clean VMs on a 10 Gbit/s link: alone each takes its solo time.
	// With one migration at a time (the sequential baseline's global
	// limit), the third is predicted to end after the three solo times,
	// as the executor runs them, not when the fat link would have carried
	// the bytes.
	b := newFed().site("a", host("a1")).site("b", host("b1", memGiB(512))).link("a", "b", 10000)
	for _, n := range []string{"v1", "v2", "v3"} {
		b.vm(n, "a1", 4, dirty(0))
	}
	ix := b.index(t)
	dl := threaten(t, ix, time.Hour, "a")
	free := refuge()
	one := free
	one.Concurrency = model.ConcurrencyPolicy{Global: 1}
	pf := compute(t, Input{Index: ix, Policy: free, Deadlines: dl})
	p1 := compute(t, Input{Index: ix, Policy: one, Deadlines: dl})
	checkOneAtATime(t, p1, "concurrency.global")
	if pf.Makespan >= p1.Makespan {
		t.Errorf("without the limit the makespan %v is not shorter than with it %v", pf.Makespan, p1.Makespan)
	}
}

// checkOneAtATime: under a count limit of one that every move of p shares,
// the last move is predicted to end after all the moves' solo times, and
// the limit (its policy field) is named as its bottleneck.
func checkOneAtATime(t *testing.T, p *Plan, limit string) {
	t.Helper()
	var solos time.Duration
	for _, m := range p.Moves {
		solos += m.Solo
	}
	last := p.Moves[len(p.Moves)-1]
	if d := last.PredFinish - solos; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("one at a time: last predicted to end at %v, want the sum of solo times %v", last.PredFinish, solos)
	}
	if want := "count limit " + limit; last.Bottleneck != want {
		t.Errorf("bottleneck %q, want %q", last.Bottleneck, want)
	}
}

func TestDestinationAndLinkCountLimitsInPredictions(t *testing.T) {
	// Four clean VMs from two hosts to one safe host over a fat link. With
	// one migration at a time into a host (per_host_in 1), or over a link
	// direction (per_link 1), the last is predicted to end after the four
	// solo times, as the executor runs them; with two safe hosts and
	// per_host_in 1, the moves spread over both.
	for _, c := range []struct {
		name  string
		cc    model.ConcurrencyPolicy
		limit string
	}{
		{"per_host_in", model.ConcurrencyPolicy{PerHostIn: 1}, "concurrency.per_host_in"},
		{"per_link", model.ConcurrencyPolicy{PerLinkLimit: 1}, "concurrency.per_link"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newFed().site("a", host("a1"), host("a2")).site("b", host("b1", memGiB(512))).link("a", "b", 40000)
			for i, n := range []string{"v1", "v2", "v3", "v4"} {
				b.vm(n, []string{"a1", "a2"}[i%2], 4, dirty(0))
			}
			ix := b.index(t)
			dl := threaten(t, ix, time.Hour, "a")
			pol := refuge()
			pol.Concurrency = c.cc
			p := compute(t, Input{Index: ix, Policy: pol, Deadlines: dl})
			if len(p.Moves) != 4 {
				t.Fatalf("%d moves, want 4", len(p.Moves))
			}
			checkOneAtATime(t, p, c.limit)
		})
	}
	t.Run("spread", func(t *testing.T) {
		b := newFed().site("a", host("a1"), host("a2")).site("b", host("b1", memGiB(512)), host("b2", memGiB(256))).link("a", "b", 40000)
		for i, n := range []string{"v1", "v2", "v3", "v4"} {
			b.vm(n, []string{"a1", "a2"}[i%2], 4, dirty(0))
		}
		ix := b.index(t)
		pol := refuge()
		pol.Concurrency = model.ConcurrencyPolicy{PerHostIn: 1}
		p := compute(t, Input{Index: ix, Policy: pol, Deadlines: threaten(t, ix, time.Hour, "a")})
		to := map[string]int{}
		for _, m := range p.Moves {
			to[m.ToHost]++
		}
		if to["b1"] != 2 || to["b2"] != 2 {
			t.Errorf("moves per destination %v, want two each (one at a time into a host)", to)
		}
	})
}
