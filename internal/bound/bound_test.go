package bound

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/precopy"
)

// Capacities used in the hand computations: TCP goodput of a line rate is
// 1448/1538 of it (precopy.Goodput), so 1 Gbit/s carries 117.685 MB/s and
// 10 Gbit/s 1176.85 MB/s. A 4 GiB VM takes 36.495 s at 1 Gbit/s and
// 3.6496 s at 10 Gbit/s. Links have an RTT of 0, so every path's RTT is
// the LAN's 0.2 ms and the set-up is 3.7 s + 6 × 0.2 ms = 3.7012 s.
const (
	gbit    = 125e6 * 1448 / 1538 // bytes/s
	vmBytes = 4 << 30
	setupS  = 3.7012
	vmS     = vmBytes / gbit // 36.495 s
)

// fed builds small federations for the hand-computed cases.
type fed struct {
	f     model.Federation
	hosts map[string]int // host name → site index
}

func newFed(t *testing.T) *fed {
	t.Helper()
	return &fed{f: model.Federation{Name: t.Name()}, hosts: map[string]int{}}
}

// site adds a site with one fabric of hosts "<site>-<i>" with the given NIC
// speeds (Mbit/s), each with memGiB of memory.
func (b *fed) site(name string, memGiB int64, nics ...float64) {
	s := model.Site{Name: name, Fabrics: []model.Fabric{{Name: name + "-f"}}}
	for i, nic := range nics {
		h := model.Host{Name: fmt.Sprintf("%s-%d", name, i), VCPU: 256, MemoryMiB: memGiB * 1024, DiskGiB: 100000, NICMbps: nic}
		s.Fabrics[0].Hosts = append(s.Fabrics[0].Hosts, h)
	}
	b.f.Sites = append(b.f.Sites, s)
}

func (b *fed) link(a, c string, mbps float64) {
	b.f.Links = append(b.f.Links, model.Link{Name: a + "-" + c, A: a, B: c, BandwidthMbps: mbps, Mode: model.LinkDedicated})
}

// vms adds n VMs of memGiB (shared storage, no dirtying) on host.
func (b *fed) vms(host string, n int, memGiB int64, priority int) {
	for range n {
		b.f.VMs = append(b.f.VMs, model.VM{Name: fmt.Sprintf("vm-%03d", len(b.f.VMs)), Host: host, VCPU: 1,
			MemoryMiB: memGiB * 1024, DiskGiB: 20, Priority: priority})
	}
}

// input indexes the federation with deadlines (seconds) by site name.
func (b *fed) input(t *testing.T, deadlines map[string]float64) Input {
	t.Helper()
	if err := b.f.Validate(); err != nil {
		t.Fatalf("test federation: %v", err)
	}
	ix := model.NewIndex(&b.f)
	in := Input{Index: ix, Deadlines: map[int]time.Duration{}}
	for s, d := range deadlines {
		in.Deadlines[ix.SiteByName[s]] = time.Duration(d * float64(time.Second))
	}
	return in
}

func saved(t *testing.T, in Input) Saved {
	t.Helper()
	s, err := SavedUpperBound(in)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func makespanOf(t *testing.T, in Input) Makespan {
	t.Helper()
	m, err := MakespanLowerBound(in)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func near(got time.Duration, wantS float64) bool {
	return math.Abs(got.Seconds()-wantS) < 0.01
}

// One 1 Gbit/s link between a threatened and a safe site.
func TestSingleLink(t *testing.T) {
	b := newFed(t)
	b.site("src", 512, 10000)
	b.site("dst", 1024, 10000)
	b.link("src", "dst", 1000)
	b.vms("src-0", 10, 4, 1)
	in := b.input(t, map[string]float64{"src": 300})
	s := saved(t, in)
	// Least time of each VM: 3.7012 + 36.495 + 0.08 = 40.28 s ≤ 300 s, so
	// all 10 are candidates; the link carries 117.685 MB/s × (300 − 3.7012) s
	// = 8.12 VMs of 4 GiB: 8.
	if s.Count != 8 || s.Binding != "per site (src: flow)" || s.Sites[0].Candidates != 10 {
		t.Errorf("saved = %d (%s), %d candidates; want 8 (per site (src: flow)), 10", s.Count, s.Binding, s.Sites[0].Candidates)
	}
	if s.Priority != 8 {
		t.Errorf("priority = %d, want 8", s.Priority)
	}
	st, _ := prepare(in)
	if v := st.vms[0]; !near(v.Time, setupS+vmS+0.08) || v.Mode != ModePauseAndCopy || v.Bytes != vmBytes {
		t.Errorf("least time %v (%s), %g bytes; want 40.28 s by pause-and-copy, 4 GiB", v.Time, v.Mode, v.Bytes)
	}
	// All ten: 3.7012 + 10 × 36.495 = 368.66 s over the link.
	m := makespanOf(t, in)
	if !near(m.Bound, setupS+10*vmS) || m.Binding != "flow:src" || m.VMs != 10 || !m.Fits {
		t.Errorf("makespan bound %v (%s) for %d VMs, fits %v; want 368.66 s (flow:src), 10, true", m.Bound, m.Binding, m.VMs, m.Fits)
	}
	// A deadline shorter than one VM's least time saves none.
	in.Deadlines[0] = 40 * time.Second
	if s := saved(t, in); s.Count != 0 || s.Sites[0].Candidates != 0 {
		t.Errorf("40 s deadline: saved %d, %d candidates; want 0, 0", s.Count, s.Sites[0].Candidates)
	}
}

// A 1 Gbit/s NIC binds its host's VMs, whatever the 10 Gbit/s link offers.
func TestNICBound(t *testing.T) {
	b := newFed(t)
	b.site("src", 512, 1000, 10000)
	b.site("dst", 1024, 25000)
	b.link("src", "dst", 10000)
	b.vms("src-0", 6, 4, 1)
	b.vms("src-1", 6, 4, 1)
	in := b.input(t, map[string]float64{"src": 200})
	s := saved(t, in)
	// src-0: 196.2988 s × 117.685 MB/s = 5.38 VMs → 5; src-1: 53.8 → all 6.
	// The link alone would allow 53.8 → all 12.
	if s.Count != 11 || s.Sites[0].Binding != "nic-out" {
		t.Errorf("saved = %d (%s), want 11 (nic-out)", s.Count, s.Sites[0].Binding)
	}
	// src-0's six VMs need 3.7012 + 6 × 36.495 = 222.68 s.
	m := makespanOf(t, in)
	if !near(m.Bound, setupS+6*vmS) || m.Binding != "nic-out:src-0" {
		t.Errorf("makespan bound %v (%s), want 222.68 s (nic-out:src-0)", m.Bound, m.Binding)
	}
}

// transitFed: site a (threatened, two 10 Gbit/s hosts, 20 VMs) reaches
// site b directly and through site x, each link 1 Gbit/s. x is threatened
// too (late, no VMs), so it is only a transit.
func transitFed(t *testing.T) Input {
	b := newFed(t)
	b.site("a", 512, 10000, 10000)
	b.site("b", 1024, 25000)
	b.site("x", 512, 10000)
	b.link("a", "b", 1000)
	b.link("a", "x", 1000)
	b.link("x", "b", 1000)
	b.vms("a-0", 10, 4, 1)
	b.vms("a-1", 10, 4, 1)
	return b.input(t, map[string]float64{"a": 300, "x": 3600})
}

// The maximum flow uses both routes: twice what the direct route gives.
func TestMultiHopTransit(t *testing.T) {
	in := transitFed(t)
	s := saved(t, in)
	// 2 × 117.685 MB/s × 296.2988 s = 16.2 VMs → 16 (one route: 8).
	if s.Count != 16 || s.Sites[0].Binding != "flow" {
		t.Errorf("saved = %d (%s), want 16 (flow)", s.Count, s.Sites[0].Binding)
	}
	// 3.7012 + 20 × 36.495 / 2 = 368.66 s.
	m := makespanOf(t, in)
	if !near(m.Bound, setupS+10*vmS) || m.Binding != "flow:a" {
		t.Errorf("makespan bound %v (%s), want 368.66 s (flow:a)", m.Bound, m.Binding)
	}
}

// A transit site lost first takes its route with it: with x lost at 100 s,
// the second route carries bytes only until then: 117.685 MB/s × (2 ×
// 96.2988 s until x is lost + 200 s after) = 10.8 VMs → 10 (16 if x
// stayed, 8 over the direct link alone).
func TestTransitSiteLostFirst(t *testing.T) {
	in := transitFed(t)
	in.Deadlines[in.Index.SiteByName["x"]] = 100 * time.Second
	s := saved(t, in)
	if got := s.Sites[0]; got.Site != "a" || got.Count != 10 || got.Binding != "flow" {
		t.Errorf("a's bound with x lost at 100 s: %+v, want 10 (flow)", got)
	}
	// With x lost after a, nothing changes.
	in.Deadlines[in.Index.SiteByName["x"]] = 400 * time.Second
	if got := saved(t, in).Sites[0]; got.Count != 16 {
		t.Errorf("a's bound with x lost at 400 s: %d, want 16", got.Count)
	}
}

// A cut link leaves the route through the transit site; cutting both of a's
// links leaves nothing.
func TestCutLink(t *testing.T) {
	in := transitFed(t)
	in.LinkMbps = []float64{0, 1000, 1000} // a-b cut
	if s := saved(t, in); s.Count != 8 {
		t.Errorf("a-b cut: saved = %d, want 8", s.Count)
	}
	if m := makespanOf(t, in); !near(m.Bound, setupS+20*vmS) {
		t.Errorf("a-b cut: makespan bound %v, want 733.61 s", m.Bound)
	}
	in.LinkMbps = []float64{0, 0, 1000}
	s := saved(t, in)
	m := makespanOf(t, in)
	if s.Count != 0 || s.Sites[0].Movable != 0 || m.VMs != 0 || m.Immovable != 20 || m.Bound != 0 {
		t.Errorf("a cut off: saved %d (%d movable), makespan %v over %d VMs (%d immovable); want 0, 0, 0 over 0 (20)",
			s.Count, s.Sites[0].Movable, m.Bound, m.VMs, m.Immovable)
	}
}

// Two threatened sites share the one safe host's 1 Gbit/s NIC: each alone
// could send 8 VMs, together only 8.
func TestSharedDestination(t *testing.T) {
	b := newFed(t)
	b.site("a", 512, 10000)
	b.site("c", 512, 10000)
	b.site("b", 1024, 1000)
	b.link("a", "b", 10000)
	b.link("c", "b", 10000)
	b.vms("a-0", 10, 4, 1)
	b.vms("c-0", 10, 4, 1)
	in := b.input(t, map[string]float64{"a": 300, "c": 300})
	s := saved(t, in)
	if s.Sites[0].Count != 8 || s.Sites[1].Count != 8 || s.Count != 8 || s.Binding != "union of a, c: nic-in" {
		t.Errorf("saved = %d (%s), sites %d and %d; want 8 (union of a, c: nic-in), 8 and 8",
			s.Count, s.Binding, s.Sites[0].Count, s.Sites[1].Count)
	}
	// An earlier deadline for a: by 150 s, a saves at most 4 (146.2988 s /
	// 36.495 s = 4.009); by 300 s both together at most 8.
	in.Deadlines[0] = 150 * time.Second
	s = saved(t, in)
	if s.Sites[0].Count != 4 || s.Count != 8 {
		t.Errorf("a by 150 s: site a %d, total %d; want 4, 8", s.Sites[0].Count, s.Count)
	}
	// All 20: 3.7012 + 20 × 36.495 = 733.61 s into the one NIC.
	m := makespanOf(t, in)
	if !near(m.Bound, setupS+20*vmS) || m.Binding != "nic-in:safe hosts" {
		t.Errorf("makespan bound %v (%s), want 733.61 s (nic-in:safe hosts)", m.Bound, m.Binding)
	}
}

// Memory: the safe host has 22 GiB free, room for five 4 GiB VMs.
func TestMemoryBound(t *testing.T) {
	b := newFed(t)
	b.site("src", 512, 10000)
	b.site("dst", 32, 10000)
	b.link("src", "dst", 10000)
	b.vms("src-0", 10, 4, 1)
	b.vms("dst-0", 1, 10, 1)
	in := b.input(t, map[string]float64{"src": 600})
	if s := saved(t, in); s.Count != 5 || s.Sites[0].Binding != "memory" {
		t.Errorf("saved = %d (%s), want 5 (memory)", s.Count, s.Sites[0].Binding)
	}
	if m := makespanOf(t, in); m.Fits {
		t.Error("makespan: ten 4 GiB VMs fit in 22 GiB")
	}
	// A host that is down neither sends nor receives.
	in.HostDown = []bool{true, false}
	if s := saved(t, in); s.Count != 0 || s.AtRisk != 10 || s.Sites[0].Movable != 0 {
		t.Errorf("source down: saved %d of %d at risk (%d movable), want 0 of 10 (0)", s.Count, s.AtRisk, s.Sites[0].Movable)
	}
}

// Priorities: the LP relaxation takes the best priority per byte first.
func TestPriorityBound(t *testing.T) {
	b := newFed(t)
	b.site("src", 512, 10000)
	b.site("dst", 1024, 10000)
	b.link("src", "dst", 1000)
	b.vms("src-0", 2, 8, 100) // 73 s each at 1 Gbit/s
	b.vms("src-0", 6, 4, 10)
	in := b.input(t, map[string]float64{"src": 120})
	s := saved(t, in)
	// Window 116.2988 s: 13.69 GB, i.e. 3.19 × 4 GiB. By count: three 4 GiB
	// VMs. By priority per byte: one 8 GiB VM (100) and 1.19 × 4 GiB of the
	// rest is a fraction of an 8 GiB one: 100 + 100 × 1.19/2 = 159.6.
	if s.Count != 3 {
		t.Errorf("saved = %d, want 3", s.Count)
	}
	// But only 3 VMs: the two of priority 100 and one of 10 = 210 ≥ 159.
	if s.Priority != 159 {
		t.Errorf("priority = %d (%s), want 159", s.Priority, s.PriorityBinding)
	}
}

func TestKnapsackAndPrefix(t *testing.T) {
	if n := countFitting([]float64{5, 1, 3, 2}, 6); n != 3 {
		t.Errorf("countFitting = %d, want 3 (1+2+3)", n)
	}
	if n := countFitting(nil, 6); n != 0 {
		t.Errorf("countFitting(nil) = %d", n)
	}
	// Densities 3, 2, 1: 6 + 4 + a third of 3.
	if v := fractionalKnapsack([]item{{3, 3}, {6, 2}, {4, 2}}, 5); math.Abs(v-11) > 1e-6 {
		t.Errorf("fractionalKnapsack = %g, want 11", v)
	}
	if v := fractionalKnapsack([]item{{0, 0}, {2, 0}, {4, 8}}, 2); math.Abs(v-3) > 1e-6 {
		t.Errorf("fractionalKnapsack with zero weights = %g, want 3", v)
	}
	if v := topValues([]float64{1, 5, 3}, 2); v != 8 {
		t.Errorf("topValues = %g, want 8", v)
	}
}

func TestPreCopyNeverBeatsPauseAndCopy(t *testing.T) {
	g := precopy.Guest{MemoryBytes: 8 << 30, DirtyRate: 50 << 20, WorkingSet: 2 << 30}
	cfg := precopy.Config{MaxDowntime: 300 * time.Millisecond, AutoConverge: true}
	for _, rate := range []float64{gbit / 4, gbit, 10 * gbit} {
		live := precopy.Solo(g, cfg, rate, time.Millisecond)
		pause := precopy.Setup(time.Millisecond) + seconds(g.MemoryBytes/rate) + precopy.SwitchoverOverhead
		if live.Converges && (live.Total < pause || live.Bytes < g.MemoryBytes) {
			t.Errorf("rate %g: pre-copy %v and %g bytes beat pause-and-copy %v and %g bytes", rate, live.Total, live.Bytes, pause, g.MemoryBytes)
		}
	}
}

func TestBadInput(t *testing.T) {
	in := transitFed(t)
	bad := []Input{
		{},
		{Index: in.Index, Placement: []int{0}},
		{Index: in.Index, HostDown: []bool{true}},
		{Index: in.Index, LinkMbps: []float64{1}},
		{Index: in.Index, LinkMbps: []float64{1, -1, 1}},
		{Index: in.Index, Deadlines: map[int]time.Duration{7: time.Minute}},
	}
	for i, b := range bad {
		if _, err := SavedUpperBound(b); !errors.Is(err, ErrBadInput) {
			t.Errorf("case %d: SavedUpperBound error %v, want ErrBadInput", i, err)
		}
		if _, err := MakespanLowerBound(b); !errors.Is(err, ErrBadInput) {
			t.Errorf("case %d: MakespanLowerBound error %v, want ErrBadInput", i, err)
		}
	}
	for _, vms := range [][]int{{-1}, {99}, {0, 0}} {
		if _, err := MakespanLowerBoundOf(in, vms); !errors.Is(err, ErrBadInput) {
			t.Errorf("MakespanLowerBoundOf(%v) error %v, want ErrBadInput", vms, err)
		}
	}
	m, err := MakespanLowerBoundOf(in, []int{0, 1})
	// Each alone takes 40.28 s; both over the two routes 3.7012 + 36.495 s.
	if err != nil || m.VMs != 2 || !near(m.Bound, setupS+vmS+0.08) || m.Binding != "vm:vm-000" {
		t.Errorf("two VMs: %v (%s) over %d VMs (%v), want 40.28 s (vm:vm-000) over 2", m.Bound, m.Binding, m.VMs, err)
	}
}

func TestForScenario(t *testing.T) {
	in := transitFed(t)
	sc := &model.Scenario{Threats: []model.Threat{{Site: "x", Deadline: model.Duration(time.Minute)}}}
	got := ForScenario(in.Index, sc)
	if len(got.Deadlines) != 1 || got.Deadlines[2] != time.Minute || got.Index != in.Index || got.Now != 0 {
		t.Errorf("ForScenario = %+v", got)
	}
}

// LiveOnly: a dirtying guest's least bytes and time are pre-copy's, so the
// makespan bound of a live evacuation is longer than with paused copies.
func TestLiveOnly(t *testing.T) {
	b := newFed(t)
	b.site("src", 512, 10000)
	b.site("dst", 1024, 10000)
	b.link("src", "dst", 1000)
	b.vms("src-0", 4, 4, 1)
	in := b.input(t, map[string]float64{"src": 3600})
	for i := range in.Index.Fed.VMs {
		in.Index.Fed.VMs[i].DirtyRateMiBps = 40
	}
	paused := makespanOf(t, in)
	in.LiveOnly = true
	live := makespanOf(t, in)
	st, _ := prepare(in)
	if v := st.vms[0]; v.Mode != ModePreCopy || v.Bytes <= vmBytes {
		t.Errorf("live only: %s with %g bytes; want pre-copy, more than the memory", v.Mode, v.Bytes)
	}
	if live.Bound <= paused.Bound {
		t.Errorf("live-only makespan bound %v, not above the paused one %v", live.Bound, paused.Bound)
	}
}
