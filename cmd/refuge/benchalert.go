package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/world"
)

// benchAlertResult is what `refuge bench alert --json` prints.
type benchAlertResult struct {
	Federation string  `json:"federation"`
	P50MS      float64 `json:"alert_p50_ms"`
	P99MS      float64 `json:"alert_p99_ms"`
	MaxMS      float64 `json:"alert_max_ms"`
	HTTPP50MS  float64 `json:"http_p50_ms"`
	HTTPP99MS  float64 `json:"http_p99_ms"`
	RatioP50   float64 `json:"ratio_p50"`
	RatioP99   float64 `json:"ratio_p99"`
	Runs       int     `json:"runs"`
	BudgetMS   float64 `json:"budget_p99_ms"`
	WithinBudg bool    `json:"within_budget"`
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func newBenchAlertCmd() *cobra.Command {
	var federation string
	var runs int
	var budget time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "alert [--runs N] [--federation F] [--max-p99 20ms] [--json]",
		Short: "Time an alert from a relay request over loopback to the first migration on the simulated driver",
		Long: `bench alert sends --runs signed relay requests (an EEW that threatens a site)
over loopback, each to a fresh pipeline and simulated federation, and times
each from the request to the first migration the simulated driver starts; it
reports the 50th and 99th percentiles beside those of a bare loopback HTTP
round trip measured in the same run, and fails when the 99th percentile
exceeds --max-p99. The default federation is the bundled nankai-trough
example, whose Kochi site the alert threatens.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var fed *model.Federation
			var err error
			name := "nankai-trough (bundled)"
			if federation != "" {
				name = federation
				if fed, err = model.LoadFederation(federation); err != nil {
					return err
				}
			} else if fed, _, err = loadExample("nankai-trough"); err != nil {
				return err
			}
			l, err := world.MeasureAlertLatency(cmd.Context(), world.LatencyOptions{Federation: fed, Runs: runs})
			if err != nil {
				return err
			}
			r := benchAlertResult{Federation: name, P50MS: millis(l.AlertP50), P99MS: millis(l.AlertP99), MaxMS: millis(l.AlertMax),
				HTTPP50MS: millis(l.HTTPP50), HTTPP99MS: millis(l.HTTPP99), RatioP50: l.RatioP50, RatioP99: l.RatioP99,
				Runs: l.Runs, BudgetMS: millis(budget), WithinBudg: l.AlertP99 <= budget}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "alert → first migration, %d runs on %s\n", r.Runs, r.Federation)
				fmt.Fprintf(out, "  alert  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n", r.P50MS, r.P99MS, r.MaxMS)
				fmt.Fprintf(out, "  http   p50 %7.2f ms  p99 %7.2f ms  (bare loopback round trip)\n", r.HTTPP50MS, r.HTTPP99MS)
				fmt.Fprintf(out, "  ratio  p50 %7.1f×    p99 %7.1f×\n", r.RatioP50, r.RatioP99)
			}
			if !r.WithinBudg {
				return fmt.Errorf("p99 %.2f ms exceeds the budget of %s", r.P99MS, budget)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&federation, "federation", "", "federation YAML file (default: the bundled nankai-trough example)")
	cmd.Flags().IntVar(&runs, "runs", 200, "number of alerts timed")
	cmd.Flags().DurationVar(&budget, "max-p99", 20*time.Millisecond, "fail when the 99th percentile exceeds this")
	jsonObjectFlag(cmd, &asJSON, "the latencies")
	return cmd
}
