package seed004

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/refuge-project/refuge/internal/monitor"
	"github.com/refuge-project/refuge/internal/placement"
	"github.com/refuge-project/refuge/internal/power"
)

// ScaleConfig sets up the measurements the paper lacks.
type ScaleConfig struct {
	Hosts int // 10 000
	VMs   int // placed one by one with each policy
	// AssignHosts is the host count whose n-queen assignment is timed (1M).
	AssignHosts int
	Headroom    float64
	Seed        uint64
}

// DefaultScale: 10 000 hosts of the paper's type, 30 000 VMs (about 70 %
// of the memory), the assignment of 1 000 000 hosts.
func DefaultScale() ScaleConfig {
	return ScaleConfig{Hosts: 10_000, VMs: 30_000, AssignHosts: 1_000_000, Headroom: 0.2, Seed: 1}
}

// ScalePolicy is one policy's outcome at scale.
type ScalePolicy struct {
	Policy string `json:"policy"`
	// MaxLoadPct is the most loaded host's expected CPU demand over its
	// cores (may exceed 100: overloaded).
	MaxLoadPct float64 `json:"max_load_pct"`
	// P99LoadPct is the 99th percentile over powered-on hosts.
	P99LoadPct float64 `json:"p99_load_pct"`
	Overloaded int     `json:"overloaded_hosts"`
	HostsUsed  int     `json:"hosts_used"`
	HostsOff   int     `json:"hosts_off"`
	Migrations int     `json:"migrations"`
	PowerW     float64 `json:"power_w"`
	// EnergyKWhPerDay is PowerW held for a day.
	EnergyKWhPerDay float64 `json:"energy_kwh_per_day"`
	PlaceUSPerVM    float64 `json:"place_us_per_vm"`
}

// ScaleReport is the outcome of the scale measurements.
type ScaleReport struct {
	Hosts    int           `json:"hosts"`
	VMs      int           `json:"vms"`
	Policies []ScalePolicy `json:"policies"`
	// AssignHosts and AssignMS: the n-queen assignment (Level 2, every
	// queen's target list built) of AssignHosts hosts took AssignMS.
	AssignHosts int     `json:"assign_hosts"`
	AssignMS    float64 `json:"assign_ms"`
	AssignBoard int     `json:"assign_board_n"`
}

// ScalePolicies are the policies compared at scale.
var ScalePolicies = []string{PowerOfTwoMig, PowerOfTwo, NextFit, placement.FirstFit, placement.BestFit, placement.LeastLoaded}

// RunScale runs the scale measurements.
func RunScale(c ScaleConfig) (*ScaleReport, error) {
	rep := &ScaleReport{Hosts: c.Hosts, VMs: c.VMs, AssignHosts: c.AssignHosts}
	rep.Policies = make([]ScalePolicy, len(ScalePolicies))
	err := parallel(len(ScalePolicies), func(i int) error {
		p, err := runScalePolicy(c, ScalePolicies[i])
		rep.Policies[i] = p
		return err
	})
	if err != nil {
		return nil, err
	}
	if c.AssignHosts > 0 {
		t0 := time.Now()
		a, err := monitor.Assign(c.AssignHosts, monitor.Level2, c.Seed)
		if err != nil {
			return nil, err
		}
		for _, q := range a.Queens() {
			_ = a.Targets(q)
		}
		rep.AssignMS = float64(time.Since(t0).Microseconds()) / 1000
		rep.AssignBoard = a.Board.N
	}
	return rep, nil
}

func runScalePolicy(c ScaleConfig, method string) (ScalePolicy, error) {
	out := ScalePolicy{Policy: method}
	hosts := make([]placement.Host, c.Hosts)
	for i := range hosts {
		hosts[i] = placement.Host{Name: "h", VCPU: 4, MemoryMiB: 8192}
	}
	st, err := placement.NewState(placement.Config{VCPUOvercommit: 4, Headroom: c.Headroom}, hosts, nil)
	if err != nil {
		return out, err
	}
	pol, err := newPolicy(method, c.Seed)
	if err != nil {
		return out, err
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0x5ca1e))
	reqs := make([]placement.Request, c.VMs)
	for i := range reqs {
		reqs[i] = flavour(rng, i)
	}
	t0 := time.Now()
	for _, r := range reqs {
		_, e, err := st.Place(pol, r)
		if err != nil {
			return out, fmt.Errorf("scale: %s: %w", method, err)
		}
		out.Migrations += len(e.Migrated)
	}
	out.PlaceUSPerVM = float64(time.Since(t0).Microseconds()) / float64(c.VMs)
	curve := power.Default()
	var loads []float64
	for h := range c.Hosts {
		if st.Off(h) {
			out.HostsOff++
			continue
		}
		u := st.Util(h)
		loads = append(loads, 100*u)
		out.MaxLoadPct = max(out.MaxLoadPct, 100*u)
		if u > 1 {
			out.Overloaded++
		}
		if st.Count(h) > 0 {
			out.HostsUsed++
		}
		out.PowerW += curve.Watts(min(u, 1))
	}
	slices.Sort(loads)
	out.P99LoadPct = round(percentile(loads, 99), 1)
	out.MaxLoadPct = round(out.MaxLoadPct, 1)
	out.PowerW = round(out.PowerW, 0)
	out.EnergyKWhPerDay = round(out.PowerW*24/1000, 1)
	out.PlaceUSPerVM = round(out.PlaceUSPerVM, 2)
	return out, nil
}
