package evacuate

// The only place that calls the executor and the simulator: their APIs
// are being reworked, and adapting to them should touch this file alone.

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/precopy"
	"github.com/refuge-project/refuge/internal/world"
)

// execute runs the evacuation on the real driver until it ends or ctx is
// cancelled (then running migrations end as the executor's Stop says).
// sw, if not nil, is told of every switchover of a VM with a service.
func execute(ctx context.Context, ix *model.Index, o Options, drv world.Hypervisor, inv *world.Inventory, deadlines map[int]time.Duration, sw executor.Switcher) (executor.Report, error) {
	ex, err := executor.New(executor.Config{Index: ix, Policy: o.Policy, Driver: drv, Clock: o.Clock, Start: o.Start,
		Placement: inv.Placement, HostDown: inv.Down, Logger: o.Logger, OnEvent: o.OnEvent, Switcher: sw})
	if err != nil {
		return executor.Report{}, fmt.Errorf("evacuate: %w", err)
	}
	if err := ex.Start(deadlines); err != nil {
		return executor.Report{}, fmt.Errorf("evacuate: %w", err)
	}
	select {
	case <-ex.Done():
	case <-ctx.Done():
		ex.Stop()
		<-ex.Done()
	}
	return ex.Report(), nil
}

// prediction is the simulator's run of the same evacuation, its times
// from Options.Start like the real ones.
type prediction struct {
	vms      map[string]executor.VMRecord
	makespan time.Duration
	// shares are the sampled non-zero shares of memory (non-live runs).
	shares map[string]float64
}

// predict simulates the evacuation as the executor found it: VMs where
// the inventory found them, without the down hosts, starting when the
// real executor started (ready after Options.Start). A non-live migration
// is modelled as the simulator's pre-copy of a guest that dirties nothing
// (it is paused) and whose memory is only its non-zero pages (QEMU sends
// zero pages as markers), from shares.
func predict(ix *model.Index, o Options, inv *world.Inventory, shares map[string]float64, ready time.Duration) (*prediction, error) {
	sc := *o.Scenario
	sc.Threats = append([]model.Threat(nil), o.Scenario.Threats...)
	for i := range sc.Threats {
		sc.Threats[i].Deadline = model.Duration(sc.Threats[i].Deadline.D() - ready)
	}
	sc.Events = append([]model.Event(nil), o.Scenario.Events...)
	for i := range sc.Events {
		sc.Events[i].At = model.Duration(max(sc.Events[i].At.D()-ready, 0))
		if sc.Events[i].Deadline != 0 {
			sc.Events[i].Deadline = model.Duration(sc.Events[i].Deadline.D() - ready)
		}
	}
	fed := predictionFederation(ix, inv, shares, o.NonLive)
	res, err := evacsim.Run(evacsim.Options{Federation: fed, Scenario: &sc, Policy: o.Policy})
	if err != nil {
		return nil, err
	}
	pix := model.NewIndex(fed)
	p := &prediction{vms: map[string]executor.VMRecord{}, shares: shares}
	for _, r := range res.Report.VMs {
		r.Started += ready
		r.Finished += ready
		if o.NonLive && r.Status == executor.StatusMigrated {
			r.Downtime = nonLivePause(pix, r)
		}
		p.vms[r.Name] = r
		if r.Status == executor.StatusMigrated {
			p.makespan = max(p.makespan, r.Finished)
		}
	}
	return p, nil
}

// nonLivePause is how long a non-live migration keeps the guest paused in
// the simulator's terms: all of it but the set-up (the guest runs until
// libvirt has prepared the destination).
func nonLivePause(ix *model.Index, r executor.VMRecord) time.Duration {
	src, okSrc := ix.HostByName[r.From]
	dst, okDst := ix.HostByName[r.To]
	if !okSrc || !okDst {
		return r.Downtime
	}
	path, ok := netpath.Between(ix, src, dst)
	if !ok {
		return r.Downtime
	}
	return max(r.Duration-precopy.Setup(path.RTT), precopy.SwitchoverOverhead)
}

// predictionFederation copies the federation with the inventory's
// placement, without down hosts and the VMs found nowhere, and for a
// non-live run with paused guests of their non-zero memory.
func predictionFederation(ix *model.Index, inv *world.Inventory, shares map[string]float64, nonLive bool) *model.Federation {
	f := *ix.Fed
	f.Sites = append([]model.Site(nil), ix.Fed.Sites...)
	for s := range f.Sites {
		f.Sites[s].Fabrics = append([]model.Fabric(nil), f.Sites[s].Fabrics...)
		for fi := range f.Sites[s].Fabrics {
			fab := &f.Sites[s].Fabrics[fi]
			var hosts []model.Host
			for _, h := range fab.Hosts {
				if !inv.Down[ix.HostByName[h.Name]] {
					hosts = append(hosts, h)
				}
			}
			fab.Hosts = hosts
		}
	}
	f.VMs = nil
	for v, vm := range ix.Fed.VMs {
		h := inv.Placement[v]
		if h < 0 {
			continue
		}
		vm.Host = ix.Host(h).Name
		if nonLive {
			vm.DirtyRateMiBps, vm.WorkingSetMiB = 0, 0
			if s, ok := shares[vm.Name]; ok && s > 0 {
				vm.MemoryMiB = max(int64(math.Ceil(s*float64(vm.MemoryMiB))), 1)
			}
		}
		f.VMs = append(f.VMs, vm)
	}
	return &f
}
