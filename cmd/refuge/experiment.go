package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/seed004"
)

// newSimExperimentCmd is `refuge sim experiment NAME`: reproductions of
// the seed papers' evaluations in the simulator.
func newSimExperimentCmd() *cobra.Command {
	var asJSON, quick, noScale bool
	var seed uint64
	var clients []int
	cmd := &cobra.Command{
		Use:   "experiment seed004 [--json]",
		Short: "Reproduce a seed paper's evaluation (seed004: placement, monitoring and power) beside the paper's figures",
		Long: `Runs a seed paper's experiments in the simulator and prints refuge's figures
beside the paper's. seed004 (Kim and Lim, Sustainability 2019): failed tasks, SLA
violations and utilisation of an LMS on 15 hosts (50…550 clients), utilisation
percentiles and power of 100 hosts (10…40 VMs added), the monitoring balance
metric (N = 5…10), and what the paper does not measure: the placement policies
at 10 000 hosts and the n-queen assignment of 1 000 000 hosts.
docs/seed004.md states every assumption and discusses the differences.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"seed004"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "seed004" {
				return fmt.Errorf("unknown experiment %q (known: seed004)", args[0])
			}
			o := seed004.DefaultOptions()
			o.Seed = seed
			if quick {
				o.LMS.Replicates, o.Efficiency.Replicates = 1, 1
			}
			if len(clients) > 0 {
				for _, c := range clients {
					if c < 1 {
						return fmt.Errorf("--clients: %d, want counts >= 1", c)
					}
				}
				o.LMS.Clients = clients
			}
			if noScale {
				o.Scale, o.ConsolidationHours = nil, 0
			} else {
				o.Scale.Seed = seed
			}
			r, err := seed004.Run(o)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printExperiment(cmd.OutOrStdout(), r)
			return nil
		},
	}
	jsonObjectFlag(cmd, &asJSON, `the results ({"figures":[{"figure","method","x","value","paper",…}], "variants":[…], "diagnostics":[…], "scale":…})`)
	cmd.Flags().BoolVar(&quick, "quick", false, "one replicate per point instead of five (faster, noisier)")
	cmd.Flags().BoolVar(&noScale, "no-scale", false, "skip the measurements beyond the paper (10 000 hosts, 1 000 000-host assignment, consolidation loop)")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "seed of the workloads and of power-of-two's choices")
	cmd.Flags().IntSliceVar(&clients, "clients", nil, "client counts of the LMS experiment (default the paper's 50,150,…,550; others use ~64 requests per client)")
	return cmd
}

func printExperiment(w io.Writer, r *seed004.Report) {
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', tabwriter.AlignRight)
	titles := map[string]string{
		seed004.FigFailed + "/clients":       "Failed tasks (Figure 3)",
		seed004.FigSLA + "/clients":          "SLA violations (Figure 4)",
		seed004.FigUtil + "/clients":         "Average utilisation of the active hosts, % (Figure 5)",
		seed004.FigUtilAll + "/clients":      "Average utilisation of all hosts, idle ones included, % (not the paper's metric)",
		seed004.FigUtil + "/vms":             "Average utilisation of all hosts, off hosts as 0, % (Figure 7)",
		seed004.FigBalance + "/board_n":      "Monitoring balance metric, truncated to 2 decimals as the paper's (Figure 6a)",
		seed004.FigPower + "/vms":            "Total power, W (Figures 9 and 10)",
		seed004.DiagHostsActive + "/clients": "Active hosts (running VMs) of the LMS experiment",
		seed004.DiagHostsOff + "/vms":        "Hosts powered off",
		seed004.DiagOverloaded + "/vms":      "Overloaded hosts (expected demand above the cores)",
		seed004.DiagUnserved + "/vms":        "Expected demand above the overloaded hosts' cores (not served, draws no power)",
		seed004.DiagWattsPerCore + "/vms":    "Power per core of demand served, W",
	}
	printFigureGroups(w, tw, r.Figures, titles)
	printFigureGroups(w, tw, r.Diagnostics, titles)
	if c := r.Consolidation; c != nil {
		fmt.Fprintf(w, "\nConsolidation loop, hourly for %g simulated hours on the %d hosts with %d VMs (not in the paper):\n", c.Hours, c.Hosts, c.VMs)
		fmt.Fprintf(w, "  energy %.1f kWh with the loop vs %.1f kWh without (%.1f %% less); %d migrations through the executor, %d failed; %d hosts off; highest utilisation %.0f %%\n",
			c.EnergyLoopKWh, c.EnergyStaticKWh, c.SavingPct, c.Migrated, c.Failed, c.HostsOff, c.MaxUtilPct)
	}
	if s := r.Scale; s != nil {
		fmt.Fprintf(w, "\nAt %d hosts, %d VMs placed one by one (not in the paper)\n", s.Hosts, s.VMs)
		fmt.Fprintln(tw, "policy\tmax load %\tp99 load %\toverloaded\thosts on\tmigrations\tpower W\tkWh/day\tµs/VM\t")
		for _, p := range s.Policies {
			fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%d\t%d\t%d\t%.0f\t%.0f\t%.2f\t\n", p.Policy, p.MaxLoadPct, p.P99LoadPct, p.Overloaded,
				s.Hosts-p.HostsOff, p.Migrations, p.PowerW, p.EnergyKWhPerDay, p.PlaceUSPerVM)
		}
		_ = tw.Flush()
		fmt.Fprintf(w, "\nn-queen assignment of %d hosts (board %d×%d, Level 2, every queen's targets): %.1f ms (goal < 1 s)\n",
			s.AssignHosts, s.AssignBoard, s.AssignBoard, s.AssignMS)
	}
	fmt.Fprintf(w, "\nValues in [brackets] are the paper's. Run time %.1f s. See docs/seed004.md.\n", r.WallMS/1000)
}

// printFigureGroups prints one table per figure and x axis (means,
// totals and balance values only), methods as rows.
func printFigureGroups(w io.Writer, tw *tabwriter.Writer, figs []seed004.Figure, titles map[string]string) {
	type group struct{ fig, xname string }
	var order []group
	rows := map[group][]seed004.Figure{}
	for _, f := range figs {
		if f.Stat != "mean" && f.Stat != "balance" && f.Stat != "total" {
			continue
		}
		g := group{f.Figure, f.XName}
		if _, seen := rows[g]; !seen {
			order = append(order, g)
		}
		rows[g] = append(rows[g], f)
	}
	for _, g := range order {
		title := titles[g.fig+"/"+g.xname]
		if title == "" {
			title = g.fig
		}
		fmt.Fprintf(w, "\n%s, by %s\n", title, strings.ReplaceAll(g.xname, "_", " "))
		fs := rows[g]
		var xs []float64
		seen := map[float64]bool{}
		var methods []string
		byMethod := map[string]map[float64]seed004.Figure{}
		for _, f := range fs {
			if !seen[f.X] {
				seen[f.X] = true
				xs = append(xs, f.X)
			}
			if byMethod[f.Method] == nil {
				byMethod[f.Method] = map[float64]seed004.Figure{}
				methods = append(methods, f.Method)
			}
			byMethod[f.Method][f.X] = f
		}
		sort.Float64s(xs)
		fmt.Fprint(tw, "method\t")
		for _, x := range xs {
			fmt.Fprintf(tw, "%g\t", x)
		}
		fmt.Fprintln(tw)
		for _, m := range methods {
			fmt.Fprintf(tw, "%s\t", m)
			for _, x := range xs {
				fmt.Fprintf(tw, "%s\t", cell(byMethod[m][x]))
			}
			fmt.Fprintln(tw)
		}
		_ = tw.Flush()
	}
}

func cell(f seed004.Figure) string {
	if f.Figure == "" {
		return "-"
	}
	s := fmt.Sprintf("%.4g", f.Value)
	if f.Value >= 1000 || f.Value <= -1000 {
		s = fmt.Sprintf("%.0f", f.Value)
	}
	if f.Paper != nil {
		s += fmt.Sprintf(" [%g]", *f.Paper)
	}
	return s
}
