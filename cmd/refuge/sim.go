package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
)

type simFlags struct {
	json        bool
	verbose     bool
	quiet       bool
	links       bool
	metricsFile string
}

func (s *simFlags) register(cmd *cobra.Command) {
	jsonObjectFlag(cmd, &s.json, "the outcome (no timeline)")
	cmd.Flags().BoolVarP(&s.verbose, "verbose", "v", false, "show every migration's start and end in the timeline")
	cmd.Flags().BoolVarP(&s.quiet, "quiet", "q", false, "no timeline, summary only")
	cmd.Flags().BoolVar(&s.links, "links", false, "show WAN link utilisation every simulated minute in the timeline")
	cmd.Flags().StringVar(&s.metricsFile, "metrics-file", "", "write the executor's Prometheus metrics (text format) to this file at the end")
}

func newSimCmd(g *globalFlags) *cobra.Command {
	var in inputFlags
	var sf simFlags
	cmd := &cobra.Command{
		Use:   "sim --federation F --scenario S [--policy NAME] [--json]",
		Short: "Simulate an evacuation scenario with a policy, beside the baselines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fed, sc, pol, err := in.load()
			if err != nil {
				return err
			}
			return runSimulation(cmd, g, &sf, fed, sc, pol)
		},
	}
	in.register(cmd, true)
	sf.register(cmd)
	return cmd
}

func newDemoCmd(g *globalFlags) *cobra.Command {
	var sf simFlags
	cmd := &cobra.Command{
		Use:   "demo [--json]",
		Short: "Run the bundled Nankai-trough example in the simulator: refuge vs the baselines",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fed, sc, err := loadExample("nankai-trough")
			if err != nil {
				return err
			}
			if !sf.json {
				fmt.Fprintf(cmd.OutOrStdout(), "refuge demo — %s\n%s\n\n", sc.Name, wrap(sc.Description, 78))
			}
			return runSimulation(cmd, g, &sf, fed, sc, model.RefugePolicy())
		},
	}
	sf.register(cmd)
	return cmd
}

func runSimulation(cmd *cobra.Command, g *globalFlags, sf *simFlags, fed *model.Federation, sc *model.Scenario, pol model.Policy) error {
	out := cmd.OutOrStdout()
	opts := evacsim.Options{Federation: fed, Scenario: sc, Policy: pol, Logger: g.logger(cmd.ErrOrStderr())}
	var tl *timeline
	if !sf.json && !sf.quiet {
		tl = newTimeline(out, fed, sc, sf.verbose)
		opts.OnEvent = tl.event
		if sf.links {
			opts.OnSample = tl.sample
		}
		tl.header(pol.Name)
	}
	var reg *prometheus.Registry
	if sf.metricsFile != "" {
		reg = prometheus.NewRegistry()
		m, err := executor.NewMetrics(reg)
		if err != nil {
			return err
		}
		opts.Metrics = m
	}
	cmp, err := evacsim.Compare(opts)
	if err != nil {
		return err
	}
	if reg != nil {
		if err := prometheus.WriteToTextfile(sf.metricsFile, reg); err != nil {
			return fmt.Errorf("write metrics: %w", err)
		}
	}
	if sf.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(cmp)
	}
	if tl != nil {
		tl.finish()
	}
	printComparison(out, cmp)
	return nil
}

// timeline prints executor events as a readable log with a progress bar.
type timeline struct {
	w         io.Writer
	verbose   bool
	atRisk    int
	safe      int
	migrating int
	nextBar   time.Duration
}

const barEvery = time.Minute

func newTimeline(w io.Writer, fed *model.Federation, sc *model.Scenario, verbose bool) *timeline {
	ix := model.NewIndex(fed)
	threatened := map[int]bool{}
	for _, t := range sc.Threats {
		threatened[ix.SiteByName[t.Site]] = true
	}
	for _, e := range sc.Events {
		if e.Kind == model.EventDeadlineChanged {
			threatened[ix.SiteByName[e.Site]] = true
		}
	}
	n := 0
	for _, h := range ix.VMHost {
		if h >= 0 && threatened[ix.HostSite(h)] {
			n++
		}
	}
	return &timeline{w: w, verbose: verbose, atRisk: n, nextBar: barEvery}
}

func (t *timeline) header(policy string) {
	fmt.Fprintf(t.w, "Timeline (policy %s, simulated time; %d VMs at risk)\n", policy, t.atRisk)
}

func clockString(d time.Duration) string {
	d = d.Round(100 * time.Millisecond)
	m := int(d / time.Minute)
	s := (d % time.Minute).Seconds()
	return fmt.Sprintf("%02d:%04.1f", m, s)
}

func (t *timeline) bar(at time.Duration) {
	const width = 30
	filled := 0
	if t.atRisk > 0 {
		filled = t.safe * width / t.atRisk
	}
	fmt.Fprintf(t.w, "  %s  [%s%s] %d/%d VMs safe, %d migrating\n", clockString(at),
		strings.Repeat("█", filled), strings.Repeat("░", width-filled), t.safe, t.atRisk, t.migrating)
}

func (t *timeline) event(e executor.Event) {
	for e.At >= t.nextBar {
		t.bar(t.nextBar)
		t.nextBar += barEvery
	}
	switch e.Kind {
	case executor.EvStart:
		t.migrating++
		if !t.verbose {
			return
		}
	case executor.EvDone:
		t.migrating--
		t.safe++
		if !t.verbose {
			return
		}
	case executor.EvFail:
		t.migrating--
	}
	line := fmt.Sprintf("  %s  %-9s", clockString(e.At), e.Kind)
	if e.VM != "" {
		line += " " + e.VM
	}
	if e.From != "" || e.To != "" {
		line += fmt.Sprintf(" %s → %s", e.From, e.To)
	}
	if e.Detail != "" {
		line += "  " + e.Detail
	}
	fmt.Fprintln(t.w, line)
}

func (t *timeline) sample(s evacsim.Sample) {
	var parts []string
	for _, l := range s.Links {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", strings.TrimPrefix(l.Name, "link:"), 100*l.LoadBps/l.CapacityBps))
	}
	if len(parts) > 0 {
		fmt.Fprintf(t.w, "  %s  links     %s\n", clockString(s.At), strings.Join(parts, ", "))
	}
}

func (t *timeline) finish() {
	fmt.Fprintln(t.w)
}

func printComparison(w io.Writer, c *evacsim.Comparison) {
	s := c.Summary
	fmt.Fprintf(w, "Summary (%s)\n", s.Policy)
	fmt.Fprintf(w, "  VMs: %d in total, %d at risk; at most %d could be saved (upper bound)\n", s.VMsTotal, s.VMsAtRisk, s.VMsUpperBound)
	fmt.Fprintf(w, "  evacuated %d, missed their deadline %d\n", s.VMsEvacuated, s.VMsMissedDeadline)
	ratio := 0.0
	if s.LowerBoundS > 0 {
		ratio = s.MakespanS / s.LowerBoundS
	}
	fmt.Fprintf(w, "  makespan %.1f s; lower bound for the VMs evacuated %.1f s (%s); ratio %.3f\n", s.MakespanS, s.LowerBoundS, s.Bottleneck, ratio)
	fmt.Fprintf(w, "  mean migration %.1f s, longest %.1f s, max downtime %.0f ms\n", s.MeanMigrationS, s.MaxMigrationS, s.MaxDowntimeMS)
	fmt.Fprintf(w, "  %d plans computed in %.1f ms in total; %d simulator events in %.0f ms\n\n", s.Plans, s.PlanMS, s.SimEvents, s.WallMS)
	fmt.Fprintf(w, "  %-14s %10s %8s %11s %10s %13s %15s\n", "policy", "evacuated", "missed", "makespan s", "mean mig s", "max downtime", "priority saved")
	row := func(name string, ev, missed int, mk, mean, down float64, prio int) {
		fmt.Fprintf(w, "  %-14s %6d/%-3d %8d %11.1f %10.1f %10.0f ms %8d/%-6d\n", name, ev, s.VMsAtRisk, missed, mk, mean, down, prio, s.PriorityAtRisk)
	}
	row(s.Policy, s.VMsEvacuated, s.VMsMissedDeadline, s.MakespanS, s.MeanMigrationS, s.MaxDowntimeMS, s.PrioritySaved)
	for _, b := range c.Baselines {
		row(b.Name, b.VMsEvacuated, b.VMsMissedDeadline, b.MakespanS, b.MeanMigrationS, b.MaxDowntimeMS, b.PrioritySaved)
	}
}

// wrap breaks text into lines of at most width characters.
func wrap(text string, width int) string {
	var b strings.Builder
	line := 0
	for _, word := range strings.Fields(text) {
		if line > 0 && line+1+len([]rune(word)) > width {
			b.WriteByte('\n')
			line = 0
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(word)
		line += len([]rune(word))
	}
	return b.String()
}
