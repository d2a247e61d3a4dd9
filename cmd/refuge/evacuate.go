package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor"
	"github.com/refuge-project/refuge/internal/hypervisor/libvirt"
	"github.com/refuge-project/refuge/internal/model"
)

func newEvacuateCmd(g *globalFlags) *cobra.Command {
	var in inputFlags
	var o evacOptions
	var jsonOut bool
	var site string
	var deadline time.Duration
	cmd := &cobra.Command{
		Use:   "evacuate --federation F (--scenario S | --site NAME --deadline D) [--policy NAME] [--json]",
		Short: "Evacuate threatened sites for real, through libvirt, beside the simulator's prediction",
		Long: `evacuate connects to every host of the federation that has a libvirt uri,
reads where the VMs really run, plans the evacuation of the threatened sites and
live-migrates them with the same planner and executor as 'refuge sim'. It then
prints each migration's measured duration and downtime next to what the
simulator predicts for the same federation, scenario and policy.

A host's uri may carry a "peer" query parameter: the URI the other hosts'
daemons use to reach it for peer-to-peer migration, when it differs from the
one refuge connects to (docs/libvirt.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (in.scenario == "") == (site == "") {
				return errors.New("give either --scenario or --site with --deadline")
			}
			fed, sc, pol, err := in.load()
			if err != nil {
				return err
			}
			if sc == nil {
				sc = &model.Scenario{Name: "evacuate-" + site, Threats: []model.Threat{{Site: site, Deadline: model.Duration(deadline)}}}
				if err := sc.Validate(fed); err != nil {
					return fmt.Errorf("--site/--deadline: %w", err)
				}
			}
			o.Federation, o.Scenario, o.Policy = fed, sc, pol
			o.Logger = g.logger(cmd.ErrOrStderr())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			rep, err := runEvacuation(ctx, o)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printEvacuation(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	in.register(cmd, false)
	cmd.Flags().StringVar(&in.scenario, "scenario", "", "scenario YAML file naming the threatened sites and deadlines")
	cmd.Flags().StringVar(&site, "site", "", "threatened site (with --deadline)")
	cmd.Flags().DurationVar(&deadline, "deadline", 10*time.Minute, "time until the threatened site is lost (with --site)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&o.NoPredict, "no-predict", false, "do not run the simulator for predictions")
	cmd.Flags().BoolVar(&o.NonLive, "non-live", false, "migrate non-live (paused for the whole copy), for hypervisors whose live migration cannot be trusted (QEMU 7.2 under TCG)")
	cmd.Flags().DurationVar(&o.HealthSettle, "health-settle", 0, "how long a guest must keep answering its agent after a switch-over (default 2s)")
	return cmd
}

// evacOptions configure one real evacuation.
type evacOptions struct {
	Federation *model.Federation
	Scenario   *model.Scenario
	Policy     model.Policy
	Logger     *slog.Logger
	// OnEvent receives the executor's timeline.
	OnEvent func(executor.Event)
	// NoPredict skips the simulator run.
	NoPredict bool
	// HealthSettle overrides the driver's default.
	HealthSettle time.Duration
	// NonLive makes every migration non-live (libvirt.Config.NonLive).
	NonLive bool
}

// evacVM is one VM's real outcome and the simulator's prediction.
type evacVM struct {
	Name     string `json:"vm"`
	Status   string `json:"status"`
	From     string `json:"from"`
	To       string `json:"to,omitempty"`
	Attempts int    `json:"attempts"`
	// StartS is when its (last) migration started, from the evacuation's start.
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
	// The simulator's prediction for the same inputs.
	PredictedTo         string  `json:"predicted_to,omitempty"`
	PredictedStartS     float64 `json:"predicted_start_s"`
	PredictedS          float64 `json:"predicted_s"`
	PredictedDowntimeMS float64 `json:"predicted_downtime_ms"`
	// ErrorPct is (predicted − measured) / measured migration time, in %.
	ErrorPct float64 `json:"error_pct"`
}

// evacReport is the outcome of `refuge evacuate`.
type evacReport struct {
	Federation   string `json:"federation"`
	Policy       string `json:"policy"`
	Live         bool   `json:"live"`
	VMsAtRisk    int    `json:"vms_at_risk"`
	VMsEvacuated int    `json:"vms_evacuated"`
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
	// Restarted counts guests found dead after their switch-over and
	// restarted from disk at the destination.
	Restarted int              `json:"restarted"`
	VMs       []evacVM         `json:"vms"`
	Timeline  []executor.Event `json:"timeline"`
	Steps     []libvirt.Step   `json:"driver_steps"`
}

// runEvacuation evacuates for real and, unless told not to, simulates the
// same inputs for the prediction.
func runEvacuation(ctx context.Context, o evacOptions) (*evacReport, error) {
	fed, sc := o.Federation, o.Scenario
	ix := model.NewIndex(fed)
	hosts := libvirt.HostsFromFederation(fed)
	if len(hosts) != len(ix.Hosts) {
		return nil, fmt.Errorf("federation %s: %d of %d hosts have a libvirt uri; every host needs one", fed.Name, len(hosts), len(ix.Hosts))
	}
	drv, err := libvirt.New(libvirt.Config{Hosts: hosts, Logger: o.Logger, HealthSettle: o.HealthSettle, NonLive: o.NonLive})
	if err != nil {
		return nil, err
	}
	defer drv.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = drv.WaitConnected(wctx)
	cancel()
	if err != nil {
		return nil, err
	}
	placement, err := realPlacement(ctx, ix, drv, o.Logger)
	if err != nil {
		return nil, err
	}
	deadlines := map[int]time.Duration{}
	for _, t := range sc.Threats {
		deadlines[ix.SiteByName[t.Site]] = t.Deadline.D()
	}
	start := time.Now()
	ex, err := executor.New(executor.Config{Index: ix, Policy: o.Policy, Driver: drv, Clock: clock.Real{},
		Start: start, Placement: placement, Logger: o.Logger, OnEvent: o.OnEvent})
	if err != nil {
		return nil, err
	}
	if err := ex.Start(deadlines); err != nil {
		return nil, err
	}
	select {
	case <-ex.Done():
	case <-ctx.Done():
		ex.Stop()
		<-ex.Done()
	}
	rep := ex.Report()
	out := &evacReport{Federation: fed.Name, Policy: o.Policy.Name, Live: !o.NonLive, Timeline: rep.Timeline, Steps: drv.Steps()}
	last := map[string]libvirt.Record{}
	for _, r := range drv.Records() {
		last[r.Domain] = r // the last attempt
	}
	var pred map[string]executor.VMRecord
	if !o.NoPredict {
		res, err := evacsim.Run(evacsim.Options{Federation: fed, Scenario: sc, Policy: o.Policy})
		if err != nil {
			return nil, fmt.Errorf("prediction: %w", err)
		}
		pred = map[string]executor.VMRecord{}
		for _, r := range res.Report.VMs {
			pred[r.Name] = r
			if r.Status == executor.StatusMigrated {
				out.PredictedMakespanS = max(out.PredictedMakespanS, r.Finished.Seconds())
			}
		}
	}
	var sumErr, sum, psum float64
	for _, r := range rep.VMs {
		if r.Status == executor.StatusSafe {
			continue
		}
		out.VMsAtRisk++
		v := evacVM{Name: r.Name, Status: string(r.Status), From: r.From, To: r.To, Attempts: r.Attempts,
			StartS: r.Started.Seconds(), ExecutorS: r.Duration.Seconds(), DowntimeMS: ms(r.Downtime), Reason: r.Reason}
		if m, ok := last[r.Name]; ok {
			v.MigrationS = m.Finished.Sub(m.Started).Seconds()
			v.Bytes, v.Rounds = m.Bytes, m.Rounds
			v.DowntimeMS, v.OutageMS, v.Restarted = ms(m.Downtime), ms(m.Outage), m.Restarted
			if r.Status == executor.StatusMigrated {
				out.MigrationsEndS = max(out.MigrationsEndS, m.Finished.Sub(start).Seconds())
			}
			if m.Restarted {
				out.Restarted++
			}
		}
		if p, ok := pred[r.Name]; ok && p.Status == executor.StatusMigrated {
			v.PredictedTo, v.PredictedStartS, v.PredictedS, v.PredictedDowntimeMS = p.To, p.Started.Seconds(), p.Duration.Seconds(), ms(p.Downtime)
			if v.MigrationS > 0 {
				v.ErrorPct = 100 * (v.PredictedS - v.MigrationS) / v.MigrationS
			}
		}
		if r.Status == executor.StatusMigrated {
			out.VMsEvacuated++
			out.MakespanS = max(out.MakespanS, r.Finished.Seconds())
			out.MaxDowntimeMS = max(out.MaxDowntimeMS, v.DowntimeMS)
			sum += v.MigrationS
			psum += v.PredictedS
			sumErr += abs(v.ErrorPct)
		}
		out.VMs = append(out.VMs, v)
	}
	sort.Slice(out.VMs, func(i, j int) bool { return out.VMs[i].StartS < out.VMs[j].StartS })
	if n := float64(out.VMsEvacuated); n > 0 {
		out.MeanMigrationS, out.PredictedMeanS, out.MeanAbsErrorPct = sum/n, psum/n, sumErr/n
	}
	if out.MigrationsEndS > 0 && pred != nil {
		out.MakespanErrorPct = 100 * (out.PredictedMakespanS - out.MigrationsEndS) / out.MigrationsEndS
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// realPlacement asks every host which domains are active on it and
// returns each model VM's host index (-1 when it runs nowhere).
func realPlacement(ctx context.Context, ix *model.Index, drv *libvirt.Driver, lg *slog.Logger) ([]int, error) {
	placement := make([]int, len(ix.Fed.VMs))
	for v := range placement {
		placement[v] = -1
	}
	for h := range ix.Hosts {
		name := ix.Host(h).Name
		doms, err := drv.ListDomains(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		for _, d := range doms {
			v, ok := ix.VMByName[d.Name]
			if !ok || (d.State != hypervisor.StateRunning && d.State != hypervisor.StatePaused) {
				continue
			}
			if placement[v] >= 0 {
				return nil, fmt.Errorf("inventory: %s is active on both %s and %s", d.Name, ix.Host(placement[v]).Name, name)
			}
			placement[v] = h
		}
	}
	for v, h := range placement {
		switch {
		case h < 0:
			lg.Warn("VM not running anywhere", "vm", ix.Fed.VMs[v].Name)
		case h != ix.VMHost[v]:
			lg.Warn("VM runs elsewhere than the federation says", "vm", ix.Fed.VMs[v].Name, "federation", ix.Fed.VMs[v].Host, "actual", ix.Host(h).Name)
		}
	}
	return placement, nil
}

func printEvacuation(w io.Writer, r *evacReport) {
	mode := "live"
	if !r.Live {
		mode = "non-live"
	}
	fmt.Fprintf(w, "Evacuation of %s (policy %s, %s): %d of %d VMs evacuated; migrations ended at %.1f s (simulator: %.1f s, %+.1f %%), done at %.1f s\n",
		r.Federation, r.Policy, mode, r.VMsEvacuated, r.VMsAtRisk, r.MigrationsEndS, r.PredictedMakespanS, r.MakespanErrorPct, r.MakespanS)
	if r.Restarted > 0 {
		fmt.Fprintf(w, "%d guests were dead after their switch-over and were restarted from disk at the destination\n", r.Restarted)
	}
	fmt.Fprintf(w, "mean migration %.1f s (simulator %.1f s), mean |error| %.1f %%, max downtime %.0f ms\n\n",
		r.MeanMigrationS, r.PredictedMeanS, r.MeanAbsErrorPct, r.MaxDowntimeMS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "vm\tstatus\tto\tstart s\tmigration s\tdowntime ms\trestarted\tMiB\t\tpredicted to\tstart s\tmigration s\tdowntime ms\terror %\t")
	for _, v := range r.VMs {
		restart := "-"
		if v.Restarted {
			restart = fmt.Sprintf("%.1f s out", v.OutageMS/1000)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.2f\t%.0f\t%s\t%d\t\t%s\t%.1f\t%.2f\t%.0f\t%+.1f\t\n", v.Name, v.Status, v.To, v.StartS, v.MigrationS,
			v.DowntimeMS, restart, v.Bytes>>20, v.PredictedTo, v.PredictedStartS, v.PredictedS, v.PredictedDowntimeMS, v.ErrorPct)
	}
	tw.Flush()
	for _, v := range r.VMs {
		if v.Reason != "" && v.Status != string(executor.StatusMigrated) {
			fmt.Fprintf(w, "  %s: %s\n", v.Name, v.Reason)
		}
	}
}
