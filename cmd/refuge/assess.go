package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/refuge-project/refuge/internal/alert"
	_ "github.com/refuge-project/refuge/internal/alert/formats"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/threat"
)

// withSubcommands adds subcommands to a command made elsewhere (refuge
// alert assess joins the alert command, refuge bench alert the bench one).
func withSubcommands(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.AddCommand(subs...)
	return cmd
}

// loadThreatPolicy reads a threat policy file, or returns the default.
func loadThreatPolicy(path string, fed *model.Federation) (*threat.Policy, error) {
	if path == "" {
		p := threat.DefaultPolicy()
		return &p, nil
	}
	return threat.LoadPolicy(path, fed)
}

// assessOutput is one alert's assessment as `refuge alert assess --json`
// prints it: the assessment and the scenario it makes. An alert that is not
// a real event (exercise, test, draft) makes no scenario (null, with
// scenario_withheld saying why) unless --drill asks for a drill scenario.
type assessOutput struct {
	*threat.Assessment
	Scenario         *model.Scenario `json:"scenario"`
	ScenarioWithheld string          `json:"scenario_withheld,omitempty"`
}

// scenarioFor returns the scenario an assessment makes: a drill scenario
// with --drill, none for an alert that is not a real event without it.
func scenarioFor(as *threat.Assessment, drill bool) assessOutput {
	switch {
	case drill:
		return assessOutput{Assessment: as, Scenario: as.DrillScenario()}
	case !as.Real():
		return assessOutput{Assessment: as, ScenarioWithheld: fmt.Sprintf(
			"%s the alert is not a real event (status %s): no scenario without --drill", threat.DrillTag(as.Drill), as.Drill)}
	}
	return assessOutput{Assessment: as, Scenario: as.Scenario()}
}

// assessOutputs is what `refuge alert assess --json` prints for a
// document holding several alerts (a feed): one object.
type assessOutputs struct {
	Assessments []assessOutput `json:"assessments"`
}

func newAlertAssessCmd() *cobra.Command {
	var federation, threatPolicy, at, scenarioOut string
	var asJSON, drill bool
	cmd := &cobra.Command{
		Use:   "assess FILE --federation F [--threat-policy T] [--at TIME] [--write-scenario S] [--drill] [--json]",
		Short: "Print what an alert means for each site of a federation: threat level and deadline",
		Long: `assess reads an alert document (any format refuge reads), estimates for
every site of the federation the shaking (distances, P/S arrivals, JMA intensity
from Si & Midorikawa 1999, or the intensity the alert forecasts for the site's
area), the tsunami forecast for its coast and whether it lies in an area the
alert draws, and applies the threat policy (--threat-policy, a threat policy
document; see docs/threat.md) to give each site a level (none, watch, evacuate)
and, to evacuate, a deadline.

Deadlines are counted from --at (RFC 3339, or "now"); by default from the
alert's issue time, as if it had just arrived. --write-scenario writes the
sites to evacuate as a scenario file for refuge sim and refuge plan.

An alert that is not a real event (status exercise, test or draft) is
assessed all the same, but every line of the output says so ([EXERCISE],
[TEST], [DRAFT]) and it makes no scenario: --write-scenario refuses it
unless --drill asks for a drill, which writes a scenario marked as one
(name drill-…, every note tagged). --drill on a real alert also writes a
drill scenario.

--json prints the assessment and its scenario as one JSON object; for a
document holding several alerts (a feed), one object {"assessments": [...]}.
A document that does not parse, or a policy that does not validate, exits
non-zero with a message; a cancellation raises no threat.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fed, err := model.LoadFederation(federation)
			if err != nil {
				return err
			}
			pol, err := loadThreatPolicy(threatPolicy, fed)
			if err != nil {
				return err
			}
			data, err := readAlertFile(args[0])
			if err != nil {
				return err
			}
			alerts, err := alert.ParseAll(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if len(alerts) == 0 {
				return fmt.Errorf("%s: %w", args[0], alert.ErrNoAlert)
			}
			var outs []assessOutput
			for _, a := range alerts {
				ref := a.IssuedAt
				switch at {
				case "":
				case "now":
					ref = time.Now()
				default:
					if ref, err = time.Parse(time.RFC3339, at); err != nil {
						return fmt.Errorf("--at %q: want an RFC 3339 time such as 2026-03-01T12:00:00+09:00, or now", at)
					}
				}
				as, err := threat.Assess(a, fed, pol, ref)
				if err != nil {
					return err
				}
				outs = append(outs, scenarioFor(as, drill))
			}
			if scenarioOut != "" {
				if len(outs) != 1 {
					return fmt.Errorf("--write-scenario needs a document with one alert, %s holds %d", args[0], len(outs))
				}
				if outs[0].Scenario == nil {
					return fmt.Errorf("--write-scenario %s: %s is not a real event (status %s); add --drill to write it as a drill scenario",
						scenarioOut, args[0], outs[0].Drill)
				}
				if err := writeScenario(scenarioOut, outs[0].Scenario); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if len(outs) == 1 {
					return enc.Encode(outs[0])
				}
				return enc.Encode(assessOutputs{Assessments: outs})
			}
			for i, o := range outs {
				if i > 0 {
					fmt.Fprintln(w)
				}
				if err := printAssessment(w, alerts[i], o); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&federation, "federation", "", "federation YAML file (required)")
	registerThreatPolicy(cmd, &threatPolicy)
	cmd.Flags().StringVar(&threatPolicy, "policy-file", "", "threat policy YAML file: the old name of --threat-policy")
	_ = cmd.Flags().MarkDeprecated("policy-file", "use --threat-policy")
	cmd.Flags().StringVar(&at, "at", "", `count deadlines from this time (RFC 3339, or "now"; default: the alert's issue time)`)
	cmd.Flags().StringVar(&scenarioOut, "write-scenario", "", "write the sites to evacuate as a scenario file")
	jsonObjectFlag(cmd, &asJSON, `the assessment and its scenario (several alerts: {"assessments": [...]})`)
	cmd.Flags().BoolVar(&drill, "drill", false, "make the scenario a drill (required to write one for an exercise, test or draft alert)")
	_ = cmd.MarkFlagRequired("federation")
	return cmd
}

// writeScenario writes a scenario as JSON (which YAML readers accept).
func writeScenario(path string, sc *model.Scenario) error {
	data, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write scenario: %w", err)
	}
	return nil
}

// printAssessment prints an assessment for people: a table of the sites,
// then the reasons. For an alert that is not a real event every line starts
// with its tag ([EXERCISE], [TEST], [DRAFT]).
func printAssessment(w io.Writer, a *alert.Alert, o assessOutput) error {
	as := o.Assessment
	if as.Real() {
		writeAssessment(w, a, o)
		return nil
	}
	var buf bytes.Buffer
	writeAssessment(&buf, a, o)
	tag := threat.DrillTag(as.Drill)
	for line := range strings.Lines(buf.String()) {
		if _, err := fmt.Fprintf(w, "%s %s", tag, line); err != nil {
			return fmt.Errorf("print assessment: %w", err)
		}
	}
	return nil
}

func writeAssessment(w io.Writer, a *alert.Alert, o assessOutput) {
	as := o.Assessment
	// The printer tags every line of a drill: the tags the assessment
	// carries in its texts (for JSON) would only repeat it.
	untag := func(s string) string { return s }
	if !as.Real() {
		tag := threat.DrillTag(as.Drill)
		untag = func(s string) string { return strings.TrimPrefix(strings.TrimPrefix(s, tag+" "), tag+": ") }
	}
	fmt.Fprintf(w, "%s %s: %s %s (%s), event %s", a.Format, a.Product, a.Kind, a.MsgType, a.Status, a.EventID)
	if a.Serial > 0 {
		fmt.Fprintf(w, " serial %d", a.Serial)
	}
	fmt.Fprintln(w)
	if a.Headline != "" {
		fmt.Fprintf(w, "  %s\n", strings.Join(strings.Fields(a.Headline), " "))
	}
	if h := a.Hypocenter; h != nil {
		line := fmt.Sprintf("  hypocentre %s %.2f°N %.2f°E", h.Name, h.Lat, h.Lon)
		if h.DepthKm != nil {
			line += fmt.Sprintf(" %g km deep", *h.DepthKm)
		}
		if m := a.Magnitude; m != nil {
			line += fmt.Sprintf(", %s %.1f", m.Type, m.Value)
		}
		if !a.OriginTime.IsZero() {
			line += ", origin " + a.OriginTime.Format(time.RFC3339)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "  deadlines counted from %s\n", as.Ref.Format(time.RFC3339))
	for _, n := range as.Notes {
		fmt.Fprintf(w, "  note: %s\n", untag(n))
	}
	fmt.Fprintln(w)
	if o.ScenarioWithheld != "" {
		fmt.Fprintf(w, "  %s\n", untag(o.ScenarioWithheld))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  site\tlevel\tdeadline\thazard\tintensity\tS arrival\ttsunami\tapproval")
	for _, s := range as.Sites {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Site, s.Level, deadlineText(s), dash(s.Hazard),
			intensityText(s.Shaking), arrivalText(s.Shaking, as.Ref), tsunamiText(s.Tsunami, as.Ref), s.Approval)
	}
	tw.Flush()
	threatened := as.Threatened()
	fmt.Fprintln(w)
	if len(threatened) == 0 {
		fmt.Fprintln(w, "  no site to evacuate")
	} else {
		var names []string
		for _, s := range threatened {
			names = append(names, fmt.Sprintf("%s by %s", s.Site, deadlineText(s)))
		}
		what := "to evacuate"
		if !as.Real() {
			what += " (drill only, not a real event)"
		}
		fmt.Fprintf(w, "  %s: %s\n", what, strings.Join(names, ", "))
	}
	for _, s := range as.Sites {
		for _, r := range s.Reasons {
			fmt.Fprintf(w, "  %s: %s\n", s.Site, untag(r))
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// offset prints a duration from the reference time: "+10m16.6s", "-3m0s".
func offset(d time.Duration) string {
	d = d.Round(100 * time.Millisecond)
	if d < 0 {
		return "-" + (-d).String()
	}
	return "+" + d.String()
}

func deadlineText(s threat.SiteThreat) string {
	if s.Deadline == nil {
		return "-"
	}
	return offset(s.Deadline.D())
}

func intensityText(sh *threat.SiteShaking) string {
	switch {
	case sh == nil:
		return "-"
	case sh.Source == "alert":
		return sh.Intensity.String() + " (alert)"
	case sh.Estimate != nil:
		return fmt.Sprintf("%s (I %.2f)", sh.Intensity, sh.Estimate.Instrumental)
	}
	return sh.Intensity.String()
}

func arrivalText(sh *threat.SiteShaking, ref time.Time) string {
	if sh == nil || sh.SArrival.IsZero() {
		return "-"
	}
	return offset(sh.SArrival.Sub(ref))
}

func tsunamiText(t *threat.SiteTsunami, ref time.Time) string {
	switch {
	case t == nil:
		return "-"
	case t.Immediate:
		return t.Category.String() + " now"
	case t.ArrivalAt.IsZero():
		return t.Category.String()
	}
	return fmt.Sprintf("%s %s", t.Category, offset(t.ArrivalAt.Sub(ref)))
}
