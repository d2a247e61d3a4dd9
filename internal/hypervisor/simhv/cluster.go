// Package simhv implements hypervisor.Driver on the discrete-event
// simulator: a simulated federation whose hosts run the model's VMs and
// whose migrations move bytes across a sim.Network of host NICs and WAN
// links, following QEMU's pre-copy algorithm (package precopy).
//
// A Cluster lives on the goroutine that runs its sim.Engine: Migrate,
// ListDomains, the Job methods, the fault injectors and the queries must be
// called from that goroutine (typically from inside engine events), and
// Observers are called from engine events. The package starts no
// goroutines.
package simhv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/precopy"
	"github.com/refuge-project/refuge/internal/sim"
)

// Defaults for parameters a request or the Cluster leaves at zero.
const (
	// DefaultStallTimeout is how long a migration may make no progress
	// before it fails: libvirt's keep-alive gives up after 6 probes 5 s
	// apart.
	DefaultStallTimeout = 30 * time.Second
	// DefaultMaxDowntime is QEMU's downtime-limit.
	DefaultMaxDowntime = 300 * time.Millisecond
)

// Errors specific to the simulated driver (the shared ones are in package
// hypervisor).
var (
	// ErrSameHost: the source and destination hosts are the same.
	ErrSameHost = errors.New("source and destination are the same host")
	// ErrUnsafe mirrors libvirt's VIR_ERR_MIGRATE_UNSAFE: the domain has
	// local disks and the request does not copy storage.
	ErrUnsafe = errors.New("migration without shared storage is unsafe")
	// ErrJobNotActive: the job has already ended.
	ErrJobNotActive = errors.New("no active migration job")
	// ErrBadArgument: a fault injector or setter got an out-of-range value.
	ErrBadArgument = errors.New("invalid argument")
)

// Cluster is a simulated federation. It implements hypervisor.Driver.
type Cluster struct {
	// StallTimeout is how long a migration whose path is cut may wait
	// before it fails with hypervisor.ErrLinkDown (DefaultStallTimeout when
	// zero). A change applies to stalls that begin afterwards.
	StallTimeout time.Duration

	eng *sim.Engine
	ix  *model.Index
	net *sim.Network

	placement []int     // host per VM; -1 = lost
	hostUp    []bool    // per host
	placedMiB []int64   // memory of the VMs placed on each host
	reserved  []int64   // memory promised to each host by incoming migrations
	linkMbps  []float64 // usable bandwidth per link
	nicOut    []sim.ResourceID
	nicIn     []sim.ResourceID
	link      [][2]sim.ResourceID
	migs      []*migration // active migration per VM
	running   int
}

var _ hypervisor.Driver = (*Cluster)(nil)

// New builds the simulated federation described by ix on eng: every VM on
// its model host, every host up, every link at its model bandwidth. The
// Cluster keeps its own placement and never modifies ix.
func New(eng *sim.Engine, ix *model.Index) (*Cluster, error) {
	if eng == nil || ix == nil || ix.Fed == nil {
		return nil, fmt.Errorf("simhv: new cluster: engine and index are required: %w", ErrBadArgument)
	}
	nh, nl := len(ix.Hosts), len(ix.Fed.Links)
	c := &Cluster{
		eng:       eng,
		ix:        ix,
		net:       sim.NewNetwork(eng),
		placement: append([]int(nil), ix.VMHost...),
		hostUp:    make([]bool, nh),
		placedMiB: make([]int64, nh),
		reserved:  make([]int64, nh),
		linkMbps:  make([]float64, nl),
		nicOut:    make([]sim.ResourceID, nh),
		nicIn:     make([]sim.ResourceID, nh),
		link:      make([][2]sim.ResourceID, nl),
		migs:      make([]*migration, len(ix.Fed.VMs)),
	}
	for l := range ix.Fed.Links {
		c.linkMbps[l] = ix.Fed.Links[l].BandwidthMbps
	}
	add := func(r netpath.Resource) (sim.ResourceID, error) {
		id, err := c.net.AddResource(netpath.Capacity(ix, r, c.linkMbps))
		if err != nil {
			return 0, fmt.Errorf("simhv: new cluster: %s: %w", netpath.Name(ix, r), err)
		}
		return id, nil
	}
	var err error
	for h := range nh {
		c.hostUp[h] = true
		if c.nicOut[h], err = add(netpath.Resource{Kind: netpath.HostOut, ID: h}); err != nil {
			return nil, err
		}
		if c.nicIn[h], err = add(netpath.Resource{Kind: netpath.HostIn, ID: h}); err != nil {
			return nil, err
		}
	}
	for l := range nl {
		for d := range 2 {
			if c.link[l][d], err = add(netpath.Resource{Kind: netpath.Link, ID: l, Dir: d}); err != nil {
				return nil, err
			}
		}
	}
	for v, h := range c.placement {
		if h >= 0 {
			c.placedMiB[h] += ix.Fed.VMs[v].MemoryMiB
		}
	}
	return c, nil
}

// Engine returns the engine the cluster runs on.
func (c *Cluster) Engine() *sim.Engine { return c.eng }

// Index returns the federation index the cluster was built from.
func (c *Cluster) Index() *model.Index { return c.ix }

func (c *Cluster) stallTimeout() time.Duration {
	if c.StallTimeout > 0 {
		return c.StallTimeout
	}
	return DefaultStallTimeout
}

// rid maps a netpath resource to the network's resource id.
func (c *Cluster) rid(r netpath.Resource) (sim.ResourceID, bool) {
	switch r.Kind {
	case netpath.HostOut:
		if r.ID >= 0 && r.ID < len(c.nicOut) {
			return c.nicOut[r.ID], true
		}
	case netpath.HostIn:
		if r.ID >= 0 && r.ID < len(c.nicIn) {
			return c.nicIn[r.ID], true
		}
	case netpath.Link:
		if r.ID >= 0 && r.ID < len(c.link) && (r.Dir == 0 || r.Dir == 1) {
			return c.link[r.ID][r.Dir], true
		}
	}
	return 0, false
}

// ListDomains lists the domains running on host: a migrating domain is
// listed on its source until the migration completes (paused during the
// switch-over).
func (c *Cluster) ListDomains(ctx context.Context, host string) ([]hypervisor.Domain, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("simhv: list domains on %s: %w", host, err)
	}
	h, ok := c.ix.HostByName[host]
	if !ok {
		return nil, fmt.Errorf("simhv: list domains: unknown host %q: %w", host, hypervisor.ErrHostUnreachable)
	}
	if !c.hostUp[h] {
		return nil, fmt.Errorf("simhv: list domains on %s: %w", host, hypervisor.ErrHostDown)
	}
	var out []hypervisor.Domain
	for v, at := range c.placement {
		if at != h {
			continue
		}
		vm := &c.ix.Fed.VMs[v]
		state := hypervisor.StateRunning
		if m := c.migs[v]; m != nil && m.paused {
			state = hypervisor.StatePaused
		}
		out = append(out, hypervisor.Domain{
			Name:           vm.Name,
			Host:           host,
			State:          state,
			VCPU:           vm.VCPU,
			MemoryBytes:    uint64(vm.MemoryBytes()),
			LocalDiskBytes: uint64(localDisk(vm)),
			DirtyRateBytes: vm.DirtyRateMiBps * model.MiB,
			Persistent:     true,
		})
	}
	return out, nil
}

func localDisk(vm *model.VM) float64 {
	if vm.CopiesDisk() {
		return vm.DiskBytes()
	}
	return 0
}

// Migrate validates req and starts the migration in virtual time, across
// the links req.Route names or else the default route. It returns an
// error (and never calls obs) when the migration cannot start: unknown
// domain (hypervisor.ErrNoSuchDomain) or host (ErrHostUnreachable),
// domain not on SourceHost (ErrNoSuchDomain) or lost (ErrDomainLost), a
// job already active (ErrJobAlreadyActive), a host down (ErrHostDown), no
// free memory at the destination (ErrDestinationFull), no route or a cut
// link on it (ErrLinkDown), a Route naming an unknown link or not joining
// the hosts' sites (ErrBadRequest, wrapping netpath.ErrBadRoute), local
// disks without CopyStorage (ErrUnsafe) or source = destination
// (ErrSameHost). Otherwise obs.MigrationDone is called exactly once, from
// a later engine event.
func (c *Cluster) Migrate(ctx context.Context, req hypervisor.MigrateRequest, obs hypervisor.Observer) (hypervisor.Job, error) {
	fail := func(err error) (hypervisor.Job, error) {
		return nil, fmt.Errorf("simhv: migrate %s from %s to %s: %w", req.Domain, req.SourceHost, req.DestHost, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if obs == nil {
		return fail(fmt.Errorf("an observer is required: %w", ErrBadArgument))
	}
	v, ok := c.ix.VMByName[req.Domain]
	if !ok {
		return fail(hypervisor.ErrNoSuchDomain)
	}
	src, ok := c.ix.HostByName[req.SourceHost]
	if !ok {
		return fail(fmt.Errorf("unknown source host: %w", hypervisor.ErrHostUnreachable))
	}
	dst, ok := c.ix.HostByName[req.DestHost]
	if !ok {
		return fail(fmt.Errorf("unknown destination host: %w", hypervisor.ErrHostUnreachable))
	}
	vm := &c.ix.Fed.VMs[v]
	switch {
	case !c.hostUp[src]:
		return fail(fmt.Errorf("source host: %w", hypervisor.ErrHostDown))
	case c.placement[v] < 0:
		return fail(hypervisor.ErrDomainLost)
	case c.placement[v] != src:
		return fail(fmt.Errorf("domain runs on %s: %w", c.ix.Host(c.placement[v]).Name, hypervisor.ErrNoSuchDomain))
	case c.migs[v] != nil:
		return fail(hypervisor.ErrJobAlreadyActive)
	case src == dst:
		return fail(ErrSameHost)
	case !c.hostUp[dst]:
		return fail(fmt.Errorf("destination host: %w", hypervisor.ErrHostDown))
	case vm.CopiesDisk() && vm.DiskGiB > 0 && req.Params.CopyStorage == hypervisor.CopyStorageNone:
		return fail(fmt.Errorf("%d GiB of local disk; set Params.CopyStorage to %q: %w", vm.DiskGiB, hypervisor.CopyStorageAll, ErrUnsafe))
	}
	if free := c.ix.Host(dst).MemoryMiB - c.placedMiB[dst] - c.reserved[dst]; vm.MemoryMiB > free {
		return fail(fmt.Errorf("needs %d MiB, %d MiB free: %w", vm.MemoryMiB, free, hypervisor.ErrDestinationFull))
	}
	p := req.Params
	if !(p.BandwidthBytes >= 0) || math.IsInf(p.BandwidthBytes, 1) {
		return fail(fmt.Errorf("bandwidth %v bytes/s: %w", p.BandwidthBytes, ErrBadArgument))
	}
	if p.MaxDowntime < 0 {
		return fail(fmt.Errorf("max downtime %v: %w", p.MaxDowntime, ErrBadArgument))
	}
	path, err := c.route(src, dst, req.Route)
	if err != nil {
		return fail(err)
	}
	res := make([]sim.ResourceID, len(path.Resources))
	for i, r := range path.Resources {
		id, ok := c.rid(r)
		if !ok {
			return fail(fmt.Errorf("route crosses unknown resource %s: %w", netpath.Name(c.ix, r), hypervisor.ErrLinkDown))
		}
		res[i] = id
	}
	for _, l := range path.Links {
		if c.linkCut(l) {
			return fail(fmt.Errorf("link %s is cut: %w", c.ix.Fed.Links[l].Name, hypervisor.ErrLinkDown))
		}
	}
	if p.MaxDowntime == 0 {
		p.MaxDowntime = DefaultMaxDowntime
	}
	req.Params = p
	m := &migration{
		c:     c,
		vm:    v,
		src:   src,
		dst:   dst,
		req:   req,
		obs:   obs,
		path:  path,
		res:   res,
		cap:   netpath.FlowCap(p.BandwidthBytes, path.RTT, p.ParallelConnections),
		phase: hypervisor.PhaseSetup,
		guest: precopy.Guest{
			MemoryBytes: vm.MemoryBytes(),
			DiskBytes:   localDisk(vm),
			DirtyRate:   vm.DirtyRateMiBps * model.MiB,
			WorkingSet:  vm.WorkingSetMiB * model.MiB,
		},
		started:   c.eng.Elapsed(),
		startTime: c.eng.Now(),
	}
	m.flowDoneFn = m.flowDone
	c.migs[v] = m
	c.running++
	c.reserved[dst] += vm.MemoryMiB
	m.timer = c.eng.Schedule(m.started+precopy.Setup(path.RTT), m.afterSetup)
	return m, nil
}

// route returns the path of a migration from src to dst: across the named
// links, or the default route when there are none.
func (c *Cluster) route(src, dst int, names []string) (netpath.Path, error) {
	if len(names) == 0 {
		path, ok := netpath.Between(c.ix, src, dst)
		if !ok {
			return netpath.Path{}, fmt.Errorf("no route between their sites: %w", hypervisor.ErrLinkDown)
		}
		return path, nil
	}
	links, err := netpath.LinksNamed(c.ix, names)
	if err != nil {
		return netpath.Path{}, fmt.Errorf("%w: %w", hypervisor.ErrBadRequest, err)
	}
	path, err := netpath.Along(c.ix, src, dst, links)
	if err != nil {
		return netpath.Path{}, fmt.Errorf("%w: %w", hypervisor.ErrBadRequest, err)
	}
	return path, nil
}

// linkCut reports whether link l carries nothing in either direction.
func (c *Cluster) linkCut(l int) bool {
	return c.net.Capacity(c.link[l][0]) == 0 || c.net.Capacity(c.link[l][1]) == 0
}

// FailHost stops host h: its VMs are lost, migrations from it fail with
// the domain lost (RunningOn ""), migrations to it fail with the domain
// left on its source. Failing a host that is down already does nothing.
func (c *Cluster) FailHost(h int) error {
	if h < 0 || h >= len(c.hostUp) {
		return fmt.Errorf("simhv: fail host %d: no such host: %w", h, ErrBadArgument)
	}
	if !c.hostUp[h] {
		return nil
	}
	c.hostUp[h] = false
	name := c.ix.Host(h).Name
	for _, m := range c.migs {
		switch {
		case m == nil:
		case m.src == h:
			m.end(fmt.Errorf("source host %s failed: %w", name, hypervisor.ErrDomainLost), -1)
		case m.dst == h && m.postCopy:
			m.lose(fmt.Errorf("destination host %s failed", name))
		case m.dst == h:
			m.end(fmt.Errorf("destination host %s failed: %w", name, hypervisor.ErrHostDown), m.src)
		}
	}
	for v, at := range c.placement {
		if at == h {
			c.placement[v] = -1
			c.placedMiB[h] -= c.ix.Fed.VMs[v].MemoryMiB
		}
	}
	// No flows cross the host any more; its NIC carries nothing.
	if err := c.net.SetCapacity(c.nicOut[h], 0); err != nil {
		return fmt.Errorf("simhv: fail host %s: %w", name, err)
	}
	if err := c.net.SetCapacity(c.nicIn[h], 0); err != nil {
		return fmt.Errorf("simhv: fail host %s: %w", name, err)
	}
	return nil
}

// RecoverHost brings failed host h back, as a restart would: up, its NIC
// at its speed again, and empty (the VMs it held were lost with it and do
// not come back). Recovering a host that is up does nothing.
func (c *Cluster) RecoverHost(h int) error {
	if h < 0 || h >= len(c.hostUp) {
		return fmt.Errorf("simhv: recover host %d: no such host: %w", h, ErrBadArgument)
	}
	if c.hostUp[h] {
		return nil
	}
	for _, r := range []netpath.Resource{{Kind: netpath.HostOut, ID: h}, {Kind: netpath.HostIn, ID: h}} {
		id, _ := c.rid(r)
		if err := c.net.SetCapacity(id, netpath.Capacity(c.ix, r, c.linkMbps)); err != nil {
			return fmt.Errorf("simhv: recover host %s: %w", c.ix.Host(h).Name, err)
		}
	}
	c.hostUp[h] = true
	return nil
}

// LoseSite fails every host of site s and cuts its links: a site lost to
// a disaster takes its WAN routers with it, so migrations that only cross
// it (transit) stall and fail too (ErrLinkDown after StallTimeout).
func (c *Cluster) LoseSite(s int) error {
	if s < 0 || s >= len(c.ix.Fed.Sites) {
		return fmt.Errorf("simhv: lose site %d: no such site: %w", s, ErrBadArgument)
	}
	for h := range c.ix.Hosts {
		if c.ix.HostSite(h) == s {
			if err := c.FailHost(h); err != nil {
				return fmt.Errorf("simhv: lose site %s: %w", c.ix.Fed.Sites[s].Name, err)
			}
		}
	}
	name := c.ix.Fed.Sites[s].Name
	for l := range c.ix.Fed.Links {
		if lk := &c.ix.Fed.Links[l]; lk.A == name || lk.B == name {
			if err := c.SetLinkMbps(l, 0); err != nil {
				return fmt.Errorf("simhv: lose site %s: %w", name, err)
			}
		}
	}
	return nil
}

// SetLinkMbps sets link l's bandwidth in Mbit/s each way (as
// model.Link.BandwidthMbps: background traffic and tunnel overhead still
// apply); 0 cuts it. Migrations across a cut link stall; one that stays
// stalled for StallTimeout fails with hypervisor.ErrLinkDown.
func (c *Cluster) SetLinkMbps(l int, mbps float64) error {
	if l < 0 || l >= len(c.linkMbps) {
		return fmt.Errorf("simhv: set link %d bandwidth: no such link: %w", l, ErrBadArgument)
	}
	if !(mbps >= 0) || math.IsInf(mbps, 1) {
		return fmt.Errorf("simhv: set link %s bandwidth to %v Mbit/s: %w", c.ix.Fed.Links[l].Name, mbps, ErrBadArgument)
	}
	c.linkMbps[l] = mbps
	for d := range 2 {
		r := netpath.Resource{Kind: netpath.Link, ID: l, Dir: d}
		if err := c.net.SetCapacity(c.link[l][d], netpath.Capacity(c.ix, r, c.linkMbps)); err != nil {
			return fmt.Errorf("simhv: set link %s bandwidth: %w", c.ix.Fed.Links[l].Name, err)
		}
	}
	for _, m := range c.migs {
		if m != nil {
			m.checkStall()
		}
	}
	return nil
}

// Placement returns a copy of the host index each VM runs on (-1: lost).
func (c *Cluster) Placement() []int { return append([]int(nil), c.placement...) }

// HostUp reports whether host h is up (false for an unknown host).
func (c *Cluster) HostUp(h int) bool { return h >= 0 && h < len(c.hostUp) && c.hostUp[h] }

// LinkMbps returns a copy of each link's bandwidth in Mbit/s, as set by
// SetLinkMbps (initially the model's).
func (c *Cluster) LinkMbps() []float64 { return append([]float64(nil), c.linkMbps...) }

// Running returns the number of migrations in flight.
func (c *Cluster) Running() int { return c.running }

// Migrating reports whether VM v has a migration in flight.
func (c *Cluster) Migrating(v int) bool { return v >= 0 && v < len(c.migs) && c.migs[v] != nil }

// Carried returns the bytes migrations have sent across r so far (0 for a
// resource the federation does not have).
func (c *Cluster) Carried(r netpath.Resource) float64 {
	id, ok := c.rid(r)
	if !ok {
		return 0
	}
	return c.net.Carried(id)
}

// ResourceStat reports one bandwidth resource.
type ResourceStat struct {
	Resource netpath.Resource `json:"-"`
	Name     string           `json:"name"`
	// CapacityBps is the current goodput capacity in bytes/s.
	CapacityBps float64 `json:"capacity_bps"`
	// LoadBps is the sum of the current rates of the flows across it.
	LoadBps float64 `json:"load_bps"`
	// Bytes is the cumulative bytes carried.
	Bytes float64 `json:"bytes"`
}

// Resources reports every resource: per host its NIC out and in, then per
// link both directions.
func (c *Cluster) Resources() []ResourceStat {
	out := make([]ResourceStat, 0, c.net.NumResources())
	stat := func(r netpath.Resource, id sim.ResourceID) {
		out = append(out, ResourceStat{
			Resource:    r,
			Name:        netpath.Name(c.ix, r),
			CapacityBps: c.net.Capacity(id),
			LoadBps:     c.net.Load(id),
			Bytes:       c.net.Carried(id),
		})
	}
	for h := range c.ix.Hosts {
		stat(netpath.Resource{Kind: netpath.HostOut, ID: h}, c.nicOut[h])
		stat(netpath.Resource{Kind: netpath.HostIn, ID: h}, c.nicIn[h])
	}
	for l := range c.link {
		for d := range 2 {
			stat(netpath.Resource{Kind: netpath.Link, ID: l, Dir: d}, c.link[l][d])
		}
	}
	return out
}

// Check verifies the cluster's invariants: every VM runs on exactly one up
// host or is lost; a migrating VM is still on its source; no host's memory
// is overcommitted, counting incoming migrations.
func (c *Cluster) Check() error {
	var errs []error
	placed := make([]int64, len(c.hostUp))
	reserved := make([]int64, len(c.hostUp))
	running := 0
	for v, h := range c.placement {
		name := c.ix.Fed.VMs[v].Name
		if h < -1 || h >= len(c.hostUp) {
			errs = append(errs, fmt.Errorf("vm %s placed on invalid host %d", name, h))
			continue
		}
		if h >= 0 {
			if !c.hostUp[h] {
				errs = append(errs, fmt.Errorf("vm %s runs on host %s, which is down", name, c.ix.Host(h).Name))
			}
			placed[h] += c.ix.Fed.VMs[v].MemoryMiB
		}
		if m := c.migs[v]; m != nil {
			running++
			reserved[m.dst] += c.ix.Fed.VMs[v].MemoryMiB
			if m.src != h {
				errs = append(errs, fmt.Errorf("vm %s is migrating from %s but placed on host %d", name, c.ix.Host(m.src).Name, h))
			}
		}
	}
	for h := range c.hostUp {
		if placed[h] != c.placedMiB[h] || reserved[h] != c.reserved[h] {
			errs = append(errs, fmt.Errorf("host %s memory accounting: placed %d (counted %d), reserved %d (counted %d) MiB",
				c.ix.Host(h).Name, c.placedMiB[h], placed[h], c.reserved[h], reserved[h]))
		}
		if capMiB := c.ix.Host(h).MemoryMiB; placed[h]+reserved[h] > capMiB {
			errs = append(errs, fmt.Errorf("host %s overcommitted: %d MiB placed + %d MiB incoming > %d MiB",
				c.ix.Host(h).Name, placed[h], reserved[h], capMiB))
		}
	}
	if running != c.running {
		errs = append(errs, fmt.Errorf("running count %d, but %d migrations are active", c.running, running))
	}
	return errors.Join(errs...)
}
