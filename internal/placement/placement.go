// Package placement chooses hosts for VMs: for new VM requests (`refuge
// place`), for the destinations of evacuations (the planner's `placement`
// policy field) and for consolidation.
//
// A Policy picks a host for a Request by looking at the hosts through a
// View. The policies are power-of-two (seed 004: two random hosts that can
// take the request, the less utilised wins; with consolidation, if every VM
// of the other — "nil" — host also fits on the winner, the decision moves
// them there and powers the nil host off), next-fit (the paper's baseline,
// OpenStack's default at the time), first-fit, best-fit and least-loaded.
// New returns one by name; randomness is seeded, so equal seeds and equal
// calls give equal decisions.
//
// Every policy prefers powered-on hosts; when none can take the request it
// returns a decision to wake the first powered-off host that can (Decision.Wake).
// State is the View used by `refuge place`, the experiments and the
// consolidation loop (Loop), which empties lightly loaded hosts through the
// executor and powers them off.
package placement

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// Request is what a VM asks of a host.
type Request struct {
	Name      string `json:"name"`
	VCPU      int    `json:"vcpu"`
	MemoryMiB int64  `json:"memory_mib"`
	// Load is the CPU the VM is expected to keep busy, in cores (at most
	// VCPU). Utilisation-aware policies and the consolidation headroom use
	// it; fitting uses VCPU and MemoryMiB only, as Nova's filters do.
	Load float64 `json:"load"`
}

// Check reports a request that no host could ever take.
func (r Request) Check() error {
	name := r.Name
	if name == "" {
		name = "(unnamed)"
	}
	switch {
	case r.VCPU < 1:
		return fmt.Errorf("request %s: vcpu is %d, want >= 1: %w", name, r.VCPU, ErrBadRequest)
	case r.MemoryMiB < 1:
		return fmt.Errorf("request %s: memory_mib is %d, want >= 1: %w", name, r.MemoryMiB, ErrBadRequest)
	case !(r.Load >= 0) || math.IsInf(r.Load, 0):
		return fmt.Errorf("request %s: load is %g cores, want a finite value >= 0: %w", name, r.Load, ErrBadRequest)
	case r.Load > float64(r.VCPU):
		return fmt.Errorf("request %s: load is %g cores, more than its %d vCPUs can use: %w", name, r.Load, r.VCPU, ErrBadRequest)
	}
	return nil
}

// View is what a policy sees of the hosts, numbered 0..NumHosts()-1.
type View interface {
	NumHosts() int
	// Fits reports whether host h may receive r now: it is eligible (up,
	// not on a threatened site) and has room for r's vCPUs and memory.
	// Power state is not considered.
	Fits(h int, r Request) bool
	// Off reports whether host h is powered off (it must be woken first).
	Off(h int) bool
	// Util is host h's CPU utilisation: expected load over cores.
	Util(h int) float64
	// FreeMemMiB is host h's unallocated memory.
	FreeMemMiB(h int) int64
}

// Absorber is implemented by views that support the paper's nil-host
// consolidation. Absorb returns the VMs on host from if every one of them
// fits on host to together with r (within the view's headroom) and from is
// a powered-on host with at least one VM that may be powered off.
type Absorber interface {
	Absorb(from, to int, r Request) (vms []int, ok bool)
}

// Decision is a policy's answer.
type Decision struct {
	Host int `json:"host"`
	// Wake: Host is powered off; power it on before placing.
	Wake bool `json:"wake,omitempty"`
	// NilHost is the host to empty and power off after moving Migrate to
	// Host (-1: no consolidation).
	NilHost int   `json:"nil_host"`
	Migrate []int `json:"migrate,omitempty"`
}

// Errors.
var (
	ErrNoHosts    = errors.New("no hosts")
	ErrNoFit      = errors.New("no host can take the request")
	ErrBadRequest = errors.New("invalid request")
	ErrBadPolicy  = errors.New("unknown placement policy")
)

// Policy chooses hosts. Policies may keep state between calls (next-fit's
// position, power-of-two's random source); they are not safe for
// concurrent use.
type Policy interface {
	Name() string
	Place(v View, r Request) (Decision, error)
}

// Options tune a policy.
type Options struct {
	// Seed seeds power-of-two's random choices.
	Seed uint64
	// NoConsolidation turns power-of-two's nil-host consolidation off
	// (the paper's "proposed method without migration").
	NoConsolidation bool
}

// Policy names.
const (
	PowerOfTwo  = "power-of-two"
	NextFit     = "next-fit"
	FirstFit    = "first-fit"
	BestFit     = "best-fit"
	LeastLoaded = "least-loaded"
)

var descriptions = map[string]string{
	PowerOfTwo:  "two random hosts that fit, the less utilised wins; the other host's VMs move to the winner and it powers off when they all fit (seed 004)",
	NextFit:     "the next host that fits, continuing from the last one chosen (the paper's baseline)",
	FirstFit:    "the lowest-numbered host that fits",
	BestFit:     "the host with the least free memory that fits (ties: the most utilised)",
	LeastLoaded: "the least utilised host that fits",
}

// Names lists the policies.
func Names() []string {
	out := make([]string, 0, len(descriptions))
	for n := range descriptions {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Describe returns a one-line description of a policy.
func Describe(name string) string { return descriptions[name] }

// New returns the policy called name.
func New(name string, o Options) (Policy, error) {
	switch name {
	case PowerOfTwo:
		return &powerOfTwo{rng: rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15)), consolidate: !o.NoConsolidation}, nil
	case NextFit:
		return &nextFit{}, nil
	case FirstFit:
		return firstFit{}, nil
	case BestFit:
		return bestFit{}, nil
	case LeastLoaded:
		return leastLoaded{}, nil
	}
	return nil, fmt.Errorf("%w %q (known: %s)", ErrBadPolicy, name, strings.Join(Names(), ", "))
}

// start checks what every policy checks first.
func start(v View, r Request) (int, error) {
	if err := r.Check(); err != nil {
		return 0, err
	}
	n := v.NumHosts()
	if n == 0 {
		return 0, fmt.Errorf("place %s: %w", r.Name, ErrNoHosts)
	}
	return n, nil
}

// usable reports whether powered-on host h can take r. Policies scan
// hosts with it; for a *State (the common case) the check runs without
// interface calls, which makes the O(n) policies several times faster.
func usable(v View, h int, r Request) bool {
	if s, ok := v.(*State); ok {
		return s.usable(h, r)
	}
	return !v.Off(h) && v.Fits(h, r)
}

// firstUsable returns the first host from start (cyclically) that is
// usable, or -1.
func firstUsable(v View, r Request, start int) int {
	n := v.NumHosts()
	if s, ok := v.(*State); ok {
		for i := range n {
			if h := (start + i) % n; s.usable(h, r) {
				return h
			}
		}
		return -1
	}
	for i := range n {
		if h := (start + i) % n; !v.Off(h) && v.Fits(h, r) {
			return h
		}
	}
	return -1
}

// fallback is what every policy does when no powered-on host can take r:
// wake the lowest-numbered powered-off host that can, or explain why none
// can.
func fallback(v View, r Request, policy string) (Decision, error) {
	n := v.NumHosts()
	st, fast := v.(*State)
	for h := range n {
		if fast && !st.Hosts[h].Off {
			continue
		}
		if v.Off(h) && v.Fits(h, r) {
			return Decision{Host: h, Wake: true, NilHost: -1}, nil
		}
	}
	var maxFree int64
	closed := 0 // hosts that cannot take even the smallest VM: ineligible or full
	tiny := Request{VCPU: 1, MemoryMiB: 1}
	for h := range n {
		if !v.Fits(h, tiny) {
			closed++
			continue
		}
		maxFree = max(maxFree, v.FreeMemMiB(h))
	}
	return Decision{Host: -1, NilHost: -1}, fmt.Errorf("%s: place %s (%d vCPU, %d MiB): %w among %d hosts, powered on or off (%d are down, threatened or full; the most free memory on any other is %d MiB); add hosts, lift a threat or ask for less",
		policy, name(r), r.VCPU, r.MemoryMiB, ErrNoFit, n, closed, maxFree)
}

func name(r Request) string {
	if r.Name == "" {
		return "(unnamed)"
	}
	return r.Name
}

// powerOfTwo is seed 004's allocation (Algorithm 2, lines 1–21).
type powerOfTwo struct {
	rng         *rand.Rand
	consolidate bool
	scratch     []int
}

// maxDraws bounds the random re-draws for one candidate before the policy
// lists the hosts that fit and draws among them: the paper re-draws until
// a host qualifies, which never ends when none does.
const maxDraws = 32

func (*powerOfTwo) Name() string { return PowerOfTwo }

func (p *powerOfTwo) Place(v View, r Request) (Decision, error) {
	n, err := start(v, r)
	if err != nil {
		return Decision{Host: -1, NilHost: -1}, err
	}
	a, ok := p.draw(v, r, n, -1)
	if !ok {
		return fallback(v, r, PowerOfTwo)
	}
	b, ok := p.draw(v, r, n, a)
	if !ok {
		return Decision{Host: a, NilHost: -1}, nil // the only host that fits
	}
	target, nilHost := a, b
	if v.Util(b) < v.Util(a) {
		target, nilHost = b, a
	}
	d := Decision{Host: target, NilHost: -1}
	if ab, can := v.(Absorber); p.consolidate && can {
		if vms, ok := ab.Absorb(nilHost, target, r); ok {
			d.NilHost, d.Migrate = nilHost, vms
		}
	}
	return d, nil
}

// draw picks a uniformly random powered-on host other than not that can
// take r: first by re-drawing, then, after maxDraws misses, among the
// listed hosts that fit.
func (p *powerOfTwo) draw(v View, r Request, n, not int) (int, bool) {
	for range maxDraws {
		h := p.rng.IntN(n)
		if h != not && usable(v, h, r) {
			return h, true
		}
	}
	p.scratch = p.scratch[:0]
	for h := range n {
		if h != not && usable(v, h, r) {
			p.scratch = append(p.scratch, h)
		}
	}
	if len(p.scratch) == 0 {
		return -1, false
	}
	return p.scratch[p.rng.IntN(len(p.scratch))], true
}

// nextFit continues from the last host chosen.
type nextFit struct{ last int }

func (*nextFit) Name() string { return NextFit }

func (p *nextFit) Place(v View, r Request) (Decision, error) {
	n, err := start(v, r)
	if err != nil {
		return Decision{Host: -1, NilHost: -1}, err
	}
	if p.last >= n {
		p.last = 0
	}
	if h := firstUsable(v, r, p.last); h >= 0 {
		p.last = h
		return Decision{Host: h, NilHost: -1}, nil
	}
	d, err := fallback(v, r, NextFit)
	if err == nil {
		p.last = d.Host
	}
	return d, err
}

type firstFit struct{}

func (firstFit) Name() string { return FirstFit }

func (firstFit) Place(v View, r Request) (Decision, error) {
	n, err := start(v, r)
	if err != nil {
		return Decision{Host: -1, NilHost: -1}, err
	}
	_ = n
	if h := firstUsable(v, r, 0); h >= 0 {
		return Decision{Host: h, NilHost: -1}, nil
	}
	return fallback(v, r, FirstFit)
}

type bestFit struct{}

func (bestFit) Name() string { return BestFit }

func (bestFit) Place(v View, r Request) (Decision, error) {
	n, err := start(v, r)
	if err != nil {
		return Decision{Host: -1, NilHost: -1}, err
	}
	best, bestFree, bestUtil := -1, int64(0), 0.0
	st, fast := v.(*State)
	for h := range n {
		var free int64
		var u float64
		if fast {
			if !st.usable(h, r) {
				continue
			}
			free, u = st.Hosts[h].MemoryMiB-st.usedMem[h], st.load[h]/float64(st.Hosts[h].VCPU)
		} else {
			if !usable(v, h, r) {
				continue
			}
			free, u = v.FreeMemMiB(h), v.Util(h)
		}
		if best < 0 || free < bestFree || free == bestFree && u > bestUtil {
			best, bestFree, bestUtil = h, free, u
		}
	}
	if best < 0 {
		return fallback(v, r, BestFit)
	}
	return Decision{Host: best, NilHost: -1}, nil
}

type leastLoaded struct{}

func (leastLoaded) Name() string { return LeastLoaded }

func (leastLoaded) Place(v View, r Request) (Decision, error) {
	n, err := start(v, r)
	if err != nil {
		return Decision{Host: -1, NilHost: -1}, err
	}
	best, bestUtil := -1, 0.0
	st, fast := v.(*State)
	for h := range n {
		var u float64
		if fast {
			if !st.usable(h, r) {
				continue
			}
			u = st.load[h] / float64(st.Hosts[h].VCPU)
		} else {
			if !usable(v, h, r) {
				continue
			}
			u = v.Util(h)
		}
		if best < 0 || u < bestUtil {
			best, bestUtil = h, u
		}
	}
	if best < 0 {
		return fallback(v, r, LeastLoaded)
	}
	return Decision{Host: best, NilHost: -1}, nil
}
