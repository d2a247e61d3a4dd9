package executor

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/hypervisor/simhv"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/sim"
)

// tester is what sideBySide needs of a *testing.T or *rapid.T.
type tester interface {
	Helper()
	Fatal(args ...any)
}

// indexOf parses a federation document and indexes it.
func indexOf(t tester, doc string) *model.Index {
	t.Helper()
	f, err := model.ParseFederation([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return model.NewIndex(f)
}

// simulated returns a new simulation engine and ix's simulated cluster on it.
func simulated(t tester, ix *model.Index) (*sim.Engine, *simhv.Cluster) {
	t.Helper()
	eng := sim.NewEngine(epoch)
	cl, err := simhv.New(eng, ix)
	if err != nil {
		t.Fatal(err)
	}
	return eng, cl
}

// sideBySide makes, on one simulated federation, an executor per group of
// threatened sites, the way the controller runs evacuations of disjoint
// VMs: each keeps the others' sites at watch level (excluded as
// destinations) and all share led (nil: each its own ledger).
func sideBySide(t tester, ix *model.Index, pol model.Policy, cl *simhv.Cluster, eng *sim.Engine, led *Ledger,
	groups []map[int]time.Duration, onEvent func(Event)) []*Executor {
	t.Helper()
	exs := make([]*Executor, len(groups))
	for i := range groups {
		exs[i] = beside(t, ix, pol, cl, eng, led, groups, i, onEvent)
	}
	return exs
}

// beside makes sideBySide's executor for groups[i], from the hypervisors'
// placement now.
func beside(t tester, ix *model.Index, pol model.Policy, cl *simhv.Cluster, eng *sim.Engine, led *Ledger,
	groups []map[int]time.Duration, i int, onEvent func(Event)) *Executor {
	t.Helper()
	pol.WatchSites = model.WatchExclude
	watch := make([]bool, len(ix.Fed.Sites))
	for j, g := range groups {
		for s := range g {
			watch[s] = j != i
		}
	}
	ex, err := New(Config{Index: ix, Policy: pol, Driver: cl, Clock: eng, Start: epoch,
		Placement: cl.Placement(), Watch: watch, Ledger: led, OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// holding returns the migrations of exs that hold u's resource or limit
// now (by key: the ledger's accounts are not trusted): how many, and
// their summed demand.
func holding(exs []*Executor, u *unit) (n int, demand float64) {
	for _, ex := range exs {
		for _, r := range ex.running {
			if !slices.ContainsFunc(r.units, func(x *unit) bool { return x.key == u.key }) || u.key.kind.bandwidth() && r.released {
				continue
			}
			n++
			demand += r.demand
		}
	}
	return n, demand
}

// Property: executors side by side on one ledger admit, together, what one
// executor may admit alone: at every admission the unit admits the
// migration given what all of them hold there (idle, half its demand or
// a quarter of the unit free within the slack, or no more than its fair
// share), no count limit
// is ever exceeded, the ledger's account of each unit is the sum of what
// they hold, and no host's memory is promised beyond its size. VMs are
// never migrated twice and every executor's view of placement ends as the
// hypervisors' own.
func TestPropertySharedAdmission(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		pc := drawPropertyCase(rt)
		ix, fed, dl := pc.ix, pc.ix.Fed, pc.dl
		// Two evacuations: the first threatened site, and the others (or
		// one more site, keeping one safe).
		var sites []int
		for s := range dl {
			sites = append(sites, s)
		}
		slices.Sort(sites)
		if len(sites) == 1 {
			if len(fed.Sites) < 3 {
				rt.Skip("too few sites for two evacuations")
			}
			for s := range fed.Sites {
				if _, ok := dl[s]; !ok {
					sites = append(sites, s)
					dl[s] = dl[sites[0]]
					break
				}
			}
		}
		groups := []map[int]time.Duration{{sites[0]: dl[sites[0]]}, {}}
		for _, s := range sites[1:] {
			groups[1][s] = dl[s]
		}
		eng, cl := pc.eng, pc.cl
		led := NewLedger()
		var exs []*Executor
		check := func(Event) {
			led.mu.Lock()
			defer led.mu.Unlock()
			for _, u := range led.units {
				n, demand := holding(exs, u)
				if n != u.holders || math.Abs(demand-u.used) > 1 && u.key.kind.bandwidth() {
					rt.Fatalf("unit %v: the ledger counts %d holding %.0f, the executors %d holding %.0f", u.key, u.holders, u.used, n, demand)
				}
				if !u.key.kind.bandwidth() && float64(n) > u.est {
					rt.Fatalf("count limit %v: %d running, limit %v", u.key, n, u.est)
				}
			}
			promised := make([]int64, len(ix.Hosts))
			for v, h := range cl.Placement() {
				if h >= 0 {
					promised[h] += fed.VMs[v].MemoryMiB
				}
			}
			for _, f := range led.flights {
				promised[f.to] += fed.VMs[f.vm].MemoryMiB
			}
			for h, m := range promised {
				if m > ix.Host(h).MemoryMiB {
					rt.Fatalf("host %s: %d MiB placed or promised, %d MiB in all", ix.Host(h).Name, m, ix.Host(h).MemoryMiB)
				}
			}
		}
		admit := func(u *unit, d float64) {
			n, sum := holding(exs, u)
			switch {
			case u.key.kind.bandwidth():
				free := u.est*(1+admissionSlack) - sum
				if n > 0 && free < admissionShare*d-1 && free < admissionIdle*u.est*(1+admissionSlack)-1 && d > u.est/float64(n+1)+1 {
					rt.Fatalf("%s: admitted %.0f B/s with %.0f free of %.0f, %d migrating", netpath.Name(ix, u.res), d, free, u.est, n)
				}
			case float64(n+1) > u.est:
				rt.Fatalf("count limit %v: %d running, limit %v", u.key, n+1, u.est)
			}
		}
		exs = sideBySide(rt, ix, pc.pol, cl, eng, led, groups, check)
		for i, ex := range exs {
			ex.admitted = admit
			if err := ex.Start(groups[i]); err != nil {
				rt.Fatal(err)
			}
		}
		eng.Run()
		done := map[string]int{}
		for _, ex := range exs {
			rep := ex.Report()
			for _, ev := range rep.Timeline {
				if ev.Kind == EvDone {
					if done[ev.VM]++; done[ev.VM] > 1 {
						rt.Fatalf("%s migrated twice", ev.VM)
					}
				}
			}
			if place := cl.Placement(); !slices.Equal(rep.Placement, place) {
				rt.Fatalf("an executor's placement %v, the hypervisors' %v", rep.Placement, place)
			}
		}
		if err := cl.Check(); err != nil {
			rt.Fatalf("the federation is inconsistent: %v", err)
		}
		if len(led.flights) != 0 {
			rt.Fatalf("%d flights left in the ledger", len(led.flights))
		}
		for _, ex := range exs {
			ex.Close()
		}
		if len(led.members) != 0 || len(led.landed) != 0 {
			rt.Fatalf("closed executors leave %d members and %d log entries in the ledger", len(led.members), len(led.landed))
		}
		for _, u := range led.units {
			if len(u.waiting) != 0 {
				rt.Fatalf("unit %v: closed executors still wait on it", u.key)
			}
		}
	})
}

// The log of where migrations ended is kept only until every member has
// applied it: an entry stays while a member still has to read it, goes
// once all have, and nothing is logged while no other member would read
// it (after the others left).
func TestLedgerLogTrimmed(t *testing.T) {
	led := NewLedger()
	a, b := led.join(func() {}), led.join(func() {})
	land := func(m *member, vm, to int) {
		led.mu.Lock()
		defer led.mu.Unlock()
		led.fly(&flight{owner: m, vm: vm, to: to})
		led.land(m, vm, to)
	}
	read := func(m *member) {
		led.mu.Lock()
		defer led.mu.Unlock()
		m.cursor = led.logEnd()
		led.trim()
	}
	for vm := range 4 {
		land(a, vm, 1)
	}
	read(a)
	if len(led.landed) != 4 {
		t.Fatalf("%d entries logged, want the 4 b has not read", len(led.landed))
	}
	led.leave(a)
	if len(led.landed) != 4 {
		t.Fatalf("a left: %d entries kept, want the 4 b has not read", len(led.landed))
	}
	read(b)
	if len(led.landed) != 0 || led.landedBase != 4 {
		t.Fatalf("b read everything: %d entries kept from %d, want none from 4", len(led.landed), led.landedBase)
	}
	land(b, 5, 2)
	if len(led.landed) != 0 {
		t.Fatalf("b alone: %d entries logged, want none", len(led.landed))
	}
	c := led.join(func() {})
	if c.id == a.id || c.id == b.id || c.cursor != led.logEnd() {
		t.Fatalf("c joined as %d at %d; want a new id, at the log's end %d", c.id, c.cursor, led.logEnd())
	}
	land(b, 6, 2)
	if len(led.landed) != 1 || led.landing(c.cursor).vm != 6 {
		t.Fatalf("b beside c: log %v from %d, want vm 6's landing at %d", led.landed, led.landedBase, c.cursor)
	}
}

// twoSources: sites a and b hold na and nb VMs (a's first); c1 is the
// only destination either may use (each keeps the other's site at watch
// level).
func twoSources(t *testing.T, na, nb int) *model.Index {
	t.Helper()
	var b strings.Builder
	b.WriteString(`name: two
sites:
  - {name: a, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 16, memory_mib: 65536, nic_mbps: 10000}]}]}
  - {name: b, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 16, memory_mib: 65536, nic_mbps: 10000}]}]}
  - {name: c, fabrics: [{name: fc, hosts: [{name: c1, vcpu: 64, memory_mib: 131072, nic_mbps: 10000}]}]}
links:
  - {name: ac, a: a, b: c, bandwidth_mbps: 10000, rtt_ms: 5}
  - {name: bc, a: b, b: c, bandwidth_mbps: 10000, rtt_ms: 5}
vms:
`)
	for j, site := range []string{"a", "b"} {
		for i := range []int{na, nb}[j] {
			fmt.Fprintf(&b, "  - {name: v%s%d, host: %s1, vcpu: 2, memory_mib: 8192, storage: shared}\n", site, i, site)
		}
	}
	return indexOf(t, b.String())
}

// A move parked in one executor on a unit another executor's migration
// holds (one migration at a time into c1) starts when that migration
// ends, at the same instant; with a ledger each, both would run at once.
func TestSharedLedgerWakesParkedMoves(t *testing.T) {
	ix := twoSources(t, 1, 1)
	pol := model.RefugePolicy()
	pol.Concurrency.PerHostIn = 1
	groups := []map[int]time.Duration{{0: time.Hour}, {1: time.Hour}}
	evacuate := func(led *Ledger) (a, b VMRecord) {
		eng, cl := simulated(t, ix)
		exs := sideBySide(t, ix, pol, cl, eng, led, groups, nil)
		for i, ex := range exs {
			if err := ex.Start(groups[i]); err != nil {
				t.Fatal(err)
			}
		}
		eng.Run()
		a, b = exs[0].Report().VMs[0], exs[1].Report().VMs[1]
		if a.Status != StatusMigrated || b.Status != StatusMigrated {
			t.Fatalf("va0 %s, vb0 %s; want both migrated", a.Status, b.Status)
		}
		return a, b
	}
	a, b := evacuate(NewLedger())
	if b.Started != a.Finished {
		t.Errorf("with a shared ledger vb0 started at %v, want when va0's migration ended (%v)", b.Started, a.Finished)
	}
	a, b = evacuate(nil)
	if b.Started >= a.Finished {
		t.Errorf("with a ledger each vb0 started at %v, after va0 ended (%v): the test shows nothing", b.Started, a.Finished)
	}
}

// Executors sharing a ledger on the wall clock, their migrations ending on
// the driver's goroutines and their wakeups on the clock's, all finish
// (run with -race).
func TestSharedLedgerRealClock(t *testing.T) {
	ix := twoSources(t, 4, 4)
	pol := fixedPolicy()
	pol.Concurrency.PerHostIn = 1
	pol.WatchSites = model.WatchExclude
	drv := &realDriver{}
	led := NewLedger()
	start := time.Now()
	groups := []map[int]time.Duration{{0: time.Hour}, {1: time.Hour}}
	var exs []*Executor
	for i := range groups {
		watch := []bool{i == 1, i == 0, false}
		ex, err := New(Config{Index: ix, Policy: pol, Driver: drv, Clock: clock.Real{}, Start: start, Watch: watch, Ledger: led})
		if err != nil {
			t.Fatal(err)
		}
		exs = append(exs, ex)
	}
	for i, ex := range exs {
		if err := ex.Start(groups[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, ex := range exs {
		select {
		case <-ex.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("executor did not finish within 30 s")
		}
	}
	drv.wg.Wait()
	for i, ex := range exs {
		if st := statuses(ex.Report()); st[StatusMigrated] != 4 {
			t.Errorf("executor %d: statuses %v, want 4 migrated", i, st)
		}
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	if len(led.flights) != 0 {
		t.Errorf("%d flights left in the ledger", len(led.flights))
	}
}

// fourSites: a's VM fills c1 (c1 has room for one VM); b's VM would
// rather go to c1 (10 Gbit/s) than to d1 (1 Gbit/s).
const fourSites = `name: four
sites:
  - {name: a, fabrics: [{name: fa, hosts: [{name: a1, vcpu: 16, memory_mib: 65536, nic_mbps: 10000}]}]}
  - {name: b, fabrics: [{name: fb, hosts: [{name: b1, vcpu: 16, memory_mib: 65536, nic_mbps: 10000}]}]}
  - {name: c, fabrics: [{name: fc, hosts: [{name: c1, vcpu: 16, memory_mib: 12288, nic_mbps: 10000}]}]}
  - {name: d, fabrics: [{name: fd, hosts: [{name: d1, vcpu: 16, memory_mib: 65536, nic_mbps: 10000}]}]}
links:
  - {name: ac, a: a, b: c, bandwidth_mbps: 10000, rtt_ms: 5}
  - {name: bc, a: b, b: c, bandwidth_mbps: 10000, rtt_ms: 5}
  - {name: bd, a: b, b: d, bandwidth_mbps: 1000, rtt_ms: 5}
vms:
  - {name: va, host: a1, vcpu: 2, memory_mib: 8192, storage: shared}
  - {name: vb, host: b1, vcpu: 2, memory_mib: 8192, storage: shared}
`

// The second evacuation's planner and executor count the room the first
// one's migration in flight has taken: b's VM goes to d1 at once, not to
// c1, which a's VM is filling; with a ledger each it is sent to c1 first,
// and only the hypervisor's refusal stops it.
func TestSharedLedgerReservesDestinations(t *testing.T) {
	ix := indexOf(t, fourSites)
	groups := []map[int]time.Duration{{0: time.Hour}, {1: time.Hour}}
	evacuate := func(led *Ledger) (a VMRecord, b Report) {
		eng, cl := simulated(t, ix)
		first := beside(t, ix, model.RefugePolicy(), cl, eng, led, groups, 0, nil)
		if err := first.Start(groups[0]); err != nil {
			t.Fatal(err)
		}
		var second *Executor
		eng.AfterFunc(time.Second, func() {
			if !cl.Migrating(0) {
				t.Error("va is not migrating when the second evacuation starts")
			}
			second = beside(t, ix, model.RefugePolicy(), cl, eng, led, groups, 1, nil)
			if err := second.Start(groups[1]); err != nil {
				t.Error(err)
			}
		})
		eng.Run()
		if err := cl.Check(); err != nil {
			t.Fatal(err)
		}
		return first.Report().VMs[0], second.Report()
	}
	a, rep := evacuate(NewLedger())
	b := rep.VMs[1]
	if a.Status != StatusMigrated || a.To != "c1" || b.Status != StatusMigrated || b.To != "d1" || b.Attempts != 1 {
		t.Errorf("with a shared ledger va %s to %q, vb %s to %q in %d attempts; want va to c1, vb to d1 at once",
			a.Status, a.To, b.Status, b.To, b.Attempts)
	}
	if _, rep = evacuate(nil); !hasKind(rep.Timeline, EvRefused) {
		t.Error("with a ledger each vb was not sent to c1 first: the test shows nothing")
	}
}

func hasKind(evs []Event, kind string) bool {
	return slices.ContainsFunc(evs, func(ev Event) bool { return ev.Kind == kind })
}

// Executors side by side share a contended unit earliest deadline first:
// a maintenance evacuation of b (an hour's notice, six VMs) holds the only
// way into c1 (one migration at a time) when a warning for a gives a a
// minute. a's three VMs go next, each as c1 frees, before b's other five,
// and all make it; first come, first served, they would wait for all six
// of b's and miss the minute.
func TestSharedLedgerEarliestDeadlineFirst(t *testing.T) {
	ix := twoSources(t, 3, 6)
	pol := model.RefugePolicy()
	pol.Concurrency.PerHostIn = 1
	groups := []map[int]time.Duration{{0: time.Second + time.Minute}, {1: time.Hour}}
	eng, cl := simulated(t, ix)
	led := NewLedger()
	maintenance := beside(t, ix, pol, cl, eng, led, groups, 1, nil)
	if err := maintenance.Start(groups[1]); err != nil {
		t.Fatal(err)
	}
	var warning *Executor
	eng.AfterFunc(time.Second, func() {
		warning = beside(t, ix, pol, cl, eng, led, groups, 0, nil)
		if err := warning.Start(groups[0]); err != nil {
			t.Error(err)
		}
	})
	eng.Run()
	if err := cl.Check(); err != nil {
		t.Fatal(err)
	}
	a, b := warning.Report().VMs, maintenance.Report().VMs
	var lastA time.Duration
	for _, r := range a[:3] {
		if r.Status != StatusMigrated {
			t.Errorf("%s %s (%s); want migrated within a's minute", r.Name, r.Status, r.Reason)
		}
		lastA = max(lastA, r.Started)
	}
	for _, r := range b[4:] {
		if r.Status != StatusMigrated || r.Started < lastA {
			t.Errorf("%s %s, started at %v; want migrated after a's last started (%v)", r.Name, r.Status, r.Started, lastA)
		}
	}
}
