package placement

import (
	"errors"
	"fmt"
	"math"

	"github.com/refuge-project/refuge/internal/model"
)

// Host is one host of a State.
type Host struct {
	Name      string `json:"name"`
	VCPU      int    `json:"vcpu"` // physical cores: the capacity Load is measured against
	MemoryMiB int64  `json:"memory_mib"`
	Site      int    `json:"site"`
	// Ineligible hosts receive nothing: down, or on a threatened site.
	Ineligible bool `json:"ineligible,omitempty"`
	Off        bool `json:"off,omitempty"`
}

// VM is one VM of a State.
type VM struct {
	Name      string  `json:"name"`
	VCPU      int     `json:"vcpu"`
	MemoryMiB int64   `json:"memory_mib"`
	Load      float64 `json:"load"`
	Host      int     `json:"host"` // -1: not placed
}

// Config holds a State's rules.
type Config struct {
	// VCPUOvercommit is the allowed ratio of guest vCPUs to host cores (0
	// means 1). Memory is never overcommitted.
	VCPUOvercommit float64
	// Headroom is the share of a host's cores that consolidation keeps
	// free: a host absorbs another's VMs only if its expected load stays at
	// or below (1 − Headroom) × cores. New requests are not limited by it.
	Headroom float64
	// MaxVMsPerHost caps the VMs on one host (0: no cap).
	MaxVMsPerHost int
	// AbsorbByCapacity makes nil-host consolidation check only vCPUs and
	// memory, as the paper's check_migration_suitability reads, ignoring
	// expected load and Headroom: it powers more hosts off and may
	// overload the target. Experiments use it to show the difference;
	// refuge never sets it.
	AbsorbByCapacity bool
}

// State is a View over hosts and the VMs placed on them, with the
// bookkeeping to apply decisions. It implements Absorber.
type State struct {
	cfg   Config
	Hosts []Host
	VMs   []VM

	usedVCPU []int
	usedMem  []int64
	load     []float64
	on       [][]int // VM indices per host
	pos      []int   // VM's position in on[host]
}

var _ Absorber = (*State)(nil)

// NewState checks cfg, hosts and VMs and returns their State. VMs with
// Host -1 are kept unplaced. Existing VMs may overcommit a host (the state
// reports what is); new placements never do.
func NewState(cfg Config, hosts []Host, vms []VM) (*State, error) {
	switch {
	case math.IsNaN(cfg.VCPUOvercommit) || cfg.VCPUOvercommit < 0 || math.IsInf(cfg.VCPUOvercommit, 0):
		return nil, fmt.Errorf("placement: vcpu overcommit %g, want a finite value >= 0 (0 means 1)", cfg.VCPUOvercommit)
	case !(cfg.Headroom >= 0 && cfg.Headroom < 1):
		return nil, fmt.Errorf("placement: headroom %g, want a share in [0, 1)", cfg.Headroom)
	case cfg.MaxVMsPerHost < 0:
		return nil, fmt.Errorf("placement: max VMs per host %d, want >= 0 (0: no cap)", cfg.MaxVMsPerHost)
	}
	if cfg.VCPUOvercommit == 0 {
		cfg.VCPUOvercommit = 1
	}
	s := &State{
		cfg:      cfg,
		Hosts:    append([]Host(nil), hosts...),
		usedVCPU: make([]int, len(hosts)),
		usedMem:  make([]int64, len(hosts)),
		load:     make([]float64, len(hosts)),
		on:       make([][]int, len(hosts)),
	}
	var errs []error
	for h, hh := range hosts {
		if hh.VCPU < 1 || hh.MemoryMiB < 1 {
			errs = append(errs, fmt.Errorf("host %d (%s): %d cores and %d MiB, want >= 1 of each", h, hh.Name, hh.VCPU, hh.MemoryMiB))
		}
	}
	for i, vm := range vms {
		r := Request{Name: vm.Name, VCPU: vm.VCPU, MemoryMiB: vm.MemoryMiB, Load: vm.Load}
		if err := r.Check(); err != nil {
			errs = append(errs, fmt.Errorf("vm %d: %w", i, err))
			continue
		}
		if vm.Host < -1 || vm.Host >= len(hosts) {
			errs = append(errs, fmt.Errorf("vm %d (%s): host %d, want -1 or below %d", i, vm.Name, vm.Host, len(hosts)))
			continue
		}
		s.add(vm)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("placement: %w", err)
	}
	return s, nil
}

// FromIndex builds a State from a federation: hosts in index order, VMs
// where placement says (nil: the federation's placement) with load[v]
// cores each (nil: every VM fully busy). Hosts on threatened sites or down
// are ineligible; off hosts are powered off.
func FromIndex(ix *model.Index, cfg Config, placement []int, load []float64, threatened map[int]bool, down, off []bool) (*State, error) {
	if placement == nil {
		placement = ix.VMHost
	}
	if len(placement) != len(ix.Fed.VMs) || (load != nil && len(load) != len(ix.Fed.VMs)) {
		return nil, fmt.Errorf("placement: %d placements and %d loads for %d VMs", len(placement), len(load), len(ix.Fed.VMs))
	}
	if (down != nil && len(down) != len(ix.Hosts)) || (off != nil && len(off) != len(ix.Hosts)) {
		return nil, fmt.Errorf("placement: down/off flags do not match the %d hosts", len(ix.Hosts))
	}
	hosts := make([]Host, len(ix.Hosts))
	for h := range ix.Hosts {
		hh := ix.Host(h)
		hosts[h] = Host{Name: hh.Name, VCPU: hh.VCPU, MemoryMiB: hh.MemoryMiB, Site: ix.HostSite(h),
			Ineligible: threatened[ix.HostSite(h)] || (down != nil && down[h]), Off: off != nil && off[h]}
	}
	vms := make([]VM, len(ix.Fed.VMs))
	for v := range ix.Fed.VMs {
		vm := &ix.Fed.VMs[v]
		l := float64(vm.VCPU)
		if load != nil {
			l = load[v]
		}
		vms[v] = VM{Name: vm.Name, VCPU: vm.VCPU, MemoryMiB: vm.MemoryMiB, Load: l, Host: placement[v]}
	}
	return NewState(cfg, hosts, vms)
}

// Config returns the state's rules.
func (s *State) Config() Config { return s.cfg }

func (s *State) add(vm VM) int {
	i := len(s.VMs)
	s.VMs = append(s.VMs, vm)
	s.pos = append(s.pos, -1)
	if vm.Host >= 0 {
		s.attach(i, vm.Host)
	}
	return i
}

func (s *State) attach(v, h int) {
	vm := &s.VMs[v]
	vm.Host = h
	s.usedVCPU[h] += vm.VCPU
	s.usedMem[h] += vm.MemoryMiB
	s.load[h] += vm.Load
	s.pos[v] = len(s.on[h])
	s.on[h] = append(s.on[h], v)
}

func (s *State) detach(v int) {
	vm := &s.VMs[v]
	h := vm.Host
	s.usedVCPU[h] -= vm.VCPU
	s.usedMem[h] -= vm.MemoryMiB
	s.load[h] -= vm.Load
	if s.load[h] < 1e-9 {
		s.load[h] = max(s.load[h], 0)
	}
	list := s.on[h]
	i := s.pos[v]
	last := list[len(list)-1]
	list[i] = last
	s.pos[last] = i
	s.on[h] = list[:len(list)-1]
	s.pos[v] = -1
	vm.Host = -1
}

// NumHosts implements View.
func (s *State) NumHosts() int { return len(s.Hosts) }

// Fits implements View.
func (s *State) Fits(h int, r Request) bool {
	hh := &s.Hosts[h]
	return !hh.Ineligible &&
		s.usedMem[h]+r.MemoryMiB <= hh.MemoryMiB &&
		float64(s.usedVCPU[h]+r.VCPU) <= float64(hh.VCPU)*s.cfg.VCPUOvercommit &&
		(s.cfg.MaxVMsPerHost == 0 || len(s.on[h]) < s.cfg.MaxVMsPerHost)
}

// usable is Fits for a powered-on host, without interface calls.
func (s *State) usable(h int, r Request) bool {
	hh := &s.Hosts[h]
	return !hh.Off && !hh.Ineligible &&
		s.usedMem[h]+r.MemoryMiB <= hh.MemoryMiB &&
		float64(s.usedVCPU[h]+r.VCPU) <= float64(hh.VCPU)*s.cfg.VCPUOvercommit &&
		(s.cfg.MaxVMsPerHost == 0 || len(s.on[h]) < s.cfg.MaxVMsPerHost)
}

// Off implements View.
func (s *State) Off(h int) bool { return s.Hosts[h].Off }

// Util implements View.
func (s *State) Util(h int) float64 { return s.load[h] / float64(s.Hosts[h].VCPU) }

// FreeMemMiB implements View.
func (s *State) FreeMemMiB(h int) int64 { return s.Hosts[h].MemoryMiB - s.usedMem[h] }

// Load returns host h's expected load in cores.
func (s *State) Load(h int) float64 { return s.load[h] }

// VMsOn returns the VMs on host h (a copy, in no particular order).
func (s *State) VMsOn(h int) []int { return append([]int(nil), s.on[h]...) }

// Count returns the number of VMs on host h.
func (s *State) Count(h int) int { return len(s.on[h]) }

// Absorb implements Absorber: from and to are on the same site (a LAN
// move: consolidating across a WAN costs more than it saves), every VM of
// from fits on to besides r, and to's load stays within the headroom.
func (s *State) Absorb(from, to int, r Request) ([]int, bool) {
	if from == to || from < 0 || to < 0 || s.Hosts[from].Off || s.Hosts[from].Ineligible || len(s.on[from]) == 0 ||
		s.Hosts[from].Site != s.Hosts[to].Site {
		return nil, false
	}
	load := s.load[from] + r.Load
	if s.cfg.AbsorbByCapacity {
		load = math.Inf(-1)
	}
	if !s.canTake(to, s.usedVCPU[from]+r.VCPU, s.usedMem[from]+r.MemoryMiB, load, len(s.on[from])+1) {
		return nil, false
	}
	return s.VMsOn(from), true
}

// canTake reports whether eligible, powered-on host h can take vcpu,
// mem, load and n more VMs and stay within the headroom.
func (s *State) canTake(h, vcpu int, mem int64, load float64, n int) bool {
	hh := &s.Hosts[h]
	return !hh.Ineligible && !hh.Off &&
		s.usedMem[h]+mem <= hh.MemoryMiB &&
		float64(s.usedVCPU[h]+vcpu) <= float64(hh.VCPU)*s.cfg.VCPUOvercommit &&
		s.load[h]+load <= (1-s.cfg.Headroom)*float64(hh.VCPU)+1e-9 &&
		(s.cfg.MaxVMsPerHost == 0 || len(s.on[h])+n <= s.cfg.MaxVMsPerHost)
}

// Effect is what applying a decision did.
type Effect struct {
	VM       int   `json:"vm"`
	Host     int   `json:"host"`
	Woken    bool  `json:"woken,omitempty"`
	Migrated []int `json:"migrated,omitempty"`
	// PoweredOff is the nil host switched off (-1: none).
	PoweredOff int `json:"powered_off"`
}

// Apply places r as d says: wakes d.Host if asked, adds the VM, moves the
// nil host's VMs and powers it off. It re-checks the decision and changes
// nothing when it does not hold.
func (s *State) Apply(r Request, d Decision) (Effect, error) {
	if err := r.Check(); err != nil {
		return Effect{}, err
	}
	if d.Host < 0 || d.Host >= len(s.Hosts) {
		return Effect{}, fmt.Errorf("placement: decision names host %d of %d", d.Host, len(s.Hosts))
	}
	h := d.Host
	if s.Hosts[h].Off && !d.Wake {
		return Effect{}, fmt.Errorf("placement: host %s is off and the decision does not wake it", s.Hosts[h].Name)
	}
	if !s.Fits(h, r) {
		return Effect{}, fmt.Errorf("placement: %s does not fit on %s: %w", name(r), s.Hosts[h].Name, ErrNoFit)
	}
	if d.NilHost >= 0 {
		if d.NilHost >= len(s.Hosts) {
			return Effect{}, fmt.Errorf("placement: decision names nil host %d of %d", d.NilHost, len(s.Hosts))
		}
		vms, ok := s.Absorb(d.NilHost, h, r)
		if !ok || len(vms) != len(d.Migrate) {
			return Effect{}, fmt.Errorf("placement: %s can no longer absorb %s's VMs", s.Hosts[h].Name, s.Hosts[d.NilHost].Name)
		}
	}
	e := Effect{Host: h, PoweredOff: -1}
	if s.Hosts[h].Off {
		s.Hosts[h].Off = false
		e.Woken = true
	}
	e.VM = s.add(VM{Name: r.Name, VCPU: r.VCPU, MemoryMiB: r.MemoryMiB, Load: r.Load, Host: -1})
	s.attach(e.VM, h)
	if d.NilHost >= 0 {
		for _, v := range s.VMsOn(d.NilHost) {
			s.detach(v)
			s.attach(v, h)
			e.Migrated = append(e.Migrated, v)
		}
		s.Hosts[d.NilHost].Off = true
		e.PoweredOff = d.NilHost
	}
	return e, nil
}

// Place asks p for a decision and applies it.
func (s *State) Place(p Policy, r Request) (Decision, Effect, error) {
	d, err := p.Place(s, r)
	if err != nil {
		return d, Effect{}, err
	}
	e, err := s.Apply(r, d)
	return d, e, err
}

// Move moves VM v to host h (consolidation loop bookkeeping); it checks
// nothing but the indices.
func (s *State) Move(v, h int) error {
	if v < 0 || v >= len(s.VMs) || h < 0 || h >= len(s.Hosts) {
		return fmt.Errorf("placement: move VM %d to host %d: out of range", v, h)
	}
	if s.VMs[v].Host >= 0 {
		s.detach(v)
	}
	s.attach(v, h)
	return nil
}

// SetOff records host h's power state.
func (s *State) SetOff(h int, off bool) { s.Hosts[h].Off = off }

// Stats summarises a state.
type Stats struct {
	HostsOn  int     `json:"hosts_on"`
	HostsOff int     `json:"hosts_off"`
	VMs      int     `json:"vms"`
	MaxUtil  float64 `json:"max_util"`
	MeanUtil float64 `json:"mean_util"` // over every host, off hosts counting 0
}

// Stats returns the summary.
func (s *State) Stats() Stats {
	var st Stats
	for h := range s.Hosts {
		if s.Hosts[h].Off {
			st.HostsOff++
		} else {
			st.HostsOn++
		}
		u := s.Util(h)
		st.MaxUtil = max(st.MaxUtil, u)
		st.MeanUtil += u
		st.VMs += len(s.on[h])
	}
	if len(s.Hosts) > 0 {
		st.MeanUtil /= float64(len(s.Hosts))
	}
	return st
}
