package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/bound"
	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/model"
)

// defaultFixturesDir holds the scheduler's regression cases, beside the
// repository in the development set-up.
const defaultFixturesDir = "../shared/fixtures/scenarios"

// farDeadline replaces every deadline for the makespan runs.
const farDeadline = 24 * time.Hour

// maxSeeds bounds --seeds.
const maxSeeds = 10000

// benchSavedPolicy is one policy's outcome on one federation.
type benchSavedPolicy struct {
	Policy        string `json:"policy"`
	Saved         int    `json:"saved"`
	PrioritySaved int    `json:"priority_saved"`
	// The run with far deadlines: the VMs moved, the makespan and its
	// ratio to the lower bound. When the run moved fewer VMs than can move
	// (Complete false), the ratio is to the bound for the VMs it moved.
	Moved         int     `json:"far_moved"`
	Complete      bool    `json:"far_complete"`
	MakespanS     float64 `json:"far_makespan_s"`
	MakespanRatio float64 `json:"far_makespan_ratio"`
}

// benchSavedCase is one federation's row.
type benchSavedCase struct {
	Name           string `json:"name"`
	Seed           uint64 `json:"seed,omitempty"`
	Sites          int    `json:"sites"`
	Threatened     int    `json:"threatened"`
	AtRisk         int    `json:"at_risk"`
	PriorityAtRisk int    `json:"priority_at_risk"`
	// The schedule-independent bounds (package bound).
	SavedUpperBound     int     `json:"saved_upper_bound"`
	SavedBinding        string  `json:"saved_binding"`
	PriorityUpperBound  int     `json:"priority_upper_bound"`
	Movable             int     `json:"movable"`
	MakespanLowerBoundS float64 `json:"makespan_lower_bound_s"`
	MakespanBinding     string  `json:"makespan_binding"`
	// Policies: refuge first, then the baselines.
	Policies []benchSavedPolicy `json:"policies"`
	WallMS   float64            `json:"wall_ms"`
}

// benchSavedSummary averages the generated cases.
type benchSavedSummary struct {
	Cases int `json:"cases"`
	// MeanRefugeOverBound is the mean over cases of refuge's saved VMs ÷
	// the upper bound (a case whose bound is 0 counts as 1);
	// TotalRefugeOverBound is the ratio of the sums.
	MeanRefugeOverBound  float64 `json:"mean_refuge_over_bound"`
	TotalRefugeOverBound float64 `json:"total_refuge_over_bound"`
	// WorstRefugeOverBestBaseline is the least, over cases, of refuge's
	// saved VMs ÷ the best baseline's (cases where every baseline saves
	// none count as 1), in WorstCase; RefugeBehind counts the cases where
	// some baseline saves more than refuge.
	WorstRefugeOverBestBaseline float64 `json:"worst_refuge_over_best_baseline"`
	WorstCase                   string  `json:"worst_case"`
	RefugeBehind                int     `json:"refuge_behind_a_baseline"`
	// MeanMakespanRatio is, per policy, the mean makespan ÷ lower bound
	// of the runs with far deadlines; Incomplete counts, per policy, the
	// runs that did not move every VM that can move.
	MeanMakespanRatio map[string]float64 `json:"mean_makespan_ratio"`
	Incomplete        map[string]int     `json:"incomplete"`
}

// benchSavedResult is what `refuge bench saved --json` prints.
type benchSavedResult struct {
	Seeds    []uint64          `json:"seeds"`
	Cases    []benchSavedCase  `json:"cases"`
	Summary  benchSavedSummary `json:"summary"`
	Fixtures []benchSavedCase  `json:"fixtures"`
	WallMS   float64           `json:"wall_ms"`
}

func newBenchSavedCmd() *cobra.Command {
	var seedsFlag, fixtures string
	var asJSON bool
	var caseOpts fedgen.CaseOptions
	cmd := &cobra.Command{
		Use:   "saved [--seeds 1-20] [--fixtures DIR] [--json]",
		Short: "Compare refuge and the baselines with schedule-independent bounds on generated federations",
		Long: `bench saved generates one federation per seed (fedgen.Case: 3–6 sites in a
ring, chain, star or ring with chords, 1–3 of them threatened with deadlines
of 3–20 minutes, links of 0.5–10 Gbit/s, dirtying guests), simulates refuge
and every baseline on it, and reports the VMs each saves beside the most any
schedule can save (bound.SavedUpperBound). It then simulates the same
federation with every deadline 24 h away and reports each policy's makespan
÷ the least makespan of any schedule that moves every VM
(bound.MakespanLowerBound). The scheduler's regression cases in --fixtures
(one directory per case with federation.yaml and scenario.yaml) are
reported the same way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			seeds, err := parseSeeds(seedsFlag)
			if err != nil {
				return fmt.Errorf("--seeds %q: %w", seedsFlag, err)
			}
			dirs, err := fixtureDirs(fixtures, cmd.Flags().Changed("fixtures"))
			if err != nil {
				return fmt.Errorf("--fixtures %q: %w", fixtures, err)
			}
			t0 := time.Now()
			progress := cmd.ErrOrStderr()
			res := benchSavedResult{Seeds: seeds, Cases: []benchSavedCase{}, Fixtures: []benchSavedCase{}}
			for _, seed := range seeds {
				opts := caseOpts
				opts.Seed = seed
				fed, sc, err := fedgen.Case(opts)
				if err != nil {
					return err
				}
				c, err := benchSavedRun(fmt.Sprintf("seed %d", seed), fed, sc)
				if err != nil {
					return fmt.Errorf("seed %d: %w", seed, err)
				}
				c.Seed = seed
				res.Cases = append(res.Cases, c)
				printSavedProgress(progress, c)
			}
			for _, dir := range dirs {
				c, err := benchSavedFixture(dir)
				if err != nil {
					return err
				}
				res.Fixtures = append(res.Fixtures, c)
				printSavedProgress(progress, c)
			}
			res.Summary = summarizeSaved(res.Cases)
			res.WallMS = float64(time.Since(t0).Microseconds()) / 1000
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printSaved(out, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&seedsFlag, "seeds", "1-20", `seeds of the generated federations: ranges and lists, e.g. "1-20" or "1,3,5-7"`)
	cmd.Flags().StringVar(&fixtures, "fixtures", defaultFixturesDir,
		"directory of regression cases (DIR/NAME/federation.yaml and scenario.yaml); the default is used only when present, \"\" skips them")
	cmd.Flags().IntVar(&caseOpts.MaxHostsPerSite, "max-hosts-per-site", 0, "hosts per site are drawn from 2 to this (0: fedgen's default, 4)")
	cmd.Flags().IntVar(&caseOpts.VMsPerHost, "vms-per-host", 0, "VMs per host on average (0: fedgen's default, 12)")
	jsonObjectFlag(cmd, &asJSON, "every case and the summary")
	return cmd
}

// parseSeeds reads a list of seeds and ranges ("1-20", "1,3,5-7"). Seeds
// must be distinct.
func parseSeeds(s string) ([]uint64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no seeds given")
	}
	var out []uint64
	seen := map[uint64]bool{}
	add := func(v uint64) error {
		if seen[v] {
			return fmt.Errorf("seed %d given twice", v)
		}
		if len(out) == maxSeeds {
			return fmt.Errorf("more than %d seeds", maxSeeds)
		}
		seen[v] = true
		out = append(out, v)
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a seed or a range of seeds (want e.g. 7 or 1-20)", part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 64); err != nil {
				return nil, fmt.Errorf("%q is not a range of seeds (want e.g. 1-20)", part)
			}
			if b < a {
				return nil, fmt.Errorf("range %q runs backwards", part)
			}
			if b-a >= maxSeeds {
				return nil, fmt.Errorf("range %q has more than %d seeds", part, maxSeeds)
			}
		}
		for v := a; ; v++ {
			if err := add(v); err != nil {
				return nil, err
			}
			if v == b {
				break
			}
		}
	}
	return out, nil
}

// fixtureDirs lists the case directories under dir. A missing default
// directory means none; a missing directory the user named is an error.
func fixtureDirs(dir string, explicit bool) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no case directories in it (want DIR/NAME/federation.yaml and scenario.yaml)")
	}
	sort.Strings(out)
	return out, nil
}

// benchSavedFixture runs one regression case.
func benchSavedFixture(dir string) (benchSavedCase, error) {
	fed, err := model.LoadFederation(filepath.Join(dir, "federation.yaml"))
	if err != nil {
		return benchSavedCase{}, fmt.Errorf("fixture %s: %w", dir, err)
	}
	path := filepath.Join(dir, "scenario.yaml")
	sc, err := model.LoadScenario(path, fed)
	if err != nil {
		return benchSavedCase{}, fmt.Errorf("fixture %s: %w", dir, err)
	}
	if len(sc.Events) > 0 {
		return benchSavedCase{}, fmt.Errorf("fixture %s: %d events; the bounds assume the scenario's initial state, so bench saved takes threats only", path, len(sc.Events))
	}
	c, err := benchSavedRun(filepath.Base(dir), fed, sc)
	if err != nil {
		return benchSavedCase{}, fmt.Errorf("fixture %s: %w", dir, err)
	}
	return c, nil
}

// benchSavedRun simulates refuge and the baselines on one federation, with
// the scenario's deadlines and with far ones, and computes the bounds.
func benchSavedRun(name string, fed *model.Federation, sc *model.Scenario) (benchSavedCase, error) {
	t0 := time.Now()
	ix := model.NewIndex(fed)
	in := bound.ForScenario(ix, sc)
	saved, err := bound.SavedUpperBound(in)
	if err != nil {
		return benchSavedCase{}, err
	}
	// With deadlines far away no policy pauses a guest: the makespans are
	// compared with the bound for live (pre-copy) evacuations.
	live := in
	live.LiveOnly = true
	lower, err := bound.MakespanLowerBound(live)
	if err != nil {
		return benchSavedCase{}, err
	}
	c := benchSavedCase{Name: name, Sites: len(fed.Sites), Threatened: len(in.Deadlines), AtRisk: saved.AtRisk,
		PriorityAtRisk: saved.PriorityAtRisk, SavedUpperBound: saved.Count, SavedBinding: saved.Binding,
		PriorityUpperBound: saved.Priority, Movable: lower.VMs, MakespanLowerBoundS: lower.Bound.Seconds(),
		MakespanBinding: lower.Binding}
	withDeadlines, err := evacsim.Compare(evacsim.Options{Federation: fed, Scenario: sc, Policy: model.RefugePolicy()})
	if err != nil {
		return c, fmt.Errorf("simulating with the deadlines: %w", err)
	}
	far := fedgen.WithDeadline(sc, farDeadline)
	withoutDeadlines, err := evacsim.Compare(evacsim.Options{Federation: fed, Scenario: far, Policy: model.RefugePolicy()})
	if err != nil {
		return c, fmt.Errorf("simulating with deadlines %s away: %w", farDeadline, err)
	}
	for i, r := range withDeadlines.Results {
		p := benchSavedPolicy{Policy: r.Summary.Policy, Saved: r.Summary.VMsEvacuated, PrioritySaved: r.Summary.PrioritySaved}
		farRun := withoutDeadlines.Results[i]
		var moved []int
		for v, vr := range farRun.Report.VMs {
			if vr.Status == executor.StatusMigrated {
				moved = append(moved, v)
			}
		}
		p.Moved, p.Complete, p.MakespanS = len(moved), len(moved) >= lower.VMs, farRun.Summary.MakespanS
		lb := lower
		if !p.Complete {
			if lb, err = bound.MakespanLowerBoundOf(live, moved); err != nil {
				return c, fmt.Errorf("%s with far deadlines: %w", p.Policy, err)
			}
		}
		p.MakespanRatio = ratio(p.MakespanS, lb.Bound.Seconds())
		c.Policies = append(c.Policies, p)
	}
	c.WallMS = float64(time.Since(t0).Microseconds()) / 1000
	return c, nil
}

// ratio is a/b; 1 when both are 0, and 0 when only b is (a bound of 0
// cannot be beaten, so that does not happen with valid bounds).
func ratio(a, b float64) float64 {
	switch {
	case b > 0:
		return a / b
	case a == 0:
		return 1
	}
	return 0
}

// summarizeSaved averages the generated cases.
func summarizeSaved(cases []benchSavedCase) benchSavedSummary {
	s := benchSavedSummary{Cases: len(cases), MeanMakespanRatio: map[string]float64{}, Incomplete: map[string]int{}}
	if len(cases) == 0 {
		return s
	}
	s.WorstRefugeOverBestBaseline = math.Inf(1)
	var refuge, bnd int
	for _, c := range cases {
		ref := c.Policies[0].Saved
		refuge += ref
		bnd += c.SavedUpperBound
		s.MeanRefugeOverBound += ratio(float64(ref), float64(c.SavedUpperBound)) / float64(len(cases))
		r := refugeOverBestBaseline(c)
		if r < 1 {
			s.RefugeBehind++
		}
		if r < s.WorstRefugeOverBestBaseline {
			s.WorstRefugeOverBestBaseline, s.WorstCase = r, c.Name
		}
		for _, p := range c.Policies {
			s.MeanMakespanRatio[p.Policy] += p.MakespanRatio / float64(len(cases))
			if !p.Complete {
				s.Incomplete[p.Policy]++
			}
		}
	}
	s.TotalRefugeOverBound = ratio(float64(refuge), float64(bnd))
	return s
}

// refugeOverBestBaseline is refuge's saved VMs ÷ the best baseline's (1
// when every baseline saves none).
func refugeOverBestBaseline(c benchSavedCase) float64 {
	best := 0
	for _, p := range c.Policies[1:] {
		best = max(best, p.Saved)
	}
	if best == 0 {
		return 1
	}
	return float64(c.Policies[0].Saved) / float64(best)
}

func printSavedProgress(w io.Writer, c benchSavedCase) {
	parts := make([]string, len(c.Policies))
	for i, p := range c.Policies {
		parts[i] = fmt.Sprintf("%s %d", p.Policy, p.Saved)
	}
	fmt.Fprintf(w, "%s: %d at risk, bound %d; %s (%.0f ms)\n", c.Name, c.AtRisk, c.SavedUpperBound, strings.Join(parts, ", "), c.WallMS)
}

// printSaved prints the result as Markdown tables.
func printSaved(w io.Writer, res benchSavedResult) {
	all := append(append([]benchSavedCase(nil), res.Cases...), res.Fixtures...)
	if len(all) == 0 {
		fmt.Fprintln(w, "no cases")
		return
	}
	names := make([]string, len(all[0].Policies))
	for i, p := range all[0].Policies {
		names[i] = p.Policy
	}
	fmt.Fprintln(w, "Saved before the deadlines (VMs; bound: the most any schedule can save)")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| case | sites | threatened | at risk | bound | %s | refuge/bound | refuge/best baseline | priority refuge / bound | binding |\n", strings.Join(names, " | "))
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|%s---:|---:|---:|---|\n", strings.Repeat("---:|", len(names)))
	for _, c := range all {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d |", c.Name, c.Sites, c.Threatened, c.AtRisk, c.SavedUpperBound)
		for _, p := range c.Policies {
			fmt.Fprintf(w, " %d |", p.Saved)
		}
		fmt.Fprintf(w, " %.2f | %.2f | %d / %d | %s |\n", ratio(float64(c.Policies[0].Saved), float64(c.SavedUpperBound)),
			refugeOverBestBaseline(c), c.Policies[0].PrioritySaved, c.PriorityUpperBound, c.SavedBinding)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Makespan with every deadline %.0f h away: makespan ÷ lower bound (* (n): moved only n VMs; ratio to the bound for those)\n", farDeadline.Hours())
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| case | movable | lower bound | binding | %s |\n", strings.Join(names, " | "))
	fmt.Fprintf(w, "|---|---:|---:|---|%s\n", strings.Repeat("---:|", len(names)))
	for _, c := range all {
		fmt.Fprintf(w, "| %s | %d | %.0f s | %s |", c.Name, c.Movable, c.MakespanLowerBoundS, c.MakespanBinding)
		for _, p := range c.Policies {
			mark := ""
			if !p.Complete {
				mark = fmt.Sprintf("* (%d)", p.Moved)
			}
			fmt.Fprintf(w, " %.2f%s |", p.MakespanRatio, mark)
		}
		fmt.Fprintln(w)
	}
	s := res.Summary
	if s.Cases == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Over %d generated cases: refuge/bound mean %.3f (total %.3f); worst refuge/best baseline %.2f (%s); refuge behind a baseline in %d\n",
		s.Cases, s.MeanRefugeOverBound, s.TotalRefugeOverBound, s.WorstRefugeOverBestBaseline, s.WorstCase, s.RefugeBehind)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.2f", n, s.MeanMakespanRatio[n])
		if k := s.Incomplete[n]; k > 0 {
			parts[i] += fmt.Sprintf(" (%d incomplete)", k)
		}
	}
	fmt.Fprintf(w, "Mean makespan ÷ lower bound: %s\n", strings.Join(parts, ", "))
}
