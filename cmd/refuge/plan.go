package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/planner"
)

func newPlanCmd(g *globalFlags) *cobra.Command {
	var in inputFlags
	var asJSON, explain bool
	cmd := &cobra.Command{
		Use:   "plan --federation F --scenario S [--json] [--explain]",
		Short: "Print the evacuation plan for a scenario's threats without running it",
		Long: `plan computes the evacuation plan at the moment the warning arrives (t=0):
which VMs go where and in what order, their predicted start and finish, the
makespan lower bound, an upper bound on the VMs that can be saved, and the
VMs that cannot be saved with the reason. Scenario events after t=0 are not
known to the planner and are ignored here; "refuge sim" plays them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fed, sc, pol, err := in.load()
			if err != nil {
				return err
			}
			ix := model.NewIndex(fed)
			deadlines := map[int]time.Duration{}
			for _, t := range sc.Threats {
				deadlines[ix.SiteByName[t.Site]] = t.Deadline.D()
			}
			t0 := time.Now()
			p, err := planner.Compute(planner.Input{Index: ix, Policy: pol, Deadlines: deadlines})
			if err != nil {
				return err
			}
			planMS := float64(time.Since(t0).Microseconds()) / 1000
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					*planner.Plan
					PlanMS float64 `json:"plan_ms"`
				}{p, planMS})
			case explain:
				return planner.Explain(out, ix, p)
			default:
				fmt.Fprintf(out, "Plan (%s): %d at risk, %d moves, %d unsaved, upper bound %d\n",
					p.Policy, p.AtRisk, len(p.Moves), len(p.Unsaved), p.UpperBound)
				fmt.Fprintf(out, "lower bound %s (%s), predicted makespan %s, planned in %.1f ms\n\n",
					p.LowerBound.Round(100*time.Millisecond), p.Bottleneck, p.Makespan.Round(100*time.Millisecond), planMS)
				fmt.Fprintf(out, "%4s  %-28s %-18s %-18s %8s %9s %9s %9s\n", "#", "vm", "from", "to", "priority", "GiB", "start s", "finish s")
				for i, m := range p.Moves {
					fmt.Fprintf(out, "%4d  %-28s %-18s %-18s %8d %9.1f %9.1f %9.1f\n", i+1, m.Name, m.FromHost, m.ToHost,
						m.Priority, m.Bytes/model.GiB, m.PredStart.Seconds(), m.PredFinish.Seconds())
				}
				for _, u := range p.Unsaved {
					fmt.Fprintf(out, "   -  %-28s unsaved (%s): %s\n", u.Name, u.Code, u.Reason)
				}
				return nil
			}
		},
	}
	in.register(cmd, true)
	jsonObjectFlag(cmd, &asJSON, "the plan")
	cmd.Flags().BoolVar(&explain, "explain", false, "explain every decision")
	return cmd
}
