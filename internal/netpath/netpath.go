// Package netpath describes the bandwidth resources a migration crosses —
// the source host's NIC, the WAN links on the route, the destination host's
// NIC — and their capacities as TCP goodput, so that the planner's
// predictions and the simulator's fair sharing use the same numbers.
package netpath

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/precopy"
)

// Kind names a bandwidth resource.
type Kind string

// Resource kinds.
const (
	HostOut Kind = "host-out" // a host NIC, sending
	HostIn  Kind = "host-in"  // a host NIC, receiving
	Link    Kind = "link"     // one direction of a WAN link
)

// Resource identifies one bandwidth resource. For links, Dir is 0 for traffic
// from Link.A to Link.B and 1 for the reverse.
type Resource struct {
	Kind Kind
	ID   int
	Dir  int
}

// LANRTT is the round-trip time inside a site.
const LANRTT = 200 * time.Microsecond

// TCPWindowBytes is the largest TCP send window of one connection (Linux's
// default tcp_wmem maximum); it limits a single stream to window/RTT.
const TCPWindowBytes = 4 << 20

// Path is the route of a migration between two hosts.
type Path struct {
	Resources []Resource
	Links     []int
	RTT       time.Duration
}

// ErrBadRoute is wrapped by the errors of Along and LinksNamed.
var ErrBadRoute = errors.New("invalid route")

// Between returns the path from host src to host dst along the
// federation's default route (model.Index.Route), or false when the
// destination's site cannot be reached.
func Between(ix *model.Index, src, dst int) (Path, bool) {
	links, ok := ix.Route(ix.HostSite(src), ix.HostSite(dst))
	if !ok {
		return Path{}, false
	}
	return build(ix, src, dst, links), true
}

// Along returns the path from host src to host dst across the given links,
// in order. The links must form a simple route from src's site to dst's
// site: each one touches the site the previous one reached, and no site is
// visited twice. An empty list is the route inside one site. Errors wrap
// ErrBadRoute and name the offending link and sites.
func Along(ix *model.Index, src, dst int, links []int) (Path, error) {
	if src < 0 || src >= len(ix.Hosts) || dst < 0 || dst >= len(ix.Hosts) {
		return Path{}, fmt.Errorf("netpath: route from host %d to host %d: no such host: %w", src, dst, ErrBadRoute)
	}
	sites := ix.Fed.Sites
	at, want := ix.HostSite(src), ix.HostSite(dst)
	seen := make([]bool, len(sites))
	seen[at] = true
	for i, l := range links {
		if l < 0 || l >= len(ix.Fed.Links) {
			return Path{}, fmt.Errorf("netpath: route hop %d: no link %d: %w", i+1, l, ErrBadRoute)
		}
		lk := &ix.Fed.Links[l]
		a, b := ix.SiteByName[lk.A], ix.SiteByName[lk.B]
		if a != at && b != at {
			return Path{}, fmt.Errorf("netpath: route hop %d: link %s joins %s and %s, not site %s where the route is: %w",
				i+1, lk.Name, lk.A, lk.B, sites[at].Name, ErrBadRoute)
		}
		at = ix.LinkPeer(l, at)
		if seen[at] {
			return Path{}, fmt.Errorf("netpath: route hop %d: link %s returns to site %s: %w", i+1, lk.Name, sites[at].Name, ErrBadRoute)
		}
		seen[at] = true
	}
	if at != want {
		return Path{}, fmt.Errorf("netpath: route from %s ends at site %s, but %s is at site %s: %w",
			ix.Host(src).Name, sites[at].Name, ix.Host(dst).Name, sites[want].Name, ErrBadRoute)
	}
	return build(ix, src, dst, links), nil
}

// LinksNamed maps link names (model.Link.Name) to link indices; an unknown
// name is an error wrapping ErrBadRoute.
func LinksNamed(ix *model.Index, names []string) ([]int, error) {
	links := make([]int, len(names))
	for i, n := range names {
		l, ok := ix.LinkByName[n]
		if !ok {
			return nil, fmt.Errorf("netpath: route hop %d: no link named %q: %w", i+1, n, ErrBadRoute)
		}
		links[i] = l
	}
	return links, nil
}

// LinkNames returns the names of links, the inverse of LinksNamed.
func LinkNames(ix *model.Index, links []int) []string {
	names := make([]string, len(links))
	for i, l := range links {
		names[i] = ix.Fed.Links[l].Name
	}
	return names
}

// build assembles the path of a validated route.
func build(ix *model.Index, src, dst int, links []int) Path {
	p := Path{RTT: LANRTT, Links: links}
	p.Resources = make([]Resource, 0, len(links)+2)
	p.Resources = append(p.Resources, Resource{Kind: HostOut, ID: src})
	at := ix.HostSite(src)
	for _, l := range links {
		dir := 0
		if ix.SiteByName[ix.Fed.Links[l].A] != at {
			dir = 1
		}
		p.Resources = append(p.Resources, Resource{Kind: Link, ID: l, Dir: dir})
		p.RTT += time.Duration(ix.Fed.Links[l].RTTMs * float64(time.Millisecond))
		at = ix.LinkPeer(l, at)
	}
	p.Resources = append(p.Resources, Resource{Kind: HostIn, ID: dst})
	return p
}

// Capacity returns a resource's goodput in bytes/s. linkMbps, when not nil,
// overrides the links' bandwidth (degraded or cut links).
func Capacity(ix *model.Index, r Resource, linkMbps []float64) float64 {
	switch r.Kind {
	case HostOut, HostIn:
		return precopy.Goodput(model.MbpsToBytes(ix.Host(r.ID).NICMbps), 0)
	case Link:
		l := &ix.Fed.Links[r.ID]
		bw := l.BandwidthMbps
		if linkMbps != nil {
			bw = linkMbps[r.ID]
		}
		return precopy.Goodput(model.MbpsToBytes(math.Max(0, bw-l.BackgroundMbps)), l.TunnelOverheadBytes)
	}
	return 0
}

// FlowCap returns the most one migration can send per second: its bandwidth
// cap (bytes/s; 0 = none) and the TCP window limit over the path's RTT for
// the given number of parallel connections.
func FlowCap(bandwidthCap float64, rtt time.Duration, conns int) float64 {
	c := math.Inf(1)
	if bandwidthCap > 0 {
		c = bandwidthCap
	}
	if rtt > 0 {
		c = math.Min(c, float64(max(conns, 1))*TCPWindowBytes/rtt.Seconds())
	}
	return c
}

// Name returns a readable name for a resource.
func Name(ix *model.Index, r Resource) string {
	switch r.Kind {
	case HostOut:
		return "nic-out:" + ix.Host(r.ID).Name
	case HostIn:
		return "nic-in:" + ix.Host(r.ID).Name
	case Link:
		l := &ix.Fed.Links[r.ID]
		if r.Dir == 0 {
			return fmt.Sprintf("link:%s(%s→%s)", l.Name, l.A, l.B)
		}
		return fmt.Sprintf("link:%s(%s→%s)", l.Name, l.B, l.A)
	}
	return string(r.Kind)
}

// Transit returns the sites p crosses between its source's site and its
// destination's, in order (none for a path within a site or over one
// link).
func Transit(ix *model.Index, p Path) []int {
	if len(p.Links) < 2 || len(p.Resources) == 0 {
		return nil
	}
	at := ix.HostSite(p.Resources[0].ID)
	sites := make([]int, 0, len(p.Links)-1)
	for _, l := range p.Links[:len(p.Links)-1] {
		at = ix.LinkPeer(l, at)
		sites = append(sites, at)
	}
	return sites
}
