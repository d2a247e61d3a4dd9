package seed004

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/refuge-project/refuge/internal/placement"
	"github.com/refuge-project/refuge/internal/sim"
)

// TaskKind is one of the paper's four kinds of learning-service requests.
type TaskKind struct {
	Name string
	// Work is the CPU the request needs, in core-seconds; a request runs
	// on at most one core, so Work is also its response time on an idle VM.
	Work float64
}

// LMSConfig is the set-up of the LMS experiment (the paper's Figures 3–5).
// Every value the paper does not give is an assumption; docs/seed004.md
// lists them.
type LMSConfig struct {
	Hosts         int   // 15 (paper)
	Cores         int   // 4: Xeon X3470 (paper's host type)
	MemoryMiB     int64 // 8192 (paper)
	MaxVMsPerHost int   // 2 (paper)
	VMVCPU        int   // 4: an LMS VM may use a whole host
	VMMemoryMiB   int64 // 2048
	Kinds         []TaskKind
	// Session is the window over which the clients issue their requests
	// (uniformly at random: a Poisson process given the count).
	Session time.Duration
	// TargetVMLoad is the expected load, in cores, the operator
	// provisions one VM for: VMs = ⌈offered load / TargetVMLoad⌉, at most
	// Hosts × MaxVMsPerHost.
	TargetVMLoad float64
	// Timeout: a request without a response after this long is a failed
	// task (the paper's "does not respond within the pre-defined time").
	Timeout time.Duration
	// SLAFactor: a response slower than SLAFactor × the request's idle
	// response time is an SLA violation (the paper's "slow response").
	SLAFactor float64
	// Headroom for power-of-two's nil-host consolidation.
	Headroom float64
	// Replicates: runs per point (different seeds), averaged.
	Replicates int
	// Clients lists the client counts (the paper's: 50, 150, …, 550).
	Clients []int
}

// DefaultLMS is the set-up docs/seed004.md describes.
func DefaultLMS() LMSConfig {
	return LMSConfig{
		Hosts: 15, Cores: 4, MemoryMiB: 8192, MaxVMsPerHost: 2,
		VMVCPU: 4, VMMemoryMiB: 2048,
		Kinds: []TaskKind{
			{Name: "lms-navigation", Work: 0.25},
			{Name: "text", Work: 0.5},
			{Name: "text+media", Work: 1.5},
			{Name: "video", Work: 4},
		},
		Session:      20 * time.Minute,
		TargetVMLoad: 2,
		Timeout:      30 * time.Second,
		SLAFactor:    4,
		Headroom:     0.2,
		Replicates:   5,
		Clients:      []int{50, 150, 250, 350, 450, 550},
	}
}

// PaperTasks is the number of tasks the paper reports per client count
// (Section 4.1): the workload's input.
var PaperTasks = map[int]int{50: 3627, 150: 9292, 250: 15756, 350: 22171, 450: 28505, 550: 33649}

// LMSResult is one run.
type LMSResult struct {
	Tasks         int `json:"tasks"`
	VMs           int `json:"vms"`
	HostsUsed     int `json:"hosts_used"`
	Failed        int `json:"failed_tasks"`
	SLAViolations int `json:"sla_violations"`
	// UtilPct is the CPU work done over the capacity of the active hosts
	// (those running at least one VM): the paper's Figure 5 metric ("the
	// results of Figure 5 are calculated only for active host machines").
	UtilPct float64 `json:"utilization_pct"`
	// UtilAllHostsPct is the same work over all Hosts' capacity.
	UtilAllHostsPct float64 `json:"utilization_all_hosts_pct"`
	Migrations      int     `json:"migrations"`
}

func (c LMSConfig) meanWork() float64 {
	s := 0.0
	for _, k := range c.Kinds {
		s += k.Work
	}
	return s / float64(len(c.Kinds))
}

// RunLMS runs the LMS experiment once for one client count and method.
func RunLMS(c LMSConfig, clients int, method string, seed uint64) (LMSResult, error) {
	tasks, ok := PaperTasks[clients]
	if !ok {
		// Interpolate the paper's ~64 requests per client.
		tasks = clients * 64
	}
	if clients <= 0 || len(c.Kinds) == 0 || c.Session <= 0 {
		return LMSResult{}, fmt.Errorf("lms: %d clients, %d task kinds, session %v", clients, len(c.Kinds), c.Session)
	}
	res := LMSResult{Tasks: tasks}
	// Provisioning: one VM per TargetVMLoad cores of offered load.
	offered := float64(tasks) * c.meanWork() / c.Session.Seconds()
	nVM := min(max(int(math.Ceil(offered/c.TargetVMLoad)), 1), c.Hosts*c.MaxVMsPerHost)
	res.VMs = nVM
	vmLoad := min(offered/float64(nVM), float64(c.VMVCPU))
	hosts := make([]placement.Host, c.Hosts)
	for i := range hosts {
		hosts[i] = placement.Host{Name: fmt.Sprintf("h%d", i), VCPU: c.Cores, MemoryMiB: c.MemoryMiB}
	}
	st, err := placement.NewState(placement.Config{VCPUOvercommit: float64(c.MaxVMsPerHost*c.VMVCPU) / float64(c.Cores),
		Headroom: c.Headroom, MaxVMsPerHost: c.MaxVMsPerHost}, hosts, nil)
	if err != nil {
		return res, err
	}
	pol, err := newPolicy(method, seed)
	if err != nil {
		return res, err
	}
	for i := range nVM {
		_, e, err := st.Place(pol, placement.Request{Name: fmt.Sprintf("lms%d", i), VCPU: c.VMVCPU, MemoryMiB: c.VMMemoryMiB, Load: vmLoad})
		if err != nil {
			return res, fmt.Errorf("lms: provisioning VM %d of %d: %w", i+1, nVM, err)
		}
		res.Migrations += len(e.Migrated)
	}
	// The simulation: CPU shared max-min fairly among requests (one core
	// each at most), within each VM's vCPUs and each host's cores.
	eng := sim.NewEngine(epoch)
	net := sim.NewNetwork(eng)
	hostRes := make([]sim.ResourceID, c.Hosts)
	for h := range hostRes {
		if hostRes[h], err = net.AddResource(float64(c.Cores)); err != nil {
			return res, err
		}
		if st.Count(h) > 0 {
			res.HostsUsed++
		}
	}
	vmRes := make([]sim.ResourceID, nVM)
	vmHost := make([]int, nVM)
	for v := range nVM {
		if vmRes[v], err = net.AddResource(float64(c.VMVCPU)); err != nil {
			return res, err
		}
		vmHost[v] = st.VMs[v].Host
	}
	rng := rand.New(rand.NewPCG(seed, 0x1a5))
	arrivals := make([]time.Duration, tasks)
	for i := range arrivals {
		arrivals[i] = time.Duration(rng.Int64N(int64(c.Session)))
	}
	slices.Sort(arrivals)
	timeout := c.Timeout
	for i, at := range arrivals {
		kind := c.Kinds[rng.IntN(len(c.Kinds))]
		v := i % nVM // the front end's round robin
		eng.Schedule(at, func() {
			start := eng.Elapsed()
			var timer sim.Timer
			flow, err := net.StartFlow([]sim.ResourceID{vmRes[v], hostRes[vmHost[v]]}, kind.Work, 1, func() {
				timer.Stop()
				if (eng.Elapsed() - start).Seconds() > c.SLAFactor*kind.Work {
					res.SLAViolations++
				}
			})
			if err != nil {
				res.Failed++
				return
			}
			timer = eng.Schedule(start+timeout, func() {
				if _, ok := flow.Cancel(); ok {
					res.Failed++
				}
			})
		})
	}
	eng.RunUntil(c.Session)
	busy := 0.0
	for _, r := range hostRes {
		busy += net.Carried(r)
	}
	capacity := float64(c.Cores) * c.Session.Seconds() // core-seconds per host
	res.UtilPct = 100 * busy / (float64(res.HostsUsed) * capacity)
	res.UtilAllHostsPct = 100 * busy / (float64(c.Hosts) * capacity)
	eng.Run()
	return res, nil
}
