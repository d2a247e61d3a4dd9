package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/planner"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure whole-system figures (see also `make bench`)",
	}
	cmd.AddCommand(newBenchPlanCmd(), newBenchSimCmd())
	cmd.AddCommand(newBenchSavedCmd())
	return cmd
}

// benchSimResult is what `refuge bench sim --json` prints.
type benchSimResult struct {
	VMs       int                 `json:"vms"`
	Hosts     int                 `json:"hosts"`
	Sites     int                 `json:"sites"`
	Seed      uint64              `json:"seed"`
	Threats   []model.Threat      `json:"threats"`
	WallMS    float64             `json:"wall_ms"`
	Result    *evacsim.Comparison `json:"result"`
	EventsSec float64             `json:"sim_events_per_s"`
	Policies  []evacsim.Summary   `json:"policies"`
}

func newBenchSimCmd() *cobra.Command {
	var vms, hosts, sites int
	var seed uint64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sim --vms N --hosts M [--json]",
		Short: "Simulate an evacuation of a generated federation with refuge and the baselines, and time it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if vms <= 0 || hosts <= 0 || sites < 2 {
				return fmt.Errorf("--vms and --hosts must be > 0 and --sites >= 2")
			}
			fed, err := fedgen.Generate(fedgen.Options{Sites: sites, Hosts: hosts, VMs: vms, Seed: seed})
			if err != nil {
				return err
			}
			sc := fedgen.Threaten(fed, fedgen.ThreatOptions{Seed: seed})
			t0 := time.Now()
			c, err := evacsim.Compare(evacsim.Options{Federation: fed, Scenario: sc, Policy: model.RefugePolicy()})
			if err != nil {
				return err
			}
			res := benchSimResult{VMs: vms, Hosts: hosts, Sites: sites, Seed: seed, Threats: sc.Threats,
				WallMS: float64(time.Since(t0).Microseconds()) / 1000}
			var events uint64
			var wall float64
			for _, r := range c.Results {
				res.Policies = append(res.Policies, r.Summary)
				events += r.Summary.SimEvents
				wall += r.Summary.WallMS
			}
			if wall > 0 {
				res.EventsSec = float64(events) / (wall / 1000)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprintf(out, "generated %d VMs on %d hosts in %d sites (seed %d); %d sites threatened; simulated 4 policies in %.0f ms\n\n",
				vms, hosts, sites, seed, len(sc.Threats), res.WallMS)
			printComparison(out, c)
			return nil
		},
	}
	cmd.Flags().IntVar(&vms, "vms", 10000, "number of VMs")
	cmd.Flags().IntVar(&hosts, "hosts", 1000, "number of hosts")
	cmd.Flags().IntVar(&sites, "sites", 10, "number of sites")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "generator seed")
	jsonObjectFlag(cmd, &asJSON, "the policies' results")
	return cmd
}

// benchPlanResult is what `refuge bench plan --json` prints.
type benchPlanResult struct {
	VMs        int       `json:"vms"`
	Hosts      int       `json:"hosts"`
	Sites      int       `json:"sites"`
	Threatened int       `json:"threatened_sites"`
	AtRisk     int       `json:"vms_at_risk"`
	Moves      int       `json:"moves"`
	Unsaved    int       `json:"unsaved"`
	Runs       int       `json:"runs"`
	PlanMS     float64   `json:"plan_ms"`
	PlanMSAll  []float64 `json:"plan_ms_runs"`
	GenerateMS float64   `json:"generate_ms"`
	Seed       uint64    `json:"seed"`
	DeadlineS  float64   `json:"deadline_s"`
}

func newBenchPlanCmd() *cobra.Command {
	var vms, hosts, sites, runs int
	var seed uint64
	var asJSON bool
	var deadline time.Duration
	cmd := &cobra.Command{
		Use:   "plan --vms N --hosts M [--json]",
		Short: "Time the planner on a generated federation (median of --runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if vms <= 0 || hosts <= 0 || runs <= 0 || deadline <= 0 {
				return fmt.Errorf("--vms, --hosts, --runs and --deadline must be > 0")
			}
			if sites <= 0 {
				sites = max(3, min(20, hosts/50))
			}
			t0 := time.Now()
			fed, err := fedgen.Generate(fedgen.Options{Sites: sites, Hosts: hosts, VMs: vms, Seed: seed})
			if err != nil {
				return err
			}
			res := benchPlanResult{VMs: len(fed.VMs), Hosts: hosts, Sites: sites, Runs: runs, Seed: seed,
				GenerateMS: float64(time.Since(t0).Microseconds()) / 1000, DeadlineS: deadline.Seconds()}
			ix := model.NewIndex(fed)
			// Threaten about a third of the sites.
			deadlines := map[int]time.Duration{}
			for s := 0; s < len(fed.Sites); s += 3 {
				deadlines[s] = deadline
			}
			res.Threatened = len(deadlines)
			for range runs {
				t := time.Now()
				p, err := planner.Compute(planner.Input{Index: ix, Policy: model.RefugePolicy(), Deadlines: deadlines})
				if err != nil {
					return err
				}
				res.PlanMSAll = append(res.PlanMSAll, float64(time.Since(t).Microseconds())/1000)
				res.AtRisk, res.Moves, res.Unsaved = p.AtRisk, len(p.Moves), len(p.Unsaved)
			}
			sorted := append([]float64(nil), res.PlanMSAll...)
			sort.Float64s(sorted)
			res.PlanMS = sorted[len(sorted)/2]
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprintf(out, "planned %d VMs (%d at risk) on %d hosts in %d sites: median %.1f ms over %d runs (%d moves, %d unsaved)\n",
				res.VMs, res.AtRisk, res.Hosts, res.Sites, res.PlanMS, runs, res.Moves, res.Unsaved)
			return nil
		},
	}
	cmd.Flags().IntVar(&vms, "vms", 10000, "number of VMs")
	cmd.Flags().IntVar(&hosts, "hosts", 100, "number of hosts")
	cmd.Flags().IntVar(&sites, "sites", 0, "number of sites (default: hosts/50, within [3, 20])")
	cmd.Flags().IntVar(&runs, "runs", 5, "timed runs (the median is reported)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "generator seed")
	jsonObjectFlag(cmd, &asJSON, "the timings")
	cmd.Flags().DurationVar(&deadline, "deadline", time.Hour, "deadline of the threatened sites (every third site)")
	return cmd
}
