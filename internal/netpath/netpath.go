// Package netpath describes the bandwidth resources a migration crosses —
// the source host's NIC, the WAN links on the route, the destination host's
// NIC — and their capacities as TCP goodput, so that the planner's
// predictions and the simulator's fair sharing use the same numbers.
package netpath

import (
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

// Between returns the path from host src to host dst, or false when the
// destination's site cannot be reached.
func Between(ix *model.Index, src, dst int) (Path, bool) {
	ss, ds := ix.HostSite(src), ix.HostSite(dst)
	links, ok := ix.Route(ss, ds)
	if !ok {
		return Path{}, false
	}
	p := Path{RTT: LANRTT, Links: links}
	p.Resources = append(p.Resources, Resource{Kind: HostOut, ID: src})
	at := ss
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
	return p, true
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
