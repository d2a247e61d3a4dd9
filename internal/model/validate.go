package model

import (
	"cmp"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/refuge-project/refuge/internal/validate"
)

// Name rules, shared by validation and the JSON schemas.
const (
	// NamePattern is what every name (of a site, host, VM, …) must match.
	NamePattern = `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`
	// FQDNPattern is what a VM's DNS name must match (at most 253 bytes).
	FQDNPattern = `^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$`
	// MaxPort is the highest TCP port.
	MaxPort = 65535
	// MaxPriority is the highest VM priority.
	MaxPriority = 1000
	// MaxTunnelOverheadBytes bounds a link's per-packet tunnel overhead.
	MaxTunnelOverheadBytes = 400
	// MaxParallelConnections bounds a migration's multifd streams (QEMU
	// accepts at most 255 channels).
	MaxParallelConnections = 255
	// PowerModelPoints is the number of values in a power model (0, 10, …,
	// 100 % CPU).
	PowerModelPoints = 11
)

var (
	nameRE = regexp.MustCompile(NamePattern)
	fqdnRE = regexp.MustCompile(FQDNPattern)
)

// checkName records a problem unless name is set and well-formed, and
// reports whether it is.
func checkName(errs *validate.Errors, path, name string) bool {
	if !validate.Required(errs, path, name) {
		return false
	}
	if !nameRE.MatchString(name) {
		errs.Addf(path, "%q is not a valid name: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
		return false
	}
	return true
}

// checkFQDN records a problem unless name is empty or a valid DNS name.
func checkFQDN(errs *validate.Errors, path, name string) {
	if name != "" && (len(name) > 253 || !fqdnRE.MatchString(name)) {
		errs.Addf(path, "%q is not a valid DNS name", name)
	}
}

// checkGateway records a problem for each entry of a site's gateway
// addresses that is not an IP address or is listed twice.
func checkGateway(errs *validate.Errors, path string, addrs []string) {
	seen := map[netip.Addr]bool{}
	for i, a := range addrs {
		ip, err := netip.ParseAddr(a)
		switch {
		case err != nil || ip.Zone() != "":
			errs.Addf(validate.Index(path, i), "%q is not an IP address (the gateway's public IPv4 or IPv6 address, the DNS answer while a service runs at the site)", a)
		case seen[ip]:
			errs.Addf(validate.Index(path, i), "%s is listed twice", a)
		}
		seen[ip] = true
	}
}

// names is one namespace (sites, hosts, links, …): the names defined in it,
// each with the path where it was first defined. It checks definitions
// (well-formed, unique) and references (defined).
type names struct {
	what string
	at   map[string]string
	// unknown memoises the message for each unknown name referred to, so
	// that many references to one missing name cost one search for a
	// suggestion. Defining a name clears it.
	unknown map[string]string
}

// maxSuggestionSearches bounds the distinct unknown names of one namespace
// for which a suggestion is searched (each search compares with every
// defined name), so that a document full of bad references stays cheap.
const maxSuggestionSearches = 50

func newNames(what string) *names { return &names{what: what, at: map[string]string{}} }

// define checks a new name and records it; a duplicate keeps the first
// definition.
func (n *names) define(errs *validate.Errors, path, name string) {
	if !checkName(errs, path, name) {
		return
	}
	if prev, dup := n.at[name]; dup {
		errs.Addf(path, "duplicate %s name %q (first defined at %s)", n.what, name, prev)
		return
	}
	n.at[name] = path
	n.unknown = nil
}

// has reports whether name is defined.
func (n *names) has(name string) bool {
	_, ok := n.at[name]
	return ok
}

// ref records a problem unless name refers to a defined name (an empty name
// is reported as missing), and reports whether it does.
func (n *names) ref(errs *validate.Errors, path, name string) bool {
	if !validate.Required(errs, path, name) {
		return false
	}
	if n.has(name) {
		return true
	}
	msg, ok := n.unknown[name]
	if !ok {
		if len(n.unknown) < maxSuggestionSearches {
			msg = n.unknownMessage(name)
		} else {
			msg = fmt.Sprintf("unknown %s %q", n.what, name)
		}
		if n.unknown == nil {
			n.unknown = map[string]string{}
		}
		n.unknown[name] = msg
	}
	errs.Addf(path, "%s", msg)
	return false
}

func (n *names) unknownMessage(name string) string {
	known := make([]string, 0, len(n.at))
	for k := range n.at {
		known = append(known, k)
	}
	sort.Strings(known)
	switch s := validate.Suggest(name, known); {
	case s != "":
		return fmt.Sprintf("unknown %s %q (did you mean %q?)", n.what, name, s)
	case len(known) == 0:
		return fmt.Sprintf("unknown %s %q (none is defined)", n.what, name)
	case len(known) <= 8:
		return fmt.Sprintf("unknown %s %q (known: %s)", n.what, name, strings.Join(known, ", "))
	}
	return fmt.Sprintf("unknown %s %q", n.what, name)
}

// oneOf records a problem unless v is one of allowed, and reports whether
// it is.
func oneOf[T ~string](errs *validate.Errors, path string, v T, allowed ...T) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	errs.Addf(path, "must be one of %s, got %q", strings.Join(quoted, ", "), v)
	return false
}

// capacity is what a host offers, or what a VM needs, in the dimensions
// that cannot be overcommitted (vCPUs only for fitting a single VM).
type capacity struct {
	vcpu, memMiB, diskGiB int64
}

func (c capacity) covers(need capacity) bool {
	return c.vcpu >= need.vcpu && c.memMiB >= need.memMiB && c.diskGiB >= need.diskGiB
}

// fedCheck holds the state of one Federation.Validate run.
type fedCheck struct {
	f    *Federation
	errs validate.Errors

	powerModels, sites, fabrics, hosts, links, services, vms *names

	hostCap map[string]capacity // by host name (first definition), for hosts with valid capacities
	shapes  []capacity          // the Pareto frontier of valid host capacities
}

// Validate checks the federation and returns every problem found, each with
// its field path, as a validate.List. Empty link modes and VM storage modes
// count as their defaults (see ApplyDefaults).
//
// Beyond each field's own range it checks that names are unique per kind
// (host names across the whole federation, as VMs name their host), that
// every reference (link ends, VM hosts and services, service dependencies,
// host power models) names something defined, that service dependencies
// have no cycle, that every VM fits on at least one host, and that no host
// holds more memory or local disk than it has.
func (f *Federation) Validate() error {
	c := &fedCheck{
		f:           f,
		powerModels: newNames("power model"),
		sites:       newNames("site"),
		fabrics:     newNames("fabric"),
		hosts:       newNames("host"),
		links:       newNames("link"),
		services:    newNames("service"),
		vms:         newNames("VM"),
		hostCap:     map[string]capacity{},
	}
	checkName(&c.errs, "name", f.Name)
	c.checkPowerModels()
	c.checkSites()
	c.checkLinks()
	c.checkServices()
	c.checkVMs()
	return c.errs.Err()
}

func (c *fedCheck) checkPowerModels() {
	for i, pm := range c.f.PowerModels {
		p := validate.Index("power_models", i)
		if pm.Name == DefaultPowerModelName {
			c.errs.Addf(validate.Field(p, "name"), "%q is the built-in power model; give yours another name", pm.Name)
		} else {
			c.powerModels.define(&c.errs, validate.Field(p, "name"), pm.Name)
		}
		wp := validate.Field(p, "watts")
		if len(pm.Watts) != PowerModelPoints {
			c.errs.Addf(wp, "must list %d values (watts at 0, 10, …, 100 %% CPU), got %d", PowerModelPoints, len(pm.Watts))
		}
		for j, w := range pm.Watts {
			if validate.AtLeast(&c.errs, validate.Index(wp, j), w, 0) && j > 0 && w < pm.Watts[j-1] {
				c.errs.Addf(validate.Index(wp, j), "must not be below the previous value (%g): power draw cannot fall as load rises", pm.Watts[j-1])
			}
		}
	}
	c.powerModels.at[DefaultPowerModelName] = "built-in"
}

func (c *fedCheck) checkSites() {
	if len(c.f.Sites) == 0 {
		c.errs.Addf("sites", "at least one site is required")
	}
	for si, s := range c.f.Sites {
		sp := validate.Index("sites", si)
		c.sites.define(&c.errs, validate.Field(sp, "name"), s.Name)
		validate.Within(&c.errs, validate.Field(sp, "lat"), s.Lat, -90, 90)
		validate.Within(&c.errs, validate.Field(sp, "lon"), s.Lon, -180, 180)
		checkSeismicArea(&c.errs, validate.Field(sp, "seismic_area"), s.SeismicArea)
		validate.AtLeast(&c.errs, validate.Field(sp, "ups_minutes"), s.UPSMinutes, 0)
		validate.AtLeast(&c.errs, validate.Field(sp, "generator_minutes"), s.GeneratorMinutes, 0)
		checkGateway(&c.errs, validate.Field(sp, "gateway"), s.Gateway)
		if len(s.Fabrics) == 0 {
			c.errs.Addf(validate.Field(sp, "fabrics"), "at least one fabric is required")
		}
		for fi, fb := range s.Fabrics {
			fp := validate.Index(validate.Field(sp, "fabrics"), fi)
			c.fabrics.define(&c.errs, validate.Field(fp, "name"), fb.Name)
			if len(fb.Hosts) == 0 {
				c.errs.Addf(validate.Field(fp, "hosts"), "at least one host is required")
			}
			for hi := range fb.Hosts {
				c.checkHost(validate.Index(validate.Field(fp, "hosts"), hi), &fb.Hosts[hi])
			}
		}
	}
	c.shapes = paretoFrontier(c.shapes)
}

func (c *fedCheck) checkHost(hp string, h *Host) {
	first := !c.hosts.has(h.Name)
	c.hosts.define(&c.errs, validate.Field(hp, "name"), h.Name)
	cpuOK := validate.Greater(&c.errs, validate.Field(hp, "vcpu"), h.VCPU, 0)
	memOK := validate.Greater(&c.errs, validate.Field(hp, "memory_mib"), h.MemoryMiB, 0)
	diskOK := validate.AtLeast(&c.errs, validate.Field(hp, "disk_gib"), h.DiskGiB, 0)
	validate.Greater(&c.errs, validate.Field(hp, "nic_mbps"), h.NICMbps, 0)
	if h.PowerModel != "" {
		c.powerModels.ref(&c.errs, validate.Field(hp, "power_model"), h.PowerModel)
	}
	// Capacity checks use only hosts whose capacities are valid, so that
	// one broken host does not make every VM look homeless or overcommitted.
	if cpuOK && memOK && diskOK {
		hc := capacity{int64(h.VCPU), h.MemoryMiB, h.DiskGiB}
		c.shapes = append(c.shapes, hc)
		if first && c.hosts.has(h.Name) {
			c.hostCap[h.Name] = hc
		}
	}
}

// paretoFrontier returns the capacities not covered by another, so that
// "does any host fit this VM" looks at few candidates.
func paretoFrontier(all []capacity) []capacity {
	// Largest first, so that a dominating capacity is kept before the ones
	// it dominates.
	slices.SortFunc(all, func(a, b capacity) int {
		return cmp.Or(cmp.Compare(b.vcpu, a.vcpu), cmp.Compare(b.memMiB, a.memMiB), cmp.Compare(b.diskGiB, a.diskGiB))
	})
	var front []capacity
	for _, hc := range all {
		if !slices.ContainsFunc(front, func(f capacity) bool { return f.covers(hc) }) {
			front = append(front, hc)
		}
	}
	return front
}

func (c *fedCheck) checkLinks() {
	pairs := map[[2]string]string{}
	for li, l := range c.f.Links {
		lp := validate.Index("links", li)
		c.links.define(&c.errs, validate.Field(lp, "name"), l.Name)
		okA := c.sites.ref(&c.errs, validate.Field(lp, "a"), l.A)
		okB := c.sites.ref(&c.errs, validate.Field(lp, "b"), l.B)
		if okA && okB {
			if l.A == l.B {
				c.errs.Addf(validate.Field(lp, "b"), "a link must join two different sites, both ends are %q", l.A)
			} else if key := [2]string{min(l.A, l.B), max(l.A, l.B)}; pairs[key] != "" {
				c.errs.Addf(lp, "sites %q and %q are already joined by %s", l.A, l.B, pairs[key])
			} else {
				pairs[key] = lp
			}
		}
		bwOK := validate.Greater(&c.errs, validate.Field(lp, "bandwidth_mbps"), l.BandwidthMbps, 0)
		validate.AtLeast(&c.errs, validate.Field(lp, "rtt_ms"), l.RTTMs, 0)
		bgp := validate.Field(lp, "background_mbps")
		if oneOf(&c.errs, validate.Field(lp, "mode"), cmp.Or(l.Mode, LinkDedicated), LinkDedicated, LinkShared) {
			switch {
			case cmp.Or(l.Mode, LinkDedicated) == LinkDedicated:
				if l.BackgroundMbps != 0 {
					c.errs.Addf(bgp, "only a shared link carries background traffic (set mode: shared)")
				}
			case validate.AtLeast(&c.errs, bgp, l.BackgroundMbps, 0) && bwOK && l.BackgroundMbps >= l.BandwidthMbps:
				c.errs.Addf(bgp, "must be below bandwidth_mbps (%g), got %g", l.BandwidthMbps, l.BackgroundMbps)
			}
		}
		validate.Within(&c.errs, validate.Field(lp, "tunnel_overhead_bytes"), l.TunnelOverheadBytes, 0, MaxTunnelOverheadBytes)
	}
}

func (c *fedCheck) checkServices() {
	for i, s := range c.f.Services {
		sp := validate.Index("services", i)
		c.services.define(&c.errs, validate.Field(sp, "name"), s.Name)
		checkFQDN(&c.errs, validate.Field(sp, "fqdn"), s.FQDN)
		validate.Within(&c.errs, validate.Field(sp, "port"), s.Port, 0, MaxPort)
	}
	for i, s := range c.f.Services {
		dp := validate.Field(validate.Index("services", i), "depends_on")
		for j, d := range s.DependsOn {
			p := validate.Index(dp, j)
			switch {
			case !c.services.ref(&c.errs, p, d):
			case d == s.Name:
				c.errs.Addf(p, "a service cannot depend on itself")
			case slices.Index(s.DependsOn, d) < j:
				c.errs.Addf(p, "%q is listed twice", d)
			}
		}
	}
	for _, cyc := range serviceCycles(c.f.Services) {
		c.errs.Addf(cyc.path, "dependency cycle: %s", strings.Join(cyc.names, " → "))
	}
}

// cycle is a service dependency cycle and the depends_on entry that closes
// it.
type cycle struct {
	path  string
	names []string
}

// serviceCycles finds dependency cycles by depth-first search (iterative,
// so that long chains cannot exhaust the stack): every dependency edge that
// leads back to a service still on the search path closes a cycle. Every
// cyclic group of services yields at least one. Self-dependencies and
// unknown or duplicate services are left to the other checks.
func serviceCycles(svcs []Service) []cycle {
	index := make(map[string]int, len(svcs))
	for i, s := range svcs {
		if _, dup := index[s.Name]; !dup {
			index[s.Name] = i
		}
	}
	const (
		unvisited = iota
		onPath
		done
	)
	state := make([]int, len(svcs))
	type frame struct{ svc, next int }
	var found []cycle
	for root := range svcs {
		if state[root] != unvisited || index[svcs[root].Name] != root {
			continue
		}
		stack := []frame{{svc: root}}
		state[root] = onPath
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			deps := svcs[top.svc].DependsOn
			if top.next == len(deps) {
				state[top.svc] = done
				stack = stack[:len(stack)-1]
				continue
			}
			j := top.next
			top.next++
			d, ok := index[deps[j]]
			if !ok || d == top.svc {
				continue
			}
			switch state[d] {
			case unvisited:
				state[d] = onPath
				stack = append(stack, frame{svc: d})
			case onPath:
				var names []string
				for k := len(stack) - 1; k >= 0; k-- {
					if stack[k].svc == d {
						for _, fr := range stack[k:] {
							names = append(names, svcs[fr.svc].Name)
						}
						break
					}
				}
				found = append(found, cycle{
					path:  validate.Index(validate.Field(validate.Index("services", top.svc), "depends_on"), j),
					names: append(names, svcs[d].Name),
				})
			}
		}
	}
	return found
}

func (c *fedCheck) checkVMs() {
	// free is what each host has left after the VMs placed on it so far.
	// Subtracting from what remains (rather than summing what is used)
	// cannot overflow: a host is reported, and no longer counted, as soon as
	// one resource goes negative.
	free := map[string]*capacity{}
	overMem := map[string]bool{}  // hosts already reported as short of memory
	overDisk := map[string]bool{} // hosts already reported as short of local disk
	fits := map[capacity]bool{}   // memoised fit results by VM shape
	for i := range c.f.VMs {
		v := &c.f.VMs[i]
		vp := validate.Index("vms", i)
		c.vms.define(&c.errs, validate.Field(vp, "name"), v.Name)
		hostOK := c.hosts.ref(&c.errs, validate.Field(vp, "host"), v.Host)
		cpuOK := validate.Greater(&c.errs, validate.Field(vp, "vcpu"), v.VCPU, 0)
		memOK := validate.Greater(&c.errs, validate.Field(vp, "memory_mib"), v.MemoryMiB, 0)
		diskOK := validate.AtLeast(&c.errs, validate.Field(vp, "disk_gib"), v.DiskGiB, 0)
		storage := cmp.Or(v.Storage, StorageShared)
		if oneOf(&c.errs, validate.Field(vp, "storage"), storage, StorageShared, StorageLocal) &&
			storage == StorageLocal && diskOK && v.DiskGiB == 0 {
			c.errs.Addf(validate.Field(vp, "disk_gib"), "must be > 0 for storage local (the disk is copied with the VM)")
		}
		validate.AtLeast(&c.errs, validate.Field(vp, "dirty_rate_mibps"), v.DirtyRateMiBps, 0)
		if memOK {
			validate.Within(&c.errs, validate.Field(vp, "working_set_mib"), v.WorkingSetMiB, 0, float64(v.MemoryMiB))
		} else {
			validate.AtLeast(&c.errs, validate.Field(vp, "working_set_mib"), v.WorkingSetMiB, 0)
		}
		validate.Within(&c.errs, validate.Field(vp, "priority"), v.Priority, 0, MaxPriority)
		if v.Service != "" {
			c.services.ref(&c.errs, validate.Field(vp, "service"), v.Service)
		}
		checkFQDN(&c.errs, validate.Field(vp, "fqdn"), v.FQDN)
		if v.AntiAffinity != "" {
			checkName(&c.errs, validate.Field(vp, "anti_affinity"), v.AntiAffinity)
		}
		if !cpuOK || !memOK || !diskOK {
			continue
		}
		need := capacity{int64(v.VCPU), v.MemoryMiB, 0}
		if storage == StorageLocal {
			need.diskGiB = v.DiskGiB
		}
		fit, known := fits[need]
		if !known {
			fit = slices.ContainsFunc(c.shapes, func(hc capacity) bool { return hc.covers(need) })
			fits[need] = fit
		}
		if !fit && len(c.shapes) > 0 {
			c.errs.Addf(vp, "fits no host: no host has at least %d vCPUs, %d MiB of memory and %d GiB of local disk", need.vcpu, need.memMiB, need.diskGiB)
		}
		hc, capOK := c.hostCap[v.Host]
		if !hostOK || !capOK {
			continue
		}
		fr := free[v.Host]
		if fr == nil {
			fr = new(capacity)
			*fr = hc
			free[v.Host] = fr
		}
		if !overMem[v.Host] {
			if fr.memMiB -= need.memMiB; fr.memMiB < 0 {
				overMem[v.Host] = true
				c.errs.Addf(validate.Field(vp, "host"), "host %q is overcommitted: the VMs placed on it up to here need %d MiB of memory more than its %d MiB (memory is never overcommitted)", v.Host, -fr.memMiB, hc.memMiB)
			}
		}
		if !overDisk[v.Host] {
			if fr.diskGiB -= need.diskGiB; fr.diskGiB < 0 {
				overDisk[v.Host] = true
				c.errs.Addf(validate.Field(vp, "host"), "host %q is overcommitted: the local-storage VMs placed on it up to here need %d GiB of disk more than its %d GiB", v.Host, -fr.diskGiB, hc.diskGiB)
			}
		}
	}
}

// Validate checks the scenario and returns every problem found, each with
// its field path, as a validate.List. References to sites, hosts and links
// are checked against f; with a nil f only the scenario's own rules are
// checked.
//
// Rules: each threatened site is threatened once, with a deadline > 0;
// events are in time order (at >= 0, never before the previous event); each
// event kind names exactly the object it needs (site_lost and
// deadline_changed a site, host_failed a host, link_degraded and link_cut a
// link), link_degraded a bandwidth > 0, and deadline_changed a deadline > 0
// that is not before the event itself.
func (s *Scenario) Validate(f *Federation) error {
	var errs validate.Errors
	checkName(&errs, "name", s.Name)
	sites, hosts, links := newNames("site"), newNames("host"), newNames("link")
	if f != nil {
		for si := range f.Sites {
			sites.at[f.Sites[si].Name] = validate.Index("sites", si)
			for fi, fb := range f.Sites[si].Fabrics {
				for hi, h := range fb.Hosts {
					hosts.at[h.Name] = fmt.Sprintf("sites[%d].fabrics[%d].hosts[%d]", si, fi, hi)
				}
			}
		}
		for li, l := range f.Links {
			links.at[l.Name] = validate.Index("links", li)
		}
	}
	// ref checks a reference against the federation when there is one.
	ref := func(n *names, path, name string) {
		if f == nil {
			checkName(&errs, path, name)
		} else {
			n.ref(&errs, path, name)
		}
	}
	threatened := map[string]string{}
	for i, t := range s.Threats {
		p := validate.Index("threats", i)
		ref(sites, validate.Field(p, "site"), t.Site)
		if prev, dup := threatened[t.Site]; dup && t.Site != "" {
			errs.Addf(validate.Field(p, "site"), "site %q is already threatened at %s", t.Site, prev)
		} else {
			threatened[t.Site] = p
		}
		validate.Greater(&errs, validate.Field(p, "deadline"), t.Deadline, 0)
	}
	for i, e := range s.Events {
		p := validate.Index("events", i)
		if validate.AtLeast(&errs, validate.Field(p, "at"), e.At, 0) && i > 0 && e.At < s.Events[i-1].At {
			errs.Addf(validate.Field(p, "at"), "events must be in time order: %v is before the previous event's %v", e.At, s.Events[i-1].At)
		}
		if !oneOf(&errs, validate.Field(p, "kind"), e.Kind, EventKinds...) {
			continue
		}
		// Each field is either needed by the event's kind or must be absent.
		needs := map[string]bool{
			"site":           e.Kind == EventSiteLost || e.Kind == EventDeadlineChanged,
			"host":           e.Kind == EventHostFailed,
			"link":           e.Kind == EventLinkDegraded || e.Kind == EventLinkCut,
			"bandwidth_mbps": e.Kind == EventLinkDegraded,
			"deadline":       e.Kind == EventDeadlineChanged,
		}
		set := map[string]bool{
			"site": e.Site != "", "host": e.Host != "", "link": e.Link != "",
			"bandwidth_mbps": e.BandwidthMbps != 0, "deadline": e.Deadline != 0,
		}
		for _, field := range []string{"site", "host", "link", "bandwidth_mbps", "deadline"} {
			if !needs[field] && set[field] {
				errs.Addf(validate.Field(p, field), "is not used by %s events", e.Kind)
			}
		}
		switch {
		case needs["site"]:
			ref(sites, validate.Field(p, "site"), e.Site)
		case needs["host"]:
			ref(hosts, validate.Field(p, "host"), e.Host)
		case needs["link"]:
			ref(links, validate.Field(p, "link"), e.Link)
		}
		if needs["bandwidth_mbps"] {
			if e.BandwidthMbps == 0 {
				errs.Addf(validate.Field(p, "bandwidth_mbps"), "is required for %s events (use a link_cut event for a link that carries nothing)", e.Kind)
			} else {
				validate.Greater(&errs, validate.Field(p, "bandwidth_mbps"), e.BandwidthMbps, 0)
			}
		}
		if needs["deadline"] && validate.Greater(&errs, validate.Field(p, "deadline"), e.Deadline, 0) && e.Deadline < e.At {
			errs.Addf(validate.Field(p, "deadline"), "is %v, before the event itself (at %v)", e.Deadline, e.At)
		}
	}
	return errs.Err()
}

// Validate checks the policy and returns every problem found, each with its
// field path, as a validate.List. The built-in policies are valid.
func (p *Policy) Validate() error {
	var errs validate.Errors
	checkName(&errs, "name", p.Name)
	validate.AtLeast(&errs, "vcpu_overcommit", p.VCPUOvercommit, 1)
	validate.AtLeast(&errs, "safety_margin", p.SafetyMargin, 0)
	oneOf(&errs, "order", p.Order, OrderPriority, OrderDeadline, OrderFIFO)
	if p.Placement != "" { // empty: PlacementEarliestFinish
		oneOf(&errs, "placement", p.Placement, PlacementNames...)
	}
	if p.WatchSites != "" { // empty: WatchAllow
		oneOf(&errs, "watch_sites", p.WatchSites, WatchAllow, WatchAvoid, WatchExclude)
	}

	m := &p.Migration
	validate.AtLeast(&errs, "migration.max_bandwidth_mibps", m.MaxBandwidthMiBps, 0)
	validate.Greater(&errs, "migration.max_downtime", m.MaxDowntime, 0)
	validate.Within(&errs, "migration.parallel_connections", m.ParallelConnections, 0, MaxParallelConnections)

	c := &p.Concurrency
	validate.AtLeast(&errs, "concurrency.global", c.Global, 0)
	validate.AtLeast(&errs, "concurrency.per_fabric", c.PerFabric, 0)
	validate.AtLeast(&errs, "concurrency.per_host_out", c.PerHostOut, 0)
	validate.AtLeast(&errs, "concurrency.per_host_in", c.PerHostIn, 0)
	validate.AtLeast(&errs, "concurrency.per_link", c.PerLinkLimit, 0)
	validate.AtLeast(&errs, "concurrency.gain_threshold", c.GainThreshold, 0)
	if c.Adaptive {
		// The feedback controller needs all of its parameters.
		validate.Greater(&errs, "concurrency.interval", c.Interval, 0)
		if validate.AtLeast(&errs, "concurrency.initial_per_link", c.InitialPerLink, 1) && c.PerLinkLimit > 0 && c.InitialPerLink > c.PerLinkLimit {
			errs.Addf("concurrency.initial_per_link", "must not exceed per_link (%d), got %d", c.PerLinkLimit, c.InitialPerLink)
		}
		validate.Between(&errs, "concurrency.decrease_factor", c.DecreaseFactor, 0, 1)
	} else {
		validate.AtLeast(&errs, "concurrency.interval", c.Interval, 0)
		validate.AtLeast(&errs, "concurrency.initial_per_link", c.InitialPerLink, 0)
		if validate.AtLeast(&errs, "concurrency.decrease_factor", c.DecreaseFactor, 0) && c.DecreaseFactor >= 1 {
			errs.Addf("concurrency.decrease_factor", "must be below 1, got %g", c.DecreaseFactor)
		}
	}
	return errs.Err()
}
