package model

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Order says in which order VMs are queued for migration.
type Order string

// Orders.
const (
	// OrderPriority: the planner's order (priority, dependencies, deadline).
	OrderPriority Order = "priority"
	// OrderFIFO: inventory order, as simple tools do.
	OrderFIFO Order = "fifo"
	// OrderDeadline: earliest deadline first (a site lost sooner goes
	// first, its transfers cannot wait); among VMs with the same deadline,
	// the most priority per byte to move first (priority density: equal
	// priorities give the smallest first, so that the most VMs fit), then
	// dependencies first.
	OrderDeadline Order = "deadline"
)

// Policy is how refuge (or a baseline) plans and executes an evacuation.
//
// Every field is marshalled, zero or not, so that a marshalled policy reads
// back (ParsePolicy) as the same policy whatever the base.
type Policy struct {
	Name string `json:"name"`
	// VCPUOvercommit is the allowed ratio of guest vCPUs to host vCPUs.
	// Memory is never overcommitted.
	VCPUOvercommit float64 `json:"vcpu_overcommit"`
	// SafetyMargin: a migration must be predicted to finish this long
	// before its site's deadline to count as saving the VM.
	SafetyMargin Duration `json:"safety_margin"`
	// Order of the migration queue.
	Order Order `json:"order"`
	// DeadlineAware: leave out VMs predicted to miss their deadline so that
	// their bandwidth goes to VMs that can still be saved.
	DeadlineAware bool `json:"deadline_aware"`
	// Placement names how the planner chooses each VM's destination among
	// the safe hosts with room: PlacementEarliestFinish (the host where
	// the migration is predicted to finish first) or a placement policy
	// of package placement (seed 004: power-of-two, next-fit, first-fit,
	// best-fit, least-loaded).
	Placement string `json:"placement"`
	// Migration parameters passed to the hypervisor.
	Migration MigrationPolicy `json:"migration"`
	// WatchSites says how the planner treats sites at threat level
	// "watch" (not yet threatened, but possibly soon) as destinations:
	// WatchAllow (like any safe site), WatchAvoid (only for VMs that no
	// other site can save in time) or WatchExclude (never).
	WatchSites string `json:"watch_sites"`
	// Concurrency limits; zero means unlimited.
	Concurrency ConcurrencyPolicy `json:"concurrency"`
}

// Values of Policy.WatchSites.
const (
	WatchAllow   = "allow"
	WatchAvoid   = "avoid"
	WatchExclude = "exclude"
)

// MigrationPolicy holds per-migration hypervisor parameters.
type MigrationPolicy struct {
	// MaxBandwidthMiBps caps one migration; 0 means uncapped, which is
	// libvirt's default for managed migrations (QEMU's own default is
	// 128 MiB/s). Every built-in policy uses 0, so that refuge and the
	// baselines differ only in scheduling.
	MaxBandwidthMiBps float64 `json:"max_bandwidth_mibps"`
	// MaxDowntime is the pause the switch-over may cause (QEMU: 300 ms).
	MaxDowntime Duration `json:"max_downtime"`
	// AutoConverge throttles a guest whose dirty rate keeps pre-copy from
	// converging.
	AutoConverge bool `json:"auto_converge"`
	// ParallelConnections > 1 uses multifd streams.
	ParallelConnections int `json:"parallel_connections"`
	// PauseAndCopy lets the executor pause a guest so that its migration
	// finishes as a copy of what is left, when the prediction says pre-copy
	// cannot finish before the site's deadline but the copy can (and lets
	// the planner start such a VM paused from the outset). The guest is
	// down for the copy, but it is saved.
	PauseAndCopy bool `json:"pause_and_copy"`
	// PostCopy starts migrations with post-copy allowed and, in the same
	// situation, switches to post-copy rather than pausing: the guest runs
	// at the destination at once and pulls the rest of its memory, but is
	// lost if the source or the path fails before that ends.
	PostCopy bool `json:"post_copy"`
}

// ConcurrencyPolicy bounds how many migrations run at once.
type ConcurrencyPolicy struct {
	Global       int `json:"global"`
	PerFabric    int `json:"per_fabric"`
	PerHostOut   int `json:"per_host_out"`
	PerHostIn    int `json:"per_host_in"`
	PerLinkLimit int `json:"per_link"`
	// Adaptive enables the feedback controller (seed 003): the bandwidth
	// each WAN link direction admits follows its observed throughput
	// (multiplicative decrease when it delivers less than admitted,
	// additive increase back to the link's capacity); PerLinkLimit still
	// caps the number of migrations.
	Adaptive bool `json:"adaptive"`
	// Interval between controller decisions.
	Interval Duration `json:"interval"`
	// InitialPerLink is kept for policy documents of earlier versions; the
	// bandwidth-based controller starts every link at its capacity.
	InitialPerLink int `json:"initial_per_link"`
	// GainThreshold is the relative shortfall of observed throughput below
	// what was admitted that the controller tolerates before it decreases
	// a link's admitted bandwidth (e.g. 0.15).
	GainThreshold float64 `json:"gain_threshold"`
	// DecreaseFactor bounds one decrease: the admitted bandwidth falls to
	// the observed throughput, but never below this share of what it was
	// (e.g. 0.3).
	DecreaseFactor float64 `json:"decrease_factor"`
}

func basePolicy(name string) Policy {
	return Policy{
		Name:           name,
		Placement:      PlacementEarliestFinish,
		WatchSites:     WatchAllow,
		VCPUOvercommit: 4,
		SafetyMargin:   Duration(30 * time.Second),
		Order:          OrderPriority,
		Migration: MigrationPolicy{
			MaxBandwidthMiBps: 0,
			MaxDowntime:       Duration(300 * time.Millisecond),
			AutoConverge:      true,
		},
	}
}

// RefugePolicy is refuge's default: planner order, deadline-aware,
// bandwidth admission on every resource with feedback on the WAN links,
// pause-and-copy for guests that pre-copy cannot save in time, watch-level
// sites only as a last resort.
func RefugePolicy() Policy {
	p := basePolicy("refuge")
	p.DeadlineAware = true
	p.Order = OrderDeadline
	p.WatchSites = WatchAvoid
	p.Migration.PauseAndCopy = true
	// Admission is by bandwidth on every resource a migration crosses
	// (source NIC, link directions, destination NIC); the count limit per
	// link only guards against pathological inputs.
	p.Concurrency = ConcurrencyPolicy{
		PerLinkLimit:   64,
		Adaptive:       true,
		Interval:       Duration(5 * time.Second),
		InitialPerLink: 1,
		GainThreshold:  0.15,
		DecreaseFactor: 0.3,
	}
	return p
}

// SequentialPolicy migrates one VM at a time, in inventory order (what Nova
// host-evacuate-live or Masakari do by default).
func SequentialPolicy() Policy {
	p := basePolicy("sequential")
	p.Order = OrderFIFO
	p.Concurrency = ConcurrencyPolicy{Global: 1}
	return p
}

// KubeVirtLikePolicy mirrors KubeVirt's defaults: at most 5 migrations per
// cluster and 2 outbound per node, FIFO.
func KubeVirtLikePolicy() Policy {
	p := basePolicy("kubevirt-like")
	p.Order = OrderFIFO
	p.Concurrency = ConcurrencyPolicy{PerFabric: 5, PerHostOut: 2}
	return p
}

// AllAtOncePolicy starts every migration at once.
func AllAtOncePolicy() Policy {
	p := basePolicy("all-at-once")
	p.Order = OrderFIFO
	return p
}

// PlacementEarliestFinish is the planner's own destination choice.
const PlacementEarliestFinish = "earliest-finish"

// PlacementNames lists the values Policy.Placement accepts: the planner's
// own rule and the policies of package placement (whose tests check that
// the two lists agree).
var PlacementNames = []string{PlacementEarliestFinish, "best-fit", "first-fit", "least-loaded", "next-fit", "power-of-two"}

// DefaultPolicyName names the policy used when none is given, and the base
// of a policy document that names none.
const DefaultPolicyName = "refuge"

var builtinPolicies = map[string]func() Policy{
	"refuge":        RefugePolicy,
	"sequential":    SequentialPolicy,
	"kubevirt-like": KubeVirtLikePolicy,
	"all-at-once":   AllAtOncePolicy,
}

// PolicyNames lists the built-in policies.
func PolicyNames() []string {
	names := make([]string, 0, len(builtinPolicies))
	for n := range builtinPolicies {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BaselineNames lists the baselines refuge is compared with, in report order.
var BaselineNames = []string{"sequential", "kubevirt-like", "all-at-once"}

// PolicyByName returns a built-in policy.
func PolicyByName(name string) (Policy, error) {
	f, ok := builtinPolicies[name]
	if !ok {
		return Policy{}, fmt.Errorf("unknown policy %q (known: %s)", name, strings.Join(PolicyNames(), ", "))
	}
	return f(), nil
}
