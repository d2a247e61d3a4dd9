// Package planner computes deadline-aware evacuation plans. Plan is a pure
// function of an Input snapshot: it never talks to hypervisors or stores,
// and equal inputs give equal plans.
package planner

import (
	"time"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
)

// Input is the snapshot a plan is computed from. Times are offsets from the
// start of the evacuation (the moment the warning arrived), so that the
// simulator, the executor and the planner share one frame.
type Input struct {
	Index  *model.Index
	Policy model.Policy
	// Now is the current time.
	Now time.Duration
	// Deadlines maps threatened site indices to the time they are lost.
	Deadlines map[int]time.Duration
	// Placement is the host each VM runs on now (len = number of VMs); -1
	// means the VM is lost. Nil means the federation's own placement.
	Placement []int
	// HostDown marks hosts that cannot run or receive VMs (nil: all up).
	HostDown []bool
	// LinkMbps overrides each link's usable bandwidth (degraded or cut
	// links); nil means the model's values.
	LinkMbps []float64
	// Frozen marks VMs the plan must leave alone: already evacuated (never
	// migrate a VM twice) or with a migration in flight.
	Frozen []bool
	// Reserved lists capacity already promised on destination hosts by
	// migrations in flight (their VMs are Frozen and still placed on their
	// source).
	Reserved []Reservation
	// Watch marks sites at threat level watch (nil: none); the policy's
	// watch_sites says whether they receive VMs.
	Watch []bool
	// Busy is the predicted time (offset from Now) until in-flight work
	// releases each resource's bandwidth; resources are those of Resource.
	// Nil means idle.
	Busy map[netpath.Resource]time.Duration
}

// Reservation is a VM's footprint promised to a host.
type Reservation struct {
	VM   int
	Host int
}

// Plan is the planner's answer.
type Plan struct {
	Policy string `json:"policy"`
	// Moves lists migrations in the order they should start.
	Moves []Move `json:"moves"`
	// Unsaved lists at-risk VMs the plan does not evacuate, with reasons.
	Unsaved []Unsaved `json:"unsaved"`
	// AtRisk counts VMs on threatened sites (not frozen).
	AtRisk int `json:"at_risk"`
	// UpperBound is the most at-risk VMs that could be saved at all.
	UpperBound int `json:"upper_bound"`
	// LowerBound is the least possible makespan (from Now) of the planned
	// moves: the largest of bytes/capacity over every resource they use and
	// of each move's solo time.
	LowerBound time.Duration `json:"lower_bound"`
	// Bottleneck names the resource that sets LowerBound.
	Bottleneck string `json:"bottleneck"`
	// Makespan is the predicted finish of the last move (from Now).
	Makespan time.Duration `json:"makespan"`
	// Resources reports load on each resource the moves use.
	Resources []ResourceLoad `json:"resources"`
	// Warnings are plan-level notes (e.g. a service saved without a
	// dependency).
	Warnings []string `json:"warnings,omitempty"`
}

// Move is one planned migration.
type Move struct {
	VM   int    `json:"-"`
	Name string `json:"vm"`
	From int    `json:"-"`
	To   int    `json:"-"`
	// FromHost and ToHost name the hosts.
	FromHost string `json:"from"`
	ToHost   string `json:"to"`
	ToSite   string `json:"to_site"`
	// FromSite names the threatened site the VM leaves.
	FromSite string `json:"from_site"`
	// Route is the list of links crossed.
	Route []int `json:"-"`
	// Mode is how the VM migrates: ModeLive (pre-copy, the guest keeps
	// running) or ModePause (the guest is paused and copied, when the
	// policy allows it and pre-copy cannot save it in time).
	Mode string `json:"mode"`
	// Priority is the effective priority (raised by dependants).
	Priority int `json:"priority"`
	// Bytes is the predicted data to transfer (disk + memory rounds).
	Bytes float64 `json:"bytes"`
	// Solo is the predicted duration with the path to itself.
	Solo time.Duration `json:"solo"`
	// PredStart and PredFinish are predicted offsets from the evacuation start.
	PredStart  time.Duration `json:"pred_start"`
	PredFinish time.Duration `json:"pred_finish"`
	Deadline   time.Duration `json:"deadline"`
	// Bottleneck names what sets PredFinish: a resource (see netpath.Name)
	// or "solo" when the move's own rate does.
	Bottleneck string `json:"bottleneck"`
	Reason     string `json:"reason"`
}

// Migration modes of a Move.
const (
	ModeLive  = "live"
	ModePause = "pause"
)

// Unsaved is an at-risk VM left behind.
type Unsaved struct {
	VM   int    `json:"-"`
	Name string `json:"vm"`
	// Site names the threatened site the VM stays on.
	Site string `json:"site"`
	// Priority is the effective priority (raised by dependants).
	Priority int    `json:"priority"`
	Code     string `json:"code"`
	Reason   string `json:"reason"`
}

// Reason codes for Unsaved.
const (
	CodeNoCapacity  = "no-capacity"  // no safe host can take it
	CodeNoRoute     = "no-route"     // no network path to a safe site
	CodeDeadline    = "deadline"     // predicted to finish after its deadline
	CodeNoSafeSite  = "no-safe-site" // every site is threatened
	CodeNotConverge = "not-converging"
	CodeSourceDown  = "source-down"
)

// ResourceLoad is the planned bytes over one resource.
type ResourceLoad struct {
	Name        string        `json:"name"`
	Bytes       float64       `json:"bytes"`
	CapacityBps float64       `json:"capacity_bps"`
	Time        time.Duration `json:"time"`
}
