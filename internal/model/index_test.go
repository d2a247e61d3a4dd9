package model

import (
	"slices"
	"strconv"
	"testing"
)

// routeFederation builds sites s0…s(n-1) joined by the given links
// ("a-b" → bandwidth), one fabric and host per site.
func routeFederation(t *testing.T, n int, links []Link) *Federation {
	t.Helper()
	f := &Federation{Name: "routes", Links: links}
	for i := range n {
		s := "s" + strconv.Itoa(i)
		f.Sites = append(f.Sites, Site{Name: s, Fabrics: []Fabric{{Name: s + "-f", Hosts: []Host{{Name: s + "-h", VCPU: 8, MemoryMiB: 8192, NICMbps: 1000}}}}})
	}
	f.ApplyDefaults()
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	return f
}

func link(name, a, b string, mbps float64) Link {
	return Link{Name: name, A: a, B: b, BandwidthMbps: mbps}
}

func TestRoutes(t *testing.T) {
	f := routeFederation(t, 7, []Link{
		link("l0", "s0", "s1", 100),   // narrow direct link …
		link("l1", "s0", "s2", 10000), // … and a wide detour s0-s2-s1
		link("l2", "s2", "s1", 10000),
		link("l3", "s1", "s3", 100),  // s0→s3: two-hop paths via s1 (bottleneck 100) …
		link("l4", "s2", "s3", 1000), // … or via s2 (bottleneck 1000)
		link("l5", "s3", "s4", 500),  // s3→s5: equal hops and bottleneck via s4 or s6
		link("l6", "s3", "s6", 500),
		link("l7", "s6", "s5", 500),
		link("l8", "s4", "s5", 500),
	})
	f.Sites = append(f.Sites, Site{Name: "island", Fabrics: []Fabric{{Name: "i-f", Hosts: []Host{{Name: "i-h", VCPU: 1, MemoryMiB: 1, NICMbps: 1}}}}})
	ix := NewIndex(f)
	site := func(name string) int { return ix.SiteByName[name] }
	for _, tc := range []struct {
		name     string
		from, to string
		want     []int
		ok       bool
	}{
		{"same site", "s0", "s0", nil, true},
		{"fewest hops beats bandwidth", "s0", "s1", []int{0}, true},
		{"tie on hops: widest bottleneck", "s0", "s3", []int{1, 4}, true},
		{"tie on hops and bottleneck: lowest link indices", "s3", "s5", []int{5, 8}, true},
		{"reverse direction, tie broken on its own", "s5", "s3", []int{7, 6}, true},
		{"three hops", "s0", "s5", []int{1, 4, 5, 8}, true},
		{"unreachable", "s0", "island", nil, false},
		{"unreachable reverse", "island", "s2", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ix.Route(site(tc.from), site(tc.to))
			if ok != tc.ok || !slices.Equal(got, tc.want) {
				t.Fatalf("Route(%s, %s) = %v, %v; want %v, %v", tc.from, tc.to, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestRouteTieBreakIsIndependentOfDocumentOrder(t *testing.T) {
	// Two equal paths s0→s3; the lower link indices win even when the
	// search meets the other path first.
	f := routeFederation(t, 4, []Link{
		link("a", "s0", "s2", 100),
		link("b", "s0", "s1", 100),
		link("c", "s1", "s3", 100),
		link("d", "s2", "s3", 100),
	})
	got, ok := NewIndex(f).Route(0, 3)
	if !ok || !slices.Equal(got, []int{0, 3}) {
		t.Fatalf("Route = %v, %v; want [0 3]", got, ok)
	}
}

func TestLinkPeer(t *testing.T) {
	f := routeFederation(t, 3, []Link{link("l0", "s0", "s1", 100), link("l1", "s2", "s1", 100)})
	ix := NewIndex(f)
	for _, tc := range []struct{ link, site, want int }{
		{0, 0, 1}, {0, 1, 0}, {1, 1, 2}, {1, 2, 1},
		{0, 2, 0}, // not an end: the first end
	} {
		if got := ix.LinkPeer(tc.link, tc.site); got != tc.want {
			t.Errorf("LinkPeer(%d, %d) = %d, want %d", tc.link, tc.site, got, tc.want)
		}
	}
}

func TestIndexLookups(t *testing.T) {
	f := testFederation(t)
	ix := NewIndex(f)
	if len(ix.Hosts) != 6 {
		t.Fatalf("%d hosts indexed, want 6", len(ix.Hosts))
	}
	h := ix.HostByName["kochi-b1"]
	if ix.Host(h).Name != "kochi-b1" || ix.HostSite(h) != 0 || ix.HostFabricKey(h) != [2]int{0, 1} {
		t.Fatalf("kochi-b1: host %q, site %d, fabric %v", ix.Host(h).Name, ix.HostSite(h), ix.HostFabricKey(h))
	}
	for i, v := range f.VMs {
		if ix.Host(ix.VMHost[i]).Name != v.Host || ix.VMByName[v.Name] != i {
			t.Errorf("VM %s indexed on %s", v.Name, ix.Host(ix.VMHost[i]).Name)
		}
	}
	if ix.ServiceByName["moodle-web"] != 2 || ix.LinkByName["kochi-tsukuba"] != 2 {
		t.Fatal("service or link index wrong")
	}
	// kochi→tsukuba has a direct link, narrower than the detour via osaka.
	if r, ok := ix.Route(ix.SiteByName["kochi"], ix.SiteByName["tsukuba"]); !ok || !slices.Equal(r, []int{2}) {
		t.Fatalf("kochi→tsukuba = %v, %v", r, ok)
	}
}

func TestIndexOfUnvalidatedFederationDoesNotPanic(t *testing.T) {
	f := &Federation{
		Sites: []Site{{Name: "a"}, {Name: "a"}},
		Links: []Link{{Name: "l", A: "a", B: "nowhere"}, {Name: "m", A: "a", B: "a"}},
		VMs:   []VM{{Name: "v", Host: "none"}},
	}
	ix := NewIndex(f)
	if ix.VMHost[0] != -1 {
		t.Fatalf("VMHost = %d, want -1", ix.VMHost[0])
	}
	if _, ok := ix.Route(0, 1); ok {
		t.Fatal("route through an unknown link end")
	}
}
