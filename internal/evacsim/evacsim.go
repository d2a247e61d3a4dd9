// Package evacsim runs an evacuation scenario in the simulator: it builds the
// simulated federation (simhv on a sim.Engine), plays the scenario's threats
// and events on the virtual clock, drives the real executor and planner, and
// summarises the outcome. `refuge sim` and `refuge demo` are thin wrappers.
package evacsim

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/bound"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor/simhv"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/netpath"
	"github.com/refuge-project/refuge/internal/planner"
	"github.com/refuge-project/refuge/internal/sim"
)

// Epoch is the wall-clock time the simulations start at; only offsets from
// it are reported.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultDetectionDelay is how long monitoring takes to notice a failed host
// or a changed link.
const DefaultDetectionDelay = 5 * time.Second

// Options configure one run.
type Options struct {
	Federation *model.Federation
	Scenario   *model.Scenario
	Policy     model.Policy
	Logger     *slog.Logger
	// OnEvent receives the executor's timeline as it happens (virtual time).
	OnEvent func(executor.Event)
	// DetectionDelay: see DefaultDetectionDelay (0 uses the default).
	DetectionDelay time.Duration
	// Metrics, if not nil, receives the executor's Prometheus metrics.
	Metrics *executor.Metrics
	// OnSample, if not nil, receives the WAN links' load every SampleEvery
	// (default one minute) of simulated time while migrations run.
	OnSample    func(Sample)
	SampleEvery time.Duration
	// Switcher, if not nil, is told of every switchover of a VM with a
	// service (executor.Config.Switcher): a drill exercises service
	// continuity for real while the VMs move in the simulator.
	Switcher executor.Switcher
}

// Sample is the load of the WAN link directions that carry traffic at one
// moment.
type Sample struct {
	At    time.Duration `json:"at"`
	Links []LinkLoad    `json:"links"`
}

// LinkLoad is one link direction's load.
type LinkLoad struct {
	Name        string  `json:"name"`
	CapacityBps float64 `json:"capacity_bps"`
	LoadBps     float64 `json:"load_bps"`
}

// Summary is the outcome of one run, in the units the CLI reports.
type Summary struct {
	Policy            string `json:"policy"`
	VMsTotal          int    `json:"vms_total"`
	VMsAtRisk         int    `json:"vms_at_risk"`
	VMsEvacuated      int    `json:"vms_evacuated"`
	VMsMissedDeadline int    `json:"vms_missed_deadline"`
	// VMsUpperBound and PriorityUpperBound: the most VMs (and priority)
	// any schedule could save (package bound), independent of this run.
	VMsUpperBound      int     `json:"vms_upper_bound"`
	PriorityAtRisk     int     `json:"priority_at_risk"`
	PrioritySaved      int     `json:"priority_saved"`
	PriorityUpperBound int     `json:"priority_upper_bound"`
	MakespanS          float64 `json:"makespan_s"`
	// LowerBoundS is the least makespan any schedule of the VMs this run
	// moved could have (package bound: best rates, site cuts, NICs), and
	// Bottleneck the term that sets it.
	LowerBoundS    float64 `json:"lower_bound_s"`
	Bottleneck     string  `json:"bottleneck"`
	MeanMigrationS float64 `json:"mean_migration_s"`
	MaxMigrationS  float64 `json:"max_migration_s"`
	MaxDowntimeMS  float64 `json:"max_downtime_ms"`
	PlanMS         float64 `json:"plan_ms"`
	Plans          int     `json:"plans"`
	Failures       int     `json:"failed_attempts"`
	SimEvents      uint64  `json:"sim_events"`
	WallMS         float64 `json:"wall_ms"`
}

// Result is a run's summary and details.
type Result struct {
	Summary Summary
	Report  executor.Report
	Plan    *planner.Plan
}

// Run plays the scenario once with o.Policy.
func Run(o Options) (*Result, error) {
	if o.Federation == nil || o.Scenario == nil {
		return nil, errors.New("evacsim: federation and scenario are required")
	}
	wall := time.Now()
	ix := model.NewIndex(o.Federation)
	detect := o.DetectionDelay
	if detect <= 0 {
		detect = DefaultDetectionDelay
	}
	eng := sim.NewEngine(Epoch)
	cluster, err := simhv.New(eng, ix)
	if err != nil {
		return nil, fmt.Errorf("simulated federation: %w", err)
	}
	ex, err := executor.New(executor.Config{
		Index:    ix,
		Policy:   o.Policy,
		Driver:   cluster,
		Clock:    eng,
		Start:    Epoch,
		Logger:   o.Logger,
		Metrics:  o.Metrics,
		OnEvent:  o.OnEvent,
		Switcher: o.Switcher,
	})
	if err != nil {
		return nil, err
	}
	deadlines := map[int]time.Duration{}
	atRiskSites := map[int]bool{}
	for _, t := range o.Scenario.Threats {
		s := ix.SiteByName[t.Site]
		deadlines[s] = t.Deadline.D()
		atRiskSites[s] = true
	}
	// Scenario actions run inside the event loop; the first error stops the
	// run (they only fail on indices the validated scenario cannot hold).
	var simErr error
	must := func(err error) {
		if err != nil && simErr == nil {
			simErr = err
		}
	}
	// The site is lost at its (latest) deadline.
	siteLoss := map[int]func() bool{}
	scheduleLoss := func(s int, at time.Duration) {
		if stop := siteLoss[s]; stop != nil {
			stop()
		}
		t := eng.AfterFunc(at-eng.Elapsed(), func() { must(cluster.LoseSite(s)) })
		siteLoss[s] = t.Stop
	}
	for s, d := range deadlines {
		scheduleLoss(s, d)
	}
	for _, ev := range o.Scenario.Events {
		ev := ev
		at := ev.At.D()
		switch ev.Kind {
		case model.EventSiteLost:
			s := ix.SiteByName[ev.Site]
			eng.AfterFunc(at, func() { must(cluster.LoseSite(s)) })
			eng.AfterFunc(at+detect, func() {
				for h := range ix.Hosts {
					if ix.HostSite(h) == s {
						ex.HostDown(h)
					}
				}
			})
		case model.EventHostFailed:
			h := ix.HostByName[ev.Host]
			eng.AfterFunc(at, func() { must(cluster.FailHost(h)) })
			eng.AfterFunc(at+detect, func() { ex.HostDown(h) })
		case model.EventLinkDegraded, model.EventLinkCut:
			l := ix.LinkByName[ev.Link]
			mbps := ev.BandwidthMbps
			if ev.Kind == model.EventLinkCut {
				mbps = 0
			}
			eng.AfterFunc(at, func() { must(cluster.SetLinkMbps(l, mbps)) })
			eng.AfterFunc(at+detect, func() { ex.SetLinkMbps(l, mbps) })
		case model.EventDeadlineChanged:
			s := ix.SiteByName[ev.Site]
			d := ev.Deadline.D()
			atRiskSites[s] = true
			eng.AfterFunc(at, func() {
				scheduleLoss(s, d)
				ex.SetDeadline(s, d)
			})
		}
	}
	if err := ex.Start(deadlines); err != nil {
		return nil, err
	}
	if o.OnSample != nil {
		every := o.SampleEvery
		if every <= 0 {
			every = time.Minute
		}
		var sample func()
		sample = func() {
			if cluster.Running() == 0 {
				select {
				case <-ex.Done():
					return
				default:
				}
			}
			o.OnSample(sampleLinks(eng.Elapsed(), cluster))
			eng.AfterFunc(every, sample)
		}
		eng.AfterFunc(every, sample)
	}
	eng.Run()
	if simErr != nil {
		return nil, fmt.Errorf("scenario: %w", simErr)
	}
	if err := cluster.Check(); err != nil {
		return nil, fmt.Errorf("simulated federation inconsistent after the run: %w", err)
	}
	rep := ex.Report()
	res := &Result{Report: rep, Plan: rep.FirstPlan}
	res.Summary = summarize(ix, o.Policy.Name, atRiskSites, rep)
	res.Summary.SimEvents = eng.Events()
	res.Summary.WallMS = float64(time.Since(wall).Microseconds()) / 1000
	if err := res.Summary.bound(ix, deadlines, latestDeadlines(ix, o.Scenario), rep); err != nil {
		return nil, err
	}
	return res, nil
}

// latestDeadlines gives every site the scenario threatens, at any time, its
// latest deadline: bounds computed with it stay bounds whatever the
// warnings' updates did.
func latestDeadlines(ix *model.Index, sc *model.Scenario) map[int]time.Duration {
	out := map[int]time.Duration{}
	add := func(site string, d time.Duration) {
		s := ix.SiteByName[site]
		if prev, ok := out[s]; !ok || d > prev {
			out[s] = d
		}
	}
	for _, t := range sc.Threats {
		add(t.Site, t.Deadline.D())
	}
	for _, ev := range sc.Events {
		if ev.Kind == model.EventDeadlineChanged {
			add(ev.Site, ev.Deadline.D())
		}
	}
	return out
}

// bound fills the schedule-independent bounds (package bound): the most
// VMs any schedule could save (every site the scenario threatens, at its
// latest deadline), and the least makespan of moving the VMs this run moved
// from the sites threatened at the start (best rates, cuts, NICs).
func (s *Summary) bound(ix *model.Index, deadlines, latest map[int]time.Duration, rep executor.Report) error {
	saved, err := bound.SavedUpperBound(bound.Input{Index: ix, Deadlines: latest})
	if err != nil {
		return fmt.Errorf("upper bound: %w", err)
	}
	in := bound.Input{Index: ix, Deadlines: deadlines}
	s.VMsUpperBound, s.PriorityUpperBound = saved.Count, saved.Priority
	var moved []int
	for v, r := range rep.VMs {
		if r.Status == executor.StatusMigrated && deadlines != nil {
			if h := ix.VMHost[v]; h >= 0 {
				if _, ok := deadlines[ix.HostSite(h)]; ok {
					moved = append(moved, v)
				}
			}
		}
	}
	lb, err := bound.MakespanLowerBoundOf(in, moved)
	if err != nil {
		return fmt.Errorf("lower bound: %w", err)
	}
	s.LowerBoundS, s.Bottleneck = lb.Bound.Seconds(), lb.Binding
	return nil
}

func summarize(ix *model.Index, policy string, atRiskSites map[int]bool, rep executor.Report) Summary {
	s := Summary{Policy: policy, VMsTotal: len(ix.Fed.VMs), Plans: rep.Plans}
	s.PlanMS = float64(rep.PlanTime.Microseconds()) / 1000
	var sum time.Duration
	for v, r := range rep.VMs {
		h := ix.VMHost[v]
		if h < 0 || !atRiskSites[ix.HostSite(h)] {
			continue
		}
		s.VMsAtRisk++
		prio := ix.Fed.VMs[v].Priority
		s.PriorityAtRisk += prio
		s.Failures += max(r.Attempts-1, 0)
		if r.Status != executor.StatusMigrated {
			if r.Attempts > 0 {
				s.Failures++
			}
			continue
		}
		s.VMsEvacuated++
		s.PrioritySaved += prio
		sum += r.Duration
		s.MakespanS = math.Max(s.MakespanS, r.Finished.Seconds())
		s.MaxMigrationS = math.Max(s.MaxMigrationS, r.Duration.Seconds())
		s.MaxDowntimeMS = math.Max(s.MaxDowntimeMS, float64(r.Downtime.Microseconds())/1000)
	}
	s.VMsMissedDeadline = s.VMsAtRisk - s.VMsEvacuated
	if s.VMsEvacuated > 0 {
		s.MeanMigrationS = sum.Seconds() / float64(s.VMsEvacuated)
	}
	return s
}

// Baseline is one baseline's headline figures.
type Baseline struct {
	Name              string  `json:"name"`
	VMsEvacuated      int     `json:"vms_evacuated"`
	VMsMissedDeadline int     `json:"vms_missed_deadline"`
	MakespanS         float64 `json:"makespan_s"`
	MeanMigrationS    float64 `json:"mean_migration_s"`
	MaxDowntimeMS     float64 `json:"max_downtime_ms"`
	PrioritySaved     int     `json:"priority_saved"`
}

// Comparison is a run of the chosen policy beside the baselines.
type Comparison struct {
	Summary
	Baselines []Baseline `json:"baselines"`
	// Results holds the full results: the chosen policy first, then the
	// baselines in BaselineNames order.
	Results []*Result `json:"-"`
}

// Compare runs o.Policy and every baseline (concurrently: the runs share
// nothing) and returns them side by side. OnEvent and Metrics only see the
// chosen policy's run.
func Compare(o Options) (*Comparison, error) {
	names := model.BaselineNames
	results := make([]*Result, len(names)+1)
	errs := make([]error, len(names)+1)
	var wg sync.WaitGroup
	for i := range results {
		opts := o
		if i > 0 {
			p, err := model.PolicyByName(names[i-1])
			if err != nil {
				return nil, err
			}
			opts.Policy, opts.OnEvent, opts.OnSample, opts.Metrics = p, nil, nil, nil
			opts.Logger = nil
		}
		wg.Go(func() { results[i], errs[i] = Run(opts) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c := &Comparison{Summary: results[0].Summary, Results: results}
	for _, r := range results[1:] {
		s := r.Summary
		c.Baselines = append(c.Baselines, Baseline{Name: s.Policy, VMsEvacuated: s.VMsEvacuated,
			VMsMissedDeadline: s.VMsMissedDeadline, MakespanS: s.MakespanS, MeanMigrationS: s.MeanMigrationS,
			MaxDowntimeMS: s.MaxDowntimeMS, PrioritySaved: s.PrioritySaved})
	}
	return c, nil
}

func sampleLinks(at time.Duration, c *simhv.Cluster) Sample {
	s := Sample{At: at}
	for _, r := range c.Resources() {
		if r.Resource.Kind == netpath.Link && r.LoadBps > 0 {
			s.Links = append(s.Links, LinkLoad{Name: r.Name, CapacityBps: r.CapacityBps, LoadBps: r.LoadBps})
		}
	}
	return s
}
