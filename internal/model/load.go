package model

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/refuge-project/refuge/internal/strictyaml"
	"github.com/refuge-project/refuge/internal/validate"
)

// ParseFederation decodes and validates a federation document.
func ParseFederation(data []byte) (*Federation, error) {
	var f Federation
	if err := strictyaml.Decode(data, &f); err != nil {
		return nil, err
	}
	f.applyDefaults()
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// LoadFederation reads and parses a federation file.
func LoadFederation(path string) (*Federation, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read federation: %w", err)
	}
	f, err := ParseFederation(data)
	if err != nil {
		return nil, fmt.Errorf("federation %s: %w", path, err)
	}
	return f, nil
}

// ParseScenario decodes a scenario and validates it against f.
func ParseScenario(data []byte, f *Federation) (*Scenario, error) {
	var s Scenario
	if err := strictyaml.Decode(data, &s); err != nil {
		return nil, err
	}
	if err := s.Validate(f); err != nil {
		return nil, err
	}
	return &s, nil
}

// LoadScenario reads and parses a scenario file.
func LoadScenario(path string, f *Federation) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	s, err := ParseScenario(data, f)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

func (f *Federation) applyDefaults() {
	for i := range f.Links {
		if f.Links[i].Mode == "" {
			f.Links[i].Mode = LinkDedicated
		}
	}
	for i := range f.VMs {
		if f.VMs[i].Storage == "" {
			f.VMs[i].Storage = StorageShared
		}
	}
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	fqdnRE = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$`)
)

// checkName validates a name and its uniqueness within seen.
func checkName(errs *validate.Errors, path, name string, seen map[string]string) {
	switch {
	case name == "":
		errs.Addf(path, "is required")
	case !nameRE.MatchString(name):
		errs.Addf(path, "%q must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	default:
		if prev, dup := seen[name]; dup {
			errs.Addf(path, "duplicate name %q (already used at %s)", name, prev)
			return
		}
		seen[name] = path
	}
}

// Validate checks the federation and returns every problem found, each with
// its field path, as a validate.List.
func (f *Federation) Validate() error {
	var errs validate.Errors
	if f.Name == "" {
		errs.Addf("name", "is required")
	}
	powerModels := map[string]bool{DefaultPowerModelName: true}
	seenPM := map[string]string{}
	for i, pm := range f.PowerModels {
		p := validate.Index("power_models", i)
		checkName(&errs, p+".name", pm.Name, seenPM)
		powerModels[pm.Name] = true
		if len(pm.Watts) != 11 {
			errs.Addf(p+".watts", "must list 11 values (0, 10, …, 100 %% CPU), got %d", len(pm.Watts))
		}
		for j, w := range pm.Watts {
			if w < 0 {
				errs.Addf(validate.Index(p+".watts", j), "must be >= 0")
			}
			if j > 0 && w < pm.Watts[j-1] {
				errs.Addf(validate.Index(p+".watts", j), "must not be below the previous value")
			}
		}
	}
	if len(f.Sites) == 0 {
		errs.Addf("sites", "at least one site is required")
	}
	seenSite, seenFabric, seenHost := map[string]string{}, map[string]string{}, map[string]string{}
	type hostCap struct{ vcpu, mem, disk int64 }
	hostCaps := map[string]hostCap{}
	var maxVCPU, maxMem, maxDisk int64
	for si, s := range f.Sites {
		sp := validate.Index("sites", si)
		checkName(&errs, sp+".name", s.Name, seenSite)
		if s.Lat < -90 || s.Lat > 90 {
			errs.Addf(sp+".lat", "must be within [-90, 90], got %g", s.Lat)
		}
		if s.Lon < -180 || s.Lon > 180 {
			errs.Addf(sp+".lon", "must be within [-180, 180], got %g", s.Lon)
		}
		if s.UPSMinutes < 0 {
			errs.Addf(sp+".ups_minutes", "must be >= 0")
		}
		if s.GeneratorMinutes < 0 {
			errs.Addf(sp+".generator_minutes", "must be >= 0")
		}
		if len(s.Fabrics) == 0 {
			errs.Addf(sp+".fabrics", "at least one fabric is required")
		}
		for fi, fb := range s.Fabrics {
			fp := validate.Index(sp+".fabrics", fi)
			checkName(&errs, fp+".name", fb.Name, seenFabric)
			if len(fb.Hosts) == 0 {
				errs.Addf(fp+".hosts", "at least one host is required")
			}
			for hi, h := range fb.Hosts {
				hp := validate.Index(fp+".hosts", hi)
				checkName(&errs, hp+".name", h.Name, seenHost)
				if h.VCPU <= 0 {
					errs.Addf(hp+".vcpu", "must be > 0")
				}
				if h.MemoryMiB <= 0 {
					errs.Addf(hp+".memory_mib", "must be > 0")
				}
				if h.DiskGiB < 0 {
					errs.Addf(hp+".disk_gib", "must be >= 0")
				}
				if h.NICMbps <= 0 {
					errs.Addf(hp+".nic_mbps", "must be > 0")
				}
				if h.PowerModel != "" && !powerModels[h.PowerModel] {
					errs.Addf(hp+".power_model", "unknown power model %q", h.PowerModel)
				}
				hostCaps[h.Name] = hostCap{int64(h.VCPU), h.MemoryMiB, h.DiskGiB}
				maxVCPU, maxMem, maxDisk = max(maxVCPU, int64(h.VCPU)), max(maxMem, h.MemoryMiB), max(maxDisk, h.DiskGiB)
			}
		}
	}
	seenLink := map[string]string{}
	pairs := map[[2]string]string{}
	for li, l := range f.Links {
		lp := validate.Index("links", li)
		checkName(&errs, lp+".name", l.Name, seenLink)
		_, okA := seenSite[l.A]
		_, okB := seenSite[l.B]
		if !okA {
			errs.Addf(lp+".a", "unknown site %q", l.A)
		}
		if !okB {
			errs.Addf(lp+".b", "unknown site %q", l.B)
		}
		if okA && okB && l.A == l.B {
			errs.Addf(lp+".b", "a link must join two different sites")
		}
		key := [2]string{min(l.A, l.B), max(l.A, l.B)}
		if prev, dup := pairs[key]; dup && okA && okB {
			errs.Addf(lp, "sites %s and %s are already joined by %s", l.A, l.B, prev)
		}
		pairs[key] = lp
		if l.BandwidthMbps <= 0 {
			errs.Addf(lp+".bandwidth_mbps", "must be > 0")
		}
		if l.RTTMs < 0 {
			errs.Addf(lp+".rtt_ms", "must be >= 0")
		}
		switch l.Mode {
		case LinkDedicated:
			if l.BackgroundMbps != 0 {
				errs.Addf(lp+".background_mbps", "only a shared link carries background traffic")
			}
		case LinkShared:
			if l.BackgroundMbps < 0 || (l.BandwidthMbps > 0 && l.BackgroundMbps >= l.BandwidthMbps) {
				errs.Addf(lp+".background_mbps", "must be >= 0 and below bandwidth_mbps (%g)", l.BandwidthMbps)
			}
		default:
			errs.Addf(lp+".mode", "must be %q or %q, got %q", LinkDedicated, LinkShared, l.Mode)
		}
		if l.TunnelOverheadBytes < 0 || l.TunnelOverheadBytes > 400 {
			errs.Addf(lp+".tunnel_overhead_bytes", "must be within [0, 400]")
		}
	}
	seenSvc := map[string]string{}
	for i, s := range f.Services {
		checkName(&errs, validate.Index("services", i)+".name", s.Name, seenSvc)
	}
	for i, s := range f.Services {
		for j, d := range s.DependsOn {
			if _, ok := seenSvc[d]; !ok {
				errs.Addf(validate.Index(validate.Index("services", i)+".depends_on", j), "unknown service %q", d)
			} else if d == s.Name {
				errs.Addf(validate.Index(validate.Index("services", i)+".depends_on", j), "a service cannot depend on itself")
			}
		}
	}
	if cycle := serviceCycle(f.Services); cycle != nil {
		errs.Addf("services", "dependency cycle: %s", strings.Join(cycle, " → "))
	}
	seenVM := map[string]string{}
	used := map[string]*hostCap{}
	for i, v := range f.VMs {
		vp := validate.Index("vms", i)
		checkName(&errs, vp+".name", v.Name, seenVM)
		hc, hostOK := hostCaps[v.Host]
		if v.Host == "" {
			errs.Addf(vp+".host", "is required")
		} else if !hostOK {
			errs.Addf(vp+".host", "unknown host %q", v.Host)
		}
		if v.VCPU <= 0 {
			errs.Addf(vp+".vcpu", "must be > 0")
		}
		if v.MemoryMiB <= 0 {
			errs.Addf(vp+".memory_mib", "must be > 0")
		}
		if v.DiskGiB < 0 {
			errs.Addf(vp+".disk_gib", "must be >= 0")
		}
		if v.Storage != StorageShared && v.Storage != StorageLocal {
			errs.Addf(vp+".storage", "must be %q or %q, got %q", StorageShared, StorageLocal, v.Storage)
		}
		if v.DirtyRateMiBps < 0 {
			errs.Addf(vp+".dirty_rate_mibps", "must be >= 0")
		}
		if v.WorkingSetMiB < 0 || (v.MemoryMiB > 0 && v.WorkingSetMiB > float64(v.MemoryMiB)) {
			errs.Addf(vp+".working_set_mib", "must be within [0, memory_mib]")
		}
		if v.Priority < 0 || v.Priority > 1000 {
			errs.Addf(vp+".priority", "must be within [0, 1000]")
		}
		if v.Service != "" {
			if _, ok := seenSvc[v.Service]; !ok {
				errs.Addf(vp+".service", "unknown service %q", v.Service)
			}
		}
		if v.FQDN != "" && (len(v.FQDN) > 253 || !fqdnRE.MatchString(v.FQDN)) {
			errs.Addf(vp+".fqdn", "%q is not a valid host name", v.FQDN)
		}
		if v.AntiAffinity != "" && !nameRE.MatchString(v.AntiAffinity) {
			errs.Addf(vp+".anti_affinity", "%q must be a name of letters, digits, '.', '_' or '-'", v.AntiAffinity)
		}
		diskNeed := int64(0)
		if v.Storage == StorageLocal {
			diskNeed = v.DiskGiB
		}
		if v.VCPU > 0 && v.MemoryMiB > 0 && len(hostCaps) > 0 && (int64(v.VCPU) > maxVCPU || v.MemoryMiB > maxMem || diskNeed > maxDisk) {
			errs.Addf(vp, "fits no host: needs %d vCPU, %d MiB memory, %d GiB local disk; the largest host offers %d vCPU, %d MiB, %d GiB",
				v.VCPU, v.MemoryMiB, diskNeed, maxVCPU, maxMem, maxDisk)
		}
		if hostOK {
			u := used[v.Host]
			if u == nil {
				u = &hostCap{}
				used[v.Host] = u
			}
			u.mem += max(v.MemoryMiB, 0)
			u.disk += max(diskNeed, 0)
			if u.mem > hc.mem {
				errs.Addf(vp+".host", "host %q has %d MiB of memory, but the VMs placed on it up to here need %d MiB", v.Host, hc.mem, u.mem)
			}
			if u.disk > hc.disk {
				errs.Addf(vp+".host", "host %q has %d GiB of disk, but the local-disk VMs placed on it up to here need %d GiB", v.Host, hc.disk, u.disk)
			}
		}
	}
	return errs.Err()
}

// serviceCycle returns one dependency cycle, or nil.
func serviceCycle(svcs []Service) []string {
	deps := map[string][]string{}
	for _, s := range svcs {
		deps[s.Name] = s.DependsOn
	}
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		state[n] = active
		stack = append(stack, n)
		for _, d := range deps[n] {
			if _, ok := deps[d]; !ok || d == n {
				continue
			}
			switch state[d] {
			case active:
				for i, s := range stack {
					if s == d {
						found = append(append([]string(nil), stack[i:]...), d)
					}
				}
				return true
			case unvisited:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return false
	}
	for _, s := range svcs {
		if state[s.Name] == unvisited && visit(s.Name) {
			return found
		}
	}
	return nil
}

// Validate checks the scenario against the federation it applies to.
func (s *Scenario) Validate(f *Federation) error {
	var errs validate.Errors
	sites, hosts, links := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, st := range f.Sites {
		sites[st.Name] = true
		for _, fb := range st.Fabrics {
			for _, h := range fb.Hosts {
				hosts[h.Name] = true
			}
		}
	}
	for _, l := range f.Links {
		links[l.Name] = true
	}
	if s.Name == "" {
		errs.Addf("name", "is required")
	}
	seen := map[string]string{}
	for i, t := range s.Threats {
		p := validate.Index("threats", i)
		if !sites[t.Site] {
			errs.Addf(p+".site", "unknown site %q", t.Site)
		} else if prev, dup := seen[t.Site]; dup {
			errs.Addf(p+".site", "site %q is already threatened at %s", t.Site, prev)
		}
		seen[t.Site] = p
		if t.Deadline <= 0 {
			errs.Addf(p+".deadline", "must be > 0")
		}
	}
	for i, e := range s.Events {
		p := validate.Index("events", i)
		if e.At < 0 {
			errs.Addf(p+".at", "must be >= 0")
		}
		needSite, needHost, needLink := false, false, false
		switch e.Kind {
		case EventSiteLost:
			needSite = true
		case EventHostFailed:
			needHost = true
		case EventLinkCut:
			needLink = true
		case EventLinkDegraded:
			needLink = true
			if e.BandwidthMbps <= 0 {
				errs.Addf(p+".bandwidth_mbps", "must be > 0 for %s (use link_cut for 0)", e.Kind)
			}
		case EventDeadlineChanged:
			needSite = true
			if e.Deadline <= 0 {
				errs.Addf(p+".deadline", "must be > 0 for %s", e.Kind)
			} else if e.Deadline < e.At {
				errs.Addf(p+".deadline", "is %s, before the event itself (%s)", e.Deadline.D(), e.At.D())
			}
		default:
			errs.Addf(p+".kind", "unknown event kind %q (known: %v)", e.Kind, EventKinds)
		}
		check := func(need bool, field, val string, known map[string]bool, what string) {
			switch {
			case need && val == "":
				errs.Addf(p+"."+field, "is required for %s", e.Kind)
			case need && !known[val]:
				errs.Addf(p+"."+field, "unknown %s %q", what, val)
			case !need && val != "":
				errs.Addf(p+"."+field, "is not used by %s", e.Kind)
			}
		}
		check(needSite, "site", e.Site, sites, "site")
		check(needHost, "host", e.Host, hosts, "host")
		check(needLink, "link", e.Link, links, "link")
	}
	return errs.Err()
}
