// Package evacuate runs a real evacuation through the libvirt driver: it
// connects to every host of the federation (concurrently, each within a
// bounded time; a host that does not answer is down and evacuated around),
// reads where the VMs really run, executes the plan with the same planner
// and executor as the simulator, and reports each migration beside the
// simulator's prediction for the same inputs. `refuge evacuate` is a thin
// wrapper.
//
// Times are offsets from Options.Start — the command's start or the
// alert's time — so that the time spent connecting and taking inventory
// counts against the deadline instead of shifting it.
package evacuate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor/libvirt"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/world"
)

// DefaultConnectTimeout bounds how long Run waits for a host's daemon.
const DefaultConnectTimeout = world.DefaultConnectTimeout

// Options configure one real evacuation.
type Options struct {
	Federation *model.Federation
	Scenario   *model.Scenario
	Policy     model.Policy
	Logger     *slog.Logger
	// Clock is the executor's clock (nil: the wall clock).
	Clock clock.Clock
	// Start anchors the scenario's deadlines: the command's start or the
	// alert's time (zero: when Run is called).
	Start time.Time
	// ConnectTimeout bounds the wait for each host (DefaultConnectTimeout
	// if 0); hosts connect concurrently.
	ConnectTimeout time.Duration
	// OnHosts, if not nil, receives every host's state once connecting
	// has ended, before anything moves.
	OnHosts func([]libvirt.HostState)
	// OnEvent receives the executor's timeline as it happens (under the
	// executor's lock: it must not call back into the executor).
	OnEvent func(executor.Event)
	// NoPredict skips the simulator run.
	NoPredict bool
	// HealthSettle overrides the driver's default.
	HealthSettle time.Duration
	// NonLive makes every migration non-live (libvirt.Config.NonLive).
	NonLive bool
	// Continuity, if not nil, keeps the services reachable: their TTL is
	// lowered to LoweredTTL (0: continuity.DefaultLoweredTTL) before
	// anything moves and restored at the end, and the executor calls it
	// at each switchover. Its failures are reported, never fatal.
	Continuity Continuity
	LoweredTTL uint32
	// Open replaces the libvirt driver (tests).
	Open func(libvirt.Config) (world.Hypervisor, error)
}

// VM is one VM's real outcome and the simulator's prediction.
type VM struct {
	Name     string `json:"vm"`
	Status   string `json:"status"`
	From     string `json:"from"`
	To       string `json:"to,omitempty"`
	Attempts int    `json:"attempts"`
	// StartS is when its (last) migration started, from Options.Start.
	StartS float64 `json:"start_s"`
	// MigrationS is the migration's duration as libvirt ran it (from the
	// request to the end of virDomainMigratePerform3Params).
	MigrationS float64 `json:"migration_s"`
	// ExecutorS is the executor's duration, which also covers the
	// driver's post-switch-over checks (placement, guest health).
	ExecutorS float64 `json:"executor_s"`
	// DowntimeMS is the switch-over pause libvirt measured; OutageMS adds
	// the time until a guest that died at the switch-over answered again
	// after its restart (Restarted).
	DowntimeMS float64 `json:"downtime_ms"`
	OutageMS   float64 `json:"outage_ms"`
	Restarted  bool    `json:"restarted"`
	Bytes      uint64  `json:"bytes"`
	Rounds     int     `json:"rounds"`
	Reason     string  `json:"reason,omitempty"`
	// NonZeroShare is the sampled share of its memory that is not zero
	// pages (non-live runs; 0: not sampled).
	NonZeroShare float64 `json:"nonzero_share,omitempty"`
	// The simulator's prediction for the same inputs.
	PredictedTo     string  `json:"predicted_to,omitempty"`
	PredictedStartS float64 `json:"predicted_start_s"`
	PredictedS      float64 `json:"predicted_s"`
	// PredictedDowntimeMS is the predicted switch-over pause; for a
	// non-live run, the whole pause (the migration but its set-up).
	PredictedDowntimeMS float64 `json:"predicted_downtime_ms"`
	// ErrorPct is (predicted − measured) / measured migration time, in %.
	ErrorPct float64 `json:"error_pct"`
}

// Report is the outcome of one evacuation.
type Report struct {
	Federation string `json:"federation"`
	Policy     string `json:"policy"`
	Live       bool   `json:"live"`
	// HostsDown lists the hosts that could not be reached; their VMs are
	// lost (status lost, reason "unreachable").
	HostsDown      []libvirt.HostState `json:"hosts_down,omitempty"`
	VMsAtRisk      int                 `json:"vms_at_risk"`
	VMsEvacuated   int                 `json:"vms_evacuated"`
	VMsUnreachable int                 `json:"vms_unreachable"`
	// ReadyS is when connecting and inventory ended and the executor
	// started, from Options.Start: the part of the deadline they used.
	ReadyS float64 `json:"ready_s"`
	// MakespanS is when the executor finished (after the driver's checks
	// and any restarts); MigrationsEndS when the last migration ended.
	MakespanS          float64 `json:"makespan_s"`
	MigrationsEndS     float64 `json:"migrations_end_s"`
	PredictedMakespanS float64 `json:"predicted_makespan_s"`
	// MakespanErrorPct compares the simulator's makespan with MigrationsEndS.
	MakespanErrorPct float64 `json:"makespan_error_pct"`
	MeanMigrationS   float64 `json:"mean_migration_s"`
	PredictedMeanS   float64 `json:"predicted_mean_migration_s"`
	MeanAbsErrorPct  float64 `json:"mean_abs_error_pct"`
	MaxDowntimeMS    float64 `json:"max_downtime_ms"`
	// PredictMS is the wall time the prediction took after the evacuation
	// (sampling the guests' memory and the simulation).
	PredictMS float64 `json:"predict_ms"`
	// Restarted counts guests found dead after their switch-over and
	// restarted from disk at the destination.
	Restarted int              `json:"restarted"`
	VMs       []VM             `json:"vms"`
	Timeline  []executor.Event `json:"timeline"`
	Steps     []libvirt.Step   `json:"driver_steps"`
	// ContinuityServices are the services at risk whose names continuity
	// looked after (with Options.Continuity); Switchovers its calls, in
	// order; ContinuityErrors its failed steps.
	ContinuityServices []string     `json:"continuity_services,omitempty"`
	Switchovers        []Switchover `json:"switchovers,omitempty"`
	ContinuityErrors   []string     `json:"continuity_errors,omitempty"`
}

// Run evacuates for real and, unless told not to, simulates the same
// inputs for the prediction.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Federation == nil || o.Scenario == nil {
		return nil, errors.New("evacuate: federation and scenario are required")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Start.IsZero() {
		o.Start = o.Clock.Now()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	fed := o.Federation
	hosts, err := world.Connect(ctx, world.HostsConfig{Federation: fed, Logger: o.Logger, ConnectTimeout: o.ConnectTimeout,
		HealthSettle: o.HealthSettle, NonLive: o.NonLive, Switchover: o.Continuity != nil, OnHosts: o.OnHosts, Open: o.Open})
	if err != nil {
		return nil, fmt.Errorf("evacuate: %w", err)
	}
	defer hosts.Close()
	drv, ix, down := hosts.Hypervisor(), hosts.Index(), hosts.Unreachable()
	inv, err := hosts.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	if err := inv.CheckOnce(ix); err != nil {
		return nil, err
	}
	deadlines := map[int]time.Duration{}
	for _, t := range o.Scenario.Threats {
		deadlines[ix.SiteByName[t.Site]] = t.Deadline.D()
	}
	ready := o.Clock.Now().Sub(o.Start)
	var services []string
	var sw executor.Switcher
	var rec *recorder
	if o.Continuity != nil {
		services = atRiskServices(ix, o.Scenario, inv.Placement)
		rec = &recorder{next: o.Continuity}
		sw = rec
	}
	var rep executor.Report
	problems, err := withContinuity(ctx, o.Continuity, services, o.LoweredTTL, true, o.Logger, func() (err error) {
		rep, err = execute(ctx, ix, o, drv, inv, deadlines, sw)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := &Report{Federation: fed.Name, Policy: o.Policy.Name, Live: !o.NonLive, HostsDown: down, ReadyS: ready.Seconds(),
		Timeline: rep.Timeline, Steps: drv.Steps(), ContinuityServices: services}
	if rec != nil {
		var failed []string
		out.Switchovers, failed = rec.calls()
		out.ContinuityErrors = append(problems, failed...)
	}
	var pred *prediction
	if !o.NoPredict {
		began := time.Now()
		shares := map[string]float64{}
		if o.NonLive {
			shares = sampleMemory(ctx, drv, rep.VMs, o.Logger)
		}
		if pred, err = predict(ix, o, inv, shares, ready); err != nil {
			return nil, fmt.Errorf("prediction: %w", err)
		}
		out.PredictMS = ms(time.Since(began))
	}
	out.fill(ix, o, inv, rep.VMs, drv.Records(), pred)
	return out, nil
}

// sampleMemory measures, where each moved VM now runs, the share of its
// memory a non-live migration sends (non-zero pages). It runs after the
// evacuation, so it costs the deadline nothing; a VM that cannot be
// sampled keeps the model's full memory.
func sampleMemory(ctx context.Context, drv world.Hypervisor, recs []executor.VMRecord, lg *slog.Logger) map[string]float64 {
	const chunks = 64
	var mu sync.Mutex
	out := map[string]float64{}
	var wg sync.WaitGroup
	for i, r := range recs {
		if r.Status != executor.StatusMigrated || r.To == "" {
			continue
		}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 0x5eed))
			s, err := drv.SampleNonZero(ctx, r.To, r.Name, chunks, rng)
			if err != nil {
				lg.Warn("memory not sampled; the prediction sends all of it", "vm", r.Name, "err", err)
				return
			}
			mu.Lock()
			out[r.Name] = s
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// fill builds the per-VM rows and the totals.
func (out *Report) fill(ix *model.Index, o Options, inv *world.Inventory, recs []executor.VMRecord, drvRecs []libvirt.Record, pred *prediction) {
	threatened := map[int]bool{}
	for _, t := range o.Scenario.Threats {
		threatened[ix.SiteByName[t.Site]] = true
	}
	last := map[string]libvirt.Record{}
	for _, r := range drvRecs {
		last[r.Domain] = r // the last attempt
	}
	var sumErr, sum, psum float64
	for v, r := range recs {
		if r.Status == executor.StatusSafe {
			continue
		}
		vm := VM{Name: r.Name, Status: string(r.Status), From: r.From, To: r.To, Attempts: r.Attempts,
			StartS: r.Started.Seconds(), ExecutorS: r.Duration.Seconds(), DowntimeMS: ms(r.Downtime), Reason: r.Reason}
		home := inv.Placement[v]
		if home < 0 {
			home = ix.VMHost[v]
		}
		if home >= 0 && threatened[ix.HostSite(home)] {
			out.VMsAtRisk++
		}
		if why, ok := inv.Unreachable[v]; ok {
			out.VMsUnreachable++
			vm.From, vm.Reason = ix.Host(ix.VMHost[v]).Name, why
		}
		if m, ok := last[r.Name]; ok {
			vm.MigrationS = m.Finished.Sub(m.Started).Seconds()
			vm.Bytes, vm.Rounds = m.Bytes, m.Rounds
			vm.DowntimeMS, vm.OutageMS, vm.Restarted = ms(m.Downtime), ms(m.Outage), m.Restarted
			if r.Status == executor.StatusMigrated {
				out.MigrationsEndS = max(out.MigrationsEndS, m.Finished.Sub(o.Start).Seconds())
			}
			if m.Restarted {
				out.Restarted++
			}
		}
		if pred != nil {
			vm.NonZeroShare = pred.shares[r.Name]
			if p, ok := pred.vms[r.Name]; ok && p.Status == executor.StatusMigrated {
				vm.PredictedTo, vm.PredictedStartS, vm.PredictedS, vm.PredictedDowntimeMS = p.To, p.Started.Seconds(), p.Duration.Seconds(), ms(p.Downtime)
				if vm.MigrationS > 0 {
					vm.ErrorPct = 100 * (vm.PredictedS - vm.MigrationS) / vm.MigrationS
				}
			}
		}
		if r.Status == executor.StatusMigrated {
			out.VMsEvacuated++
			out.MakespanS = max(out.MakespanS, r.Finished.Seconds())
			out.MaxDowntimeMS = max(out.MaxDowntimeMS, vm.DowntimeMS)
			sum += vm.MigrationS
			psum += vm.PredictedS
			sumErr += abs(vm.ErrorPct)
		}
		out.VMs = append(out.VMs, vm)
	}
	sort.SliceStable(out.VMs, func(i, j int) bool { return out.VMs[i].StartS < out.VMs[j].StartS })
	if n := float64(out.VMsEvacuated); n > 0 {
		out.MeanMigrationS, out.PredictedMeanS, out.MeanAbsErrorPct = sum/n, psum/n, sumErr/n
	}
	if pred != nil {
		out.PredictedMakespanS = pred.makespan.Seconds()
		if out.MigrationsEndS > 0 {
			out.MakespanErrorPct = 100 * (out.PredictedMakespanS - out.MigrationsEndS) / out.MigrationsEndS
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
