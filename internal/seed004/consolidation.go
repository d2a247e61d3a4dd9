package seed004

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/refuge-project/refuge/internal/hypervisor/simhv"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/placement"
	"github.com/refuge-project/refuge/internal/placement/consolidation"
	"github.com/refuge-project/refuge/internal/power"
	"github.com/refuge-project/refuge/internal/sim"
)

// ConsolidationReport is the energy the consolidation loop saves on the
// efficiency set-up, measured by the power meter in the simulator (not in
// the paper: it consolidates only when allocating).
type ConsolidationReport struct {
	Hosts int     `json:"hosts"`
	VMs   int     `json:"vms"`
	Hours float64 `json:"hours"`
	// EnergyStaticKWh: every host on, the VMs where the allocation put them.
	EnergyStaticKWh float64 `json:"energy_static_kwh"`
	// EnergyLoopKWh: the consolidation loop running every hour (migrations
	// through the executor in the simulated federation, emptied hosts
	// powered off through the simulated power controller).
	EnergyLoopKWh float64 `json:"energy_loop_kwh"`
	SavingPct     float64 `json:"saving_pct"`
	Rounds        int     `json:"rounds"`
	Migrated      int     `json:"migrated"`
	Failed        int     `json:"failed"`
	HostsOff      int     `json:"hosts_off"`
	// MaxUtilPct is the most utilised host at the end, as the meter sees
	// it (capped at 100: the allocation itself overloads a few hosts;
	// consolidation never fills a host beyond 1 − headroom).
	MaxUtilPct float64 `json:"max_util_pct"`
}

// RunConsolidation places the efficiency set-up's VMs (the background by
// its policy, the added VMs by power-of-two without migration), builds that
// federation in the simulator and runs the consolidation loop hourly for
// hours, metering energy.
func RunConsolidation(c EfficiencyConfig, hours int, seed uint64) (*ConsolidationReport, error) {
	if hours < 1 {
		return nil, fmt.Errorf("consolidation: %d hours, want >= 1", hours)
	}
	hosts := make([]placement.Host, c.Hosts)
	for i := range hosts {
		hosts[i] = placement.Host{Name: fmt.Sprintf("h%03d", i), VCPU: c.Cores, MemoryMiB: c.MemoryMiB}
	}
	st, err := placement.NewState(placement.Config{VCPUOvercommit: c.VCPUOvercommit, Headroom: c.Headroom}, hosts, nil)
	if err != nil {
		return nil, err
	}
	bg, err := newPolicy(c.BackgroundPolicy, seed)
	if err != nil {
		return nil, err
	}
	p2, err := newPolicy(PowerOfTwo, seed)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0xeff))
	total := c.Background
	for _, a := range c.Added {
		total = max(total, c.Background+a)
	}
	for i := range total {
		pol := p2
		if i < c.Background {
			pol = bg
		}
		if _, _, err := st.Place(pol, flavour(rng, i)); err != nil {
			return nil, fmt.Errorf("consolidation: placing VM %d: %w", i, err)
		}
	}
	// The federation.
	f := &model.Federation{Name: "seed004", Sites: []model.Site{{Name: "dc", Lat: 37.6, Lon: 127.1,
		Fabrics: []model.Fabric{{Name: "dc-f1"}}}}}
	for _, h := range st.Hosts {
		f.Sites[0].Fabrics[0].Hosts = append(f.Sites[0].Fabrics[0].Hosts,
			model.Host{Name: h.Name, VCPU: h.VCPU, MemoryMiB: h.MemoryMiB, NICMbps: 1000})
	}
	loads := make([]float64, len(st.VMs))
	for v, vm := range st.VMs {
		f.VMs = append(f.VMs, model.VM{Name: vm.Name, Host: st.Hosts[vm.Host].Name, VCPU: vm.VCPU, MemoryMiB: vm.MemoryMiB,
			Storage: model.StorageShared, DirtyRateMiBps: 20})
		loads[v] = vm.Load
	}
	f.ApplyDefaults()
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("consolidation: generated federation: %w", err)
	}
	ix := model.NewIndex(f)
	eng := sim.NewEngine(epoch)
	cluster, err := simhv.New(eng, ix)
	if err != nil {
		return nil, err
	}
	curves, err := power.HostCurves(ix)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ix.Hosts))
	for h := range names {
		names[h] = ix.Host(h).Name
	}
	meter, err := power.NewMeter(power.MeterConfig{Clock: eng, Hosts: names, Curves: curves})
	if err != nil {
		return nil, err
	}
	ctl, err := power.NewSim(power.SimConfig{Clock: eng, Hosts: names, BootTime: 2 * time.Minute, Meter: meter})
	if err != nil {
		return nil, err
	}
	rep := &ConsolidationReport{Hosts: c.Hosts, VMs: len(st.VMs), Hours: float64(hours)}
	loop, err := consolidation.NewLoop(consolidation.Config{Index: ix, Driver: cluster, Clock: eng, Power: ctl, Meter: meter,
		Policy: model.RefugePolicy(), Interval: time.Hour, Headroom: c.Headroom, Load: func(v int) float64 { return loads[v] },
		OnRound: func(r consolidation.RoundReport) {
			rep.Rounds++
			rep.Migrated += r.Migrated
			rep.Failed += r.Failed
		}})
	if err != nil {
		return nil, err
	}
	static := meter.Read().TotalWatts
	if err := loop.Trigger(); err != nil {
		return nil, err
	}
	loop.Start()
	eng.RunUntil(time.Duration(hours) * time.Hour)
	loop.Stop()
	if err := cluster.Check(); err != nil {
		return nil, fmt.Errorf("consolidation: simulated federation inconsistent: %w", err)
	}
	r := meter.Read()
	rep.EnergyStaticKWh = round(static*float64(hours)/1000, 2)
	rep.EnergyLoopKWh = round(r.KWh, 2)
	rep.SavingPct = round(100*(1-r.KWh/(static*float64(hours)/1000)), 2)
	rep.HostsOff = r.HostsOff
	for _, h := range r.Hosts {
		rep.MaxUtilPct = max(rep.MaxUtilPct, 100*h.Util)
	}
	rep.MaxUtilPct = round(rep.MaxUtilPct, 1)
	return rep, nil
}
