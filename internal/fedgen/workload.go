package fedgen

import (
	"fmt"
	"math"

	"github.com/refuge-project/refuge/internal/model"
)

// draft is a VM before placement, with the site it should preferably run
// on (-1: anywhere).
type draft struct {
	vm   model.VM
	home int
}

var appNames = []string{
	"moodle", "mahara", "gitlab", "wiki", "mail", "portal", "jupyter", "redmine",
	"nextcloud", "library", "sis", "lms", "cms", "grafana", "survey", "booking",
	"payroll", "ldap-sync", "dspace", "ojs",
}

// workload creates the services and VMs: shared infrastructure (dns, idp),
// applications of one to three dependent tiers, and standalone VMs.
func (g *gen) workload() []*draft {
	r := g.r
	var out []*draft
	inServices := int(math.Round(g.o.InServices * float64(g.o.VMs)))
	addService := func(name string, deps ...string) {
		g.fed.Services = append(g.fed.Services, model.Service{Name: name, DependsOn: deps})
	}
	// addTier creates a service's VMs (at most what is left to create).
	addTier := func(svc, role string, n, prio, home int, antiAffinity bool) {
		n = min(n, g.o.VMs-len(out))
		for i := range n {
			d := g.vm(fmt.Sprintf("%s-%02d", svc, i+1), role)
			d.home = home
			d.vm.Service = svc
			d.vm.Priority = prio
			d.vm.FQDN = d.vm.Name + ".example.ac.jp"
			if antiAffinity && n > 1 {
				d.vm.AntiAffinity = svc
			}
			out = append(out, d)
		}
	}
	infra := inServices >= 6
	if infra {
		addService("dns")
		addTier("dns", "infra", 2, 1000, -1, true)
		addService("idp", "dns")
		addTier("idp", "infra", 2, 950, -1, true)
	}
	for app := 0; len(out) < inServices; app++ {
		name := fmt.Sprintf("%s-%03d", appNames[app%len(appNames)], app/len(appNames)+1)
		home := g.randomSite()
		top := 100 * (1 + r.IntN(10))
		// Lower tiers are often marked less important than what uses them;
		// the planner raises them to their dependants' priority.
		lower := func() int { return 10 * int(float64(top)*(0.3+0.7*r.Float64())/10) }
		aa := r.IntN(10) < 7
		var below string // the tier the next one depends on
		deps := func() []string {
			var d []string
			if below != "" {
				d = append(d, below)
			}
			if infra && r.IntN(10) < 3 {
				d = append(d, "idp")
			}
			return d
		}
		switch tiers := 1 + r.IntN(10)/4; tiers { // 1: 40 %, 2: 40 %, 3: 20 %
		case 3:
			db, appT := name+"-db", name+"-app"
			var dbDeps []string
			if infra && r.IntN(10) < 4 {
				dbDeps = []string{"dns"}
			}
			addService(db, dbDeps...)
			addTier(db, "db", 1+r.IntN(2), lower(), home, aa)
			below = db
			addService(appT, deps()...)
			addTier(appT, "app", 1+r.IntN(3), lower(), home, aa)
			below = appT
			addService(name+"-web", deps()...)
			addTier(name+"-web", "web", 2+r.IntN(3), top, home, aa)
		case 2:
			db := name + "-db"
			addService(db)
			addTier(db, "db", 1+r.IntN(2), lower(), home, aa)
			below = db
			addService(name+"-web", deps()...)
			addTier(name+"-web", "web", 2+r.IntN(3), top, home, aa)
		default:
			addService(name, deps()...)
			addTier(name, "vm", 1+r.IntN(3), top, home, aa)
		}
	}
	for i := 0; len(out) < g.o.VMs; i++ {
		d := g.vm(fmt.Sprintf("vm-%06d", i+1), "vm")
		d.home = g.randomSite()
		d.vm.Priority = 50 * r.IntN(11)
		if r.IntN(2) == 0 {
			d.vm.FQDN = d.vm.Name + ".example.ac.jp"
		}
		out = append(out, d)
	}
	// Inventories list VMs by creation, not by importance.
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// randomSite picks a site with probability proportional to its memory.
func (g *gen) randomSite() int {
	x := g.r.Float64() * g.totalWeight
	for si, w := range g.siteWeight {
		if x < w {
			return si
		}
		x -= w
	}
	return len(g.siteWeight) - 1
}

// vm draws a VM of the given role: "web", "app", "db", "infra" or "vm"
// (standalone or single-tier).
func (g *gen) vm(name, role string) *draft {
	r := g.r
	pick := func(vs ...int) int { return vs[r.IntN(len(vs))] }
	var (
		vcpu             int
		memGiB           int
		dirtyLo, dirtyHi float64
		wsLo, wsHi       float64
		localShare       = g.o.LocalStorage
	)
	switch role {
	case "web":
		vcpu, memGiB, dirtyLo, dirtyHi, wsLo, wsHi = pick(2, 4), pick(2, 4, 8), 0, 20, 0.05, 0.3
	case "app":
		vcpu, memGiB, dirtyLo, dirtyHi, wsLo, wsHi = pick(2, 4, 8), pick(4, 8, 16), 5, 80, 0.1, 0.4
	case "db":
		vcpu, memGiB, dirtyLo, dirtyHi, wsLo, wsHi = pick(4, 8, 16), pick(8, 16, 32, 64), 20, 200, 0.2, 0.6
		localShare = min(1, 2*localShare)
	case "infra":
		vcpu, memGiB, dirtyLo, dirtyHi, wsLo, wsHi = 2, pick(2, 4), 1, 5, 0.05, 0.1
	default:
		vcpu = pick(1, 1, 2, 2, 2, 4, 4, 8, 16)
		// Mostly small VMs, a few large ones: 1–64 GiB.
		memGiB = pick(1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 16, 16, 32, 64)
		dirtyLo, dirtyHi, wsLo, wsHi = 0, 200, 0.05, 0.5
	}
	u := r.Float64()
	dirty := dirtyLo + (dirtyHi-dirtyLo)*u*u*u // most guests are quiet
	v := model.VM{
		Name:           name,
		VCPU:           vcpu,
		MemoryMiB:      int64(memGiB) * 1024,
		DiskGiB:        int64(20 + 10*r.IntN(9)),
		Storage:        model.StorageShared,
		DirtyRateMiBps: round(dirty, 1),
	}
	if r.IntN(100) >= 15 {
		v.WorkingSetMiB = math.Round(float64(v.MemoryMiB) * (wsLo + (wsHi-wsLo)*r.Float64()))
	}
	if r.Float64() < localShare {
		v.Storage = model.StorageLocal
		v.DiskGiB = int64(20 + 10*r.IntN(19))
	}
	return &draft{vm: v, home: -1}
}

// scaleToFill shrinks VM memory (never below 1 GiB) and vCPUs (never below
// one) when the sampled sizes would use more than MemoryFill of the hosts'
// memory or of their vCPUs at 4x overcommit.
func (g *gen) scaleToFill(vms []*draft) {
	var hostMem, vmMem, hostCPU, vmCPU float64
	for h, m := range g.hostMemMiB {
		hostMem += float64(m)
		hostCPU += float64(g.freeVCPU[h])
	}
	for _, d := range vms {
		vmMem += float64(d.vm.MemoryMiB)
		vmCPU += float64(d.vm.VCPU)
	}
	if budget := g.o.MemoryFill * hostMem; vmMem > budget {
		f := budget / vmMem
		for _, d := range vms {
			old := d.vm.MemoryMiB
			d.vm.MemoryMiB = max(1024, int64(float64(old)*f)/512*512)
			d.vm.WorkingSetMiB = math.Round(d.vm.WorkingSetMiB * float64(d.vm.MemoryMiB) / float64(old))
		}
	}
	if budget := g.o.MemoryFill * hostCPU; vmCPU > budget {
		f := budget / vmCPU
		for _, d := range vms {
			d.vm.VCPU = max(1, int(math.Round(float64(d.vm.VCPU)*f)))
		}
	}
}

// place puts every VM on a host without overcommitting memory or local
// disk: a few random hosts of its home site, then of any site, respecting
// vCPU (4x) and anti-affinity; failing that any host with room; failing
// that the emptiest host, shrinking the VM to fit. VMs that fit nowhere
// even at 256 MiB are dropped.
func (g *gen) place(vms []*draft) {
	r := g.r
	const tries = 6
	for _, d := range vms {
		v := &d.vm
		h := -1
		for t := 0; t < 2*tries && h < 0; t++ {
			var c int
			if t < tries && d.home >= 0 {
				hs := g.siteHosts[d.home]
				c = hs[r.IntN(len(hs))]
			} else {
				c = r.IntN(len(g.hostName))
			}
			if g.fits(c, v, true) {
				h = c
			}
		}
		if h < 0 {
			start := r.IntN(len(g.hostName))
			for i := range g.hostName {
				if c := (start + i) % len(g.hostName); g.fits(c, v, false) {
					h = c
					break
				}
			}
		}
		if h < 0 {
			h = g.shrinkToFit(v)
			if h < 0 {
				continue
			}
		}
		v.Host = g.hostName[h]
		g.freeMem[h] -= v.MemoryMiB
		if v.Storage == model.StorageLocal {
			g.freeDisk[h] -= v.DiskGiB
		}
		g.freeVCPU[h] -= v.VCPU
		if v.AntiAffinity != "" {
			if g.groupsOn[h] == nil {
				g.groupsOn[h] = map[string]bool{}
			}
			g.groupsOn[h][v.AntiAffinity] = true
		}
		g.fed.VMs = append(g.fed.VMs, *v)
	}
}

// fits reports whether v fits host h; strict also checks vCPU and
// anti-affinity.
func (g *gen) fits(h int, v *model.VM, strict bool) bool {
	if g.freeMem[h] < v.MemoryMiB || (v.Storage == model.StorageLocal && g.freeDisk[h] < v.DiskGiB) {
		return false
	}
	return !strict || (g.freeVCPU[h] >= v.VCPU && !g.groupsOn[h][v.AntiAffinity])
}

// shrinkToFit resizes v to the host with the most free memory and returns
// that host, or -1 when even 256 MiB do not fit anywhere.
func (g *gen) shrinkToFit(v *model.VM) int {
	best := 0
	for h := range g.freeMem {
		if g.freeMem[h] > g.freeMem[best] {
			best = h
		}
	}
	free := g.freeMem[best] / 256 * 256
	if free < 256 {
		return -1
	}
	if v.MemoryMiB > free {
		v.WorkingSetMiB = math.Min(v.WorkingSetMiB, float64(free))
		v.MemoryMiB = free
	}
	if v.Storage == model.StorageLocal && g.freeDisk[best] < v.DiskGiB {
		v.Storage = model.StorageShared
	}
	return best
}
