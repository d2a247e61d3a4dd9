package fedgen

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/model"
)

// maxHops is the largest number of links on a route between two sites.
func maxHops(t *testing.T, f *model.Federation) int {
	t.Helper()
	ix := model.NewIndex(f)
	most := 0
	for a := range f.Sites {
		for b := range f.Sites {
			r, ok := ix.Route(a, b)
			if !ok {
				t.Fatalf("%s: site %s cannot reach site %s", f.Name, f.Sites[a].Name, f.Sites[b].Name)
			}
			most = max(most, len(r))
		}
	}
	return most
}

func TestTopologies(t *testing.T) {
	const sites = 6
	cases := []struct {
		topo     Topology
		links    int // -1: at least sites
		maxHops  int // -1: any
		starLike bool
	}{
		{TopologyRing, sites, sites / 2, false},
		{TopologyChain, sites - 1, sites - 1, false},
		{TopologyStar, sites - 1, 2, true},
		{TopologyRingChords, -1, -1, false},
		{"", -1, -1, false},
	}
	for _, c := range cases {
		f := mustGenerate(t, Options{Sites: sites, Hosts: 12, VMs: 40, Seed: 3, Topology: c.topo})
		if c.links >= 0 && len(f.Links) != c.links {
			t.Errorf("%q: %d links, want %d", c.topo, len(f.Links), c.links)
		}
		if c.links < 0 && len(f.Links) < sites {
			t.Errorf("%q: %d links, want at least %d", c.topo, len(f.Links), sites)
		}
		if h := maxHops(t, f); c.maxHops >= 0 && h != c.maxHops {
			t.Errorf("%q: longest route has %d links, want %d", c.topo, h, c.maxHops)
		}
		if c.starLike {
			for _, l := range f.Links {
				if l.A != f.Sites[0].Name {
					t.Errorf("star: link %s does not start at the hub %s", l.Name, f.Sites[0].Name)
				}
			}
		}
	}
	// Two sites: one link whatever the shape.
	for _, topo := range Topologies {
		if f := mustGenerate(t, Options{Sites: 2, Hosts: 4, Topology: topo}); len(f.Links) != 1 {
			t.Errorf("%q with two sites: %d links, want 1", topo, len(f.Links))
		}
	}
	// The default is the ring with chords, draw for draw.
	a := mustGenerate(t, Options{Sites: sites, Hosts: 12, Seed: 4})
	b := mustGenerate(t, Options{Sites: sites, Hosts: 12, Seed: 4, Topology: TopologyRingChords})
	if !reflect.DeepEqual(a, b) {
		t.Error("Topology ring-chords differs from the default")
	}
}

func TestLinkAndNICOptions(t *testing.T) {
	nics := []float64{1000, 10000, 25000}
	f := mustGenerate(t, Options{Sites: 30, Hosts: 120, VMs: 400, Seed: 5, LinkMbpsMin: 500, LinkMbpsMax: 10000, NICMbps: nics})
	var lo, hi float64 = 1e18, 0
	for _, l := range f.Links {
		if l.BandwidthMbps < 500 || l.BandwidthMbps > 10000 {
			t.Errorf("link %s: %g Mbit/s outside [500, 10000]", l.Name, l.BandwidthMbps)
		}
		lo, hi = min(lo, l.BandwidthMbps), max(hi, l.BandwidthMbps)
	}
	if lo > 1000 || hi < 5000 {
		t.Errorf("link speeds span only [%g, %g] over %d links", lo, hi, len(f.Links))
	}
	seen := map[float64]bool{}
	for _, s := range f.Sites {
		for _, fb := range s.Fabrics {
			for _, h := range fb.Hosts {
				if !slices.Contains(nics, h.NICMbps) {
					t.Errorf("host %s: NIC %g Mbit/s not among %v", h.Name, h.NICMbps, nics)
				}
				seen[h.NICMbps] = true
			}
		}
	}
	if len(seen) != len(nics) {
		t.Errorf("NIC speeds drawn: %v, want all of %v", seen, nics)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []Options{
		{LinkMbpsMin: 500},
		{LinkMbpsMax: 500},
		{LinkMbpsMin: 2000, LinkMbpsMax: 1000},
		{LinkMbpsMin: -1, LinkMbpsMax: 1000},
		{NICMbps: []float64{1000, 0}},
		{Topology: "mesh"},
	} {
		if _, err := Generate(o); err == nil {
			t.Errorf("Generate(%+v) did not fail", o)
		}
	}
	if _, _, err := Case(CaseOptions{VMsPerHost: -1}); err == nil {
		t.Error("Case with negative VMs per host did not fail")
	}
}

func TestCase(t *testing.T) {
	topologies := map[int]bool{} // longest routes seen
	for seed := uint64(1); seed <= 12; seed++ {
		f, sc, err := Case(CaseOptions{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.Validate(f); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		n := len(f.Sites)
		if n < CaseMinSites || n > CaseMaxSites {
			t.Errorf("seed %d: %d sites", seed, n)
		}
		if k := len(sc.Threats); k < 1 || k > CaseMaxThreatened || k >= n {
			t.Errorf("seed %d: %d of %d sites threatened", seed, k, n)
		}
		for _, th := range sc.Threats {
			if d := th.Deadline.D(); d < CaseMinDeadline || d > CaseMaxDeadline {
				t.Errorf("seed %d: deadline %v", seed, d)
			}
		}
		for _, l := range f.Links {
			if l.BandwidthMbps < CaseLinkMbpsMin || l.BandwidthMbps > CaseLinkMbpsMax {
				t.Errorf("seed %d: link %s at %g Mbit/s", seed, l.Name, l.BandwidthMbps)
			}
		}
		dirty := 0
		for _, v := range f.VMs {
			if v.DirtyRateMiBps > 0 {
				dirty++
			}
		}
		if dirty < len(f.VMs)/2 {
			t.Errorf("seed %d: only %d of %d VMs dirty memory", seed, dirty, len(f.VMs))
		}
		if !roomy(f, sc) {
			t.Errorf("seed %d: the safe sites cannot hold the threatened VMs", seed)
		}
		topologies[maxHops(t, f)] = true
		f2, sc2, _ := Case(CaseOptions{Seed: seed})
		if !reflect.DeepEqual(f, f2) || !reflect.DeepEqual(sc, sc2) {
			t.Errorf("seed %d: not deterministic", seed)
		}
	}
	if !topologies[2] && !topologies[3] {
		t.Errorf("no case has a multi-hop route (longest routes seen: %v)", topologies)
	}
	_, sc, _ := Case(CaseOptions{Seed: 1})
	before := sc.Threats[0].Deadline
	far := WithDeadline(sc, 24*time.Hour)
	if len(far.Threats) != len(sc.Threats) || far.Threats[0].Deadline.D() != 24*time.Hour || sc.Threats[0].Deadline != before {
		t.Errorf("WithDeadline: %+v from %+v", far.Threats, sc.Threats)
	}
	small, _, err := Case(CaseOptions{Seed: 1, MaxHostsPerSite: 2, VMsPerHost: 2})
	if err != nil {
		t.Fatal(err)
	}
	if hosts := len(model.NewIndex(small).Hosts); hosts != 2*len(small.Sites) || len(small.VMs) != 2*hosts {
		t.Errorf("small case: %d hosts, %d VMs over %d sites", hosts, len(small.VMs), len(small.Sites))
	}
}
