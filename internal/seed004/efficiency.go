package seed004

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/refuge-project/refuge/internal/placement"
	"github.com/refuge-project/refuge/internal/power"
)

// EfficiencyConfig is the set-up of the resource-efficiency and power
// experiment (the paper's Figures 7–10): hosts already running VMs after
// an hour of operation, then 10…40 more VMs allocated.
type EfficiencyConfig struct {
	Hosts     int   // 100 (paper)
	Cores     int   // 4 (paper: Xeon X3470)
	MemoryMiB int64 // 8192 (paper)
	// Background is the number of VMs placed during the hour before the
	// measurement, by BackgroundPolicy ("" means the method under test).
	Background       int
	BackgroundPolicy string
	// Added lists the measurement points: VMs allocated after the hour.
	Added []int
	// VCPUOvercommit is refuge's default (4); memory is never overcommitted.
	VCPUOvercommit float64
	// Headroom for the nil-host consolidation.
	Headroom float64
	// AbsorbByCapacity: the nil-host check looks at vCPUs and memory only
	// (the paper's reading), not at load and headroom (refuge's).
	AbsorbByCapacity bool
	Replicates       int
}

// DefaultEfficiency is the set-up docs/seed004.md describes.
func DefaultEfficiency() EfficiencyConfig {
	return EfficiencyConfig{Hosts: 100, Cores: 4, MemoryMiB: 8192, Background: 200, BackgroundPolicy: placement.LeastLoaded,
		Added:          []int{10, 20, 30, 40},
		VCPUOvercommit: 4, Headroom: 0.2, Replicates: 5}
}

// flavour draws a VM: 1, 2 or 4 vCPUs (probabilities 0.5, 0.3, 0.2) with
// 1 GiB per vCPU, each vCPU busy a uniform 10…90 % of the time.
func flavour(rng *rand.Rand, i int) placement.Request {
	vcpu := 1
	switch x := rng.Float64(); {
	case x >= 0.8:
		vcpu = 4
	case x >= 0.5:
		vcpu = 2
	}
	busy := 0.1 + 0.8*rng.Float64()
	return placement.Request{Name: fmt.Sprintf("vm%d", i), VCPU: vcpu, MemoryMiB: int64(vcpu) * 1024, Load: float64(vcpu) * busy}
}

// EfficiencyPoint is the state after some VMs were added.
type EfficiencyPoint struct {
	Added      int       `json:"added"`
	Util       []float64 `json:"-"` // per host, %, off hosts 0
	MeanPct    float64   `json:"mean_pct"`
	Pct        [5]float64
	PowerW     float64 `json:"power_w"`
	HostsOff   int     `json:"hosts_off"`
	Migrations int     `json:"migrations"`
	Overloaded int     `json:"overloaded"` // hosts whose demand exceeds their cores
	// ServedCores is the expected demand the powered-on hosts can serve:
	// Σ min(load, cores). UnservedCores is the rest, the demand above the
	// overloaded hosts' cores: it is not served and, the power curve
	// being flat above 100 %, draws no power.
	ServedCores   float64 `json:"served_cores"`
	UnservedCores float64 `json:"unserved_cores"`
}

// Percentiles reported (the paper's Figure 7).
var Percentiles = []float64{10, 25, 50, 75, 90}

// RunEfficiency places the background and the added VMs with method and
// measures every point of c.Added.
func RunEfficiency(c EfficiencyConfig, method string, seed uint64) ([]EfficiencyPoint, error) {
	hosts := make([]placement.Host, c.Hosts)
	for i := range hosts {
		hosts[i] = placement.Host{Name: fmt.Sprintf("h%d", i), VCPU: c.Cores, MemoryMiB: c.MemoryMiB}
	}
	st, err := placement.NewState(placement.Config{VCPUOvercommit: c.VCPUOvercommit, Headroom: c.Headroom, AbsorbByCapacity: c.AbsorbByCapacity}, hosts, nil)
	if err != nil {
		return nil, err
	}
	pol, err := newPolicy(method, seed)
	if err != nil {
		return nil, err
	}
	bg := pol
	if c.BackgroundPolicy != "" {
		if bg, err = newPolicy(c.BackgroundPolicy, seed); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0xeff))
	curve := power.Default()
	total := c.Background + slices.Max(c.Added)
	var out []EfficiencyPoint
	migrations := 0
	for i := range total {
		use := pol
		if i < c.Background {
			use = bg
		}
		_, e, err := st.Place(use, flavour(rng, i))
		if err != nil {
			return nil, fmt.Errorf("efficiency: %s: VM %d: %w", method, i, err)
		}
		migrations += len(e.Migrated)
		added := i + 1 - c.Background
		if !slices.Contains(c.Added, added) {
			continue
		}
		p := EfficiencyPoint{Added: added, Migrations: migrations}
		for h := range c.Hosts {
			u := 0.0
			if !st.Off(h) {
				u = min(st.Util(h), 1)
				p.PowerW += curve.Watts(u)
				cores := float64(c.Cores)
				p.ServedCores += min(st.Load(h), cores)
				if st.Load(h) > cores {
					p.Overloaded++
					p.UnservedCores += st.Load(h) - cores
				}
			} else {
				p.HostsOff++
			}
			p.Util = append(p.Util, 100*u)
			p.MeanPct += 100 * u
		}
		p.MeanPct /= float64(c.Hosts)
		sorted := slices.Clone(p.Util)
		slices.Sort(sorted)
		for k, q := range Percentiles {
			p.Pct[k] = percentile(sorted, q)
		}
		out = append(out, p)
	}
	return out, nil
}

// percentile of sorted values, linear interpolation between ranks.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	x := q / 100 * float64(len(sorted)-1)
	i := int(x)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (x-float64(i))*(sorted[i+1]-sorted[i])
}
