package model

import (
	"math"
	"slices"
	"sort"
)

// HostRef locates a host in the federation.
type HostRef struct {
	Site, Fabric, Host int
}

// Index gives fast, integer-indexed access to a validated federation.
// Hosts are numbered in document order across all sites and fabrics.
type Index struct {
	Fed           *Federation
	SiteByName    map[string]int
	LinkByName    map[string]int
	VMByName      map[string]int
	ServiceByName map[string]int
	HostByName    map[string]int
	// Hosts lists every host, flattened.
	Hosts []HostRef
	// VMHost is the host index each VM runs on now.
	VMHost []int
	// VMService is the index of each VM's service (-1: none, or a name
	// the federation does not define).
	VMService []int
	// routes[a][b] is the list of link indices from site a to site b; nil
	// with a != b means unreachable.
	routes [][][]int
}

// NewIndex indexes f. f must have passed Validate.
func NewIndex(f *Federation) *Index {
	ix := &Index{
		Fed:           f,
		SiteByName:    make(map[string]int, len(f.Sites)),
		LinkByName:    make(map[string]int, len(f.Links)),
		VMByName:      make(map[string]int, len(f.VMs)),
		ServiceByName: make(map[string]int, len(f.Services)),
		HostByName:    map[string]int{},
	}
	for si := range f.Sites {
		ix.SiteByName[f.Sites[si].Name] = si
		for fi := range f.Sites[si].Fabrics {
			for hi := range f.Sites[si].Fabrics[fi].Hosts {
				ix.HostByName[f.Sites[si].Fabrics[fi].Hosts[hi].Name] = len(ix.Hosts)
				ix.Hosts = append(ix.Hosts, HostRef{si, fi, hi})
			}
		}
	}
	for i := range f.Links {
		ix.LinkByName[f.Links[i].Name] = i
	}
	for i := range f.Services {
		ix.ServiceByName[f.Services[i].Name] = i
	}
	ix.VMHost = make([]int, len(f.VMs))
	ix.VMService = make([]int, len(f.VMs))
	for i := range f.VMs {
		ix.VMByName[f.VMs[i].Name] = i
		ix.VMService[i] = -1
		if s, ok := ix.ServiceByName[f.VMs[i].Service]; ok && f.VMs[i].Service != "" {
			ix.VMService[i] = s
		}
		h, ok := ix.HostByName[f.VMs[i].Host]
		if !ok {
			h = -1
		}
		ix.VMHost[i] = h
	}
	ix.computeRoutes()
	return ix
}

// Host returns host h.
func (ix *Index) Host(h int) *Host {
	r := ix.Hosts[h]
	return &ix.Fed.Sites[r.Site].Fabrics[r.Fabric].Hosts[r.Host]
}

// HostSite returns the site index of host h.
func (ix *Index) HostSite(h int) int { return ix.Hosts[h].Site }

// HostFabricKey returns a federation-wide id of host h's fabric.
func (ix *Index) HostFabricKey(h int) [2]int { return [2]int{ix.Hosts[h].Site, ix.Hosts[h].Fabric} }

// Route returns the links crossed going from site a to site b (empty when
// a == b) and whether b is reachable.
func (ix *Index) Route(a, b int) ([]int, bool) {
	if a == b {
		return nil, true
	}
	r := ix.routes[a][b]
	return r, r != nil
}

// LinkPeer returns the site at the other end of link l from site s. For a
// site that is not an end of l it returns l's first end (a).
func (ix *Index) LinkPeer(l, s int) int {
	lk := &ix.Fed.Links[l]
	if ix.SiteByName[lk.A] == s {
		return ix.SiteByName[lk.B]
	}
	return ix.SiteByName[lk.A]
}

// computeRoutes finds, for every pair of sites, a path with the fewest
// links and, among those, the widest bottleneck (the largest smallest
// bandwidth_mbps along it). It is a breadth-first search per source whose
// labels of one hop count are final before the next layer is expanded;
// since a path's bottleneck only depends on its prefix's bottleneck, the
// widest label per site is enough. Remaining ties are broken
// deterministically in favour of lower link indices (the lexicographically
// smaller list of the candidates compared), whatever the document order of
// the sites, so a route and its reverse may differ between equally good
// paths.
func (ix *Index) computeRoutes() {
	n := len(ix.Fed.Sites)
	adj := make([][]int, n) // site -> link indices
	for li := range ix.Fed.Links {
		a, okA := ix.SiteByName[ix.Fed.Links[li].A]
		b, okB := ix.SiteByName[ix.Fed.Links[li].B]
		if !okA || !okB || a == b {
			continue
		}
		adj[a] = append(adj[a], li)
		adj[b] = append(adj[b], li)
	}
	ix.routes = make([][][]int, n)
	for src := range n {
		ix.routes[src] = make([][]int, n)
		type label struct {
			hops   int
			bottle float64
			path   []int
		}
		best := make([]*label, n)
		best[src] = &label{bottle: math.Inf(1)}
		frontier := []int{src}
		for len(frontier) > 0 {
			var next []int
			for _, s := range frontier {
				for _, li := range adj[s] {
					t := ix.LinkPeer(li, s)
					bw := ix.Fed.Links[li].BandwidthMbps
					cand := &label{hops: best[s].hops + 1, bottle: min(best[s].bottle, bw)}
					cand.path = append(append([]int(nil), best[s].path...), li)
					cur := best[t]
					if cur == nil {
						best[t] = cand
						next = append(next, t)
						continue
					}
					if cand.hops == cur.hops && (cand.bottle > cur.bottle ||
						cand.bottle == cur.bottle && slices.Compare(cand.path, cur.path) < 0) {
						best[t] = cand
					}
				}
			}
			sort.Ints(next)
			frontier = next
		}
		for dst := range n {
			if dst != src && best[dst] != nil {
				ix.routes[src][dst] = best[dst].path
			}
		}
	}
}
