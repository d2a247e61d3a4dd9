package evacsim

import (
	"math"
	"sort"
	"time"

	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/planner"
)

// profile is a resource's capacity over time: capacity caps[i] from
// times[i] on (times[0] == 0).
type profile struct {
	times []time.Duration
	caps  []float64
}

// timeFor returns the earliest time by which bytes can have crossed.
func (p profile) timeFor(bytes float64) time.Duration {
	var t0 time.Duration
	for i, c := range p.caps {
		end := time.Duration(math.MaxInt64)
		if i+1 < len(p.times) {
			end = p.times[i+1]
		}
		t0 = p.times[i]
		if c > 0 {
			need := time.Duration(bytes / c * float64(time.Second))
			if end == time.Duration(math.MaxInt64) || t0+need <= end {
				return t0 + need
			}
			bytes -= c * (end - t0).Seconds()
		}
	}
	return time.Duration(math.MaxInt64)
}

// evacuatedLowerBound returns the least possible makespan for moving the VMs
// that this run evacuated, to where they went: the largest of, over every
// resource they crossed (source NIC, WAN link directions, the threatened
// site's egress over all its links, destination NIC), the time to carry
// their bytes at the resource's capacity — following the scenario's link
// changes — and of each VM's own solo migration time. Bytes and solo times
// are the planner's best-case (solo) predictions.
func evacuatedLowerBound(ix *model.Index, o Options, rep executor.Report) (time.Duration, string) {
	linkProfiles := linkCapacityProfiles(ix, o.Scenario)
	type load struct {
		bytes float64
		prof  profile
	}
	loads := map[string]*load{}
	add := func(name string, prof profile, bytes float64) {
		l := loads[name]
		if l == nil {
			l = &load{prof: prof}
			loads[name] = l
		}
		l.bytes += bytes
	}
	var best time.Duration
	bottleneck := ""
	for v, r := range rep.VMs {
		if r.Status != executor.StatusMigrated {
			continue
		}
		from, to := ix.VMHost[v], ix.HostByName[r.To]
		cost, ok := planner.Cost(ix, o.Policy, v, from, to, nil)
		if !ok {
			continue
		}
		if cost.Solo > best {
			best, bottleneck = cost.Solo, "solo migration of "+r.Name
		}
		for _, res := range cost.Path.Resources {
			var prof profile
			if res.Kind == netpath.Link {
				prof = linkProfiles[res]
			} else {
				prof = profile{times: []time.Duration{0}, caps: []float64{netpath.Capacity(ix, res, nil)}}
			}
			add(netpath.Name(ix, res), prof, cost.Bytes)
		}
		if len(cost.Path.Links) > 0 {
			s := ix.HostSite(from)
			add("egress:"+ix.Fed.Sites[s].Name, egressProfile(ix, s, linkProfiles), cost.Bytes)
		}
	}
	names := make([]string, 0, len(loads))
	for n := range loads {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if t := loads[n].prof.timeFor(loads[n].bytes); t > best {
			best, bottleneck = t, n
		}
	}
	return best, bottleneck
}

// linkCapacityProfiles follows the scenario's link events.
func linkCapacityProfiles(ix *model.Index, sc *model.Scenario) map[netpath.Resource]profile {
	out := map[netpath.Resource]profile{}
	events := append([]model.Event(nil), sc.Events...)
	sort.SliceStable(events, func(i, j int) bool { return events[i].At < events[j].At })
	for l := range ix.Fed.Links {
		for dir := range 2 {
			r := netpath.Resource{Kind: netpath.Link, ID: l, Dir: dir}
			p := profile{times: []time.Duration{0}, caps: []float64{netpath.Capacity(ix, r, nil)}}
			override := make([]float64, len(ix.Fed.Links))
			for i := range override {
				override[i] = ix.Fed.Links[i].BandwidthMbps
			}
			for _, ev := range events {
				if ev.Link != ix.Fed.Links[l].Name || (ev.Kind != model.EventLinkDegraded && ev.Kind != model.EventLinkCut) {
					continue
				}
				override[l] = ev.BandwidthMbps
				if ev.Kind == model.EventLinkCut {
					override[l] = 0
				}
				p.times = append(p.times, ev.At.D())
				p.caps = append(p.caps, netpath.Capacity(ix, r, override))
			}
			out[r] = p
		}
	}
	return out
}

// egressProfile sums the outbound capacity of every link of site s.
func egressProfile(ix *model.Index, s int, links map[netpath.Resource]profile) profile {
	var parts []profile
	for l := range ix.Fed.Links {
		lk := &ix.Fed.Links[l]
		switch s {
		case ix.SiteByName[lk.A]:
			parts = append(parts, links[netpath.Resource{Kind: netpath.Link, ID: l, Dir: 0}])
		case ix.SiteByName[lk.B]:
			parts = append(parts, links[netpath.Resource{Kind: netpath.Link, ID: l, Dir: 1}])
		}
	}
	var times []time.Duration
	for _, p := range parts {
		times = append(times, p.times...)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	out := profile{}
	for i, t := range times {
		if i > 0 && t == times[i-1] {
			continue
		}
		sum := 0.0
		for _, p := range parts {
			sum += p.at(t)
		}
		out.times = append(out.times, t)
		out.caps = append(out.caps, sum)
	}
	return out
}

// at returns the capacity at time t.
func (p profile) at(t time.Duration) float64 {
	c := 0.0
	for i, ti := range p.times {
		if ti <= t {
			c = p.caps[i]
		}
	}
	return c
}
