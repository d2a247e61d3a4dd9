package evacsim

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/refuge-project/refuge/examples"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/model"
)

func loadDemo(t *testing.T) (*model.Federation, *model.Scenario) {
	t.Helper()
	fb, err := fs.ReadFile(examples.FS, examples.Demo+"/federation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := model.ParseFederation(fb)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := fs.ReadFile(examples.FS, examples.Demo+"/scenario.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := model.ParseScenario(sb, f)
	if err != nil {
		t.Fatal(err)
	}
	return f, sc
}

// TestDemoAcceptance checks the acceptance criteria on the bundled
// example: refuge misses no more deadlines than any baseline and strictly
// fewer than sequential, and no schedule beats the schedule-independent
// bounds. (The makespan ratio is judged with deadlines far away, where
// every VM must move: TestMakespanNearLowerBound.)
func TestDemoAcceptance(t *testing.T) {
	f, sc := loadDemo(t)
	c, err := Compare(Options{Federation: f, Scenario: sc, Policy: model.RefugePolicy()})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Summary
	t.Logf("refuge: evacuated %d/%d, missed %d, upper bound %d, makespan %.1f s, lower bound %.1f s (%s)",
		s.VMsEvacuated, s.VMsAtRisk, s.VMsMissedDeadline, s.VMsUpperBound, s.MakespanS, s.LowerBoundS, s.Bottleneck)
	if s.VMsAtRisk < 200 {
		t.Errorf("the demo puts %d VMs at risk, want at least 200", s.VMsAtRisk)
	}
	if s.VMsEvacuated > s.VMsUpperBound {
		t.Errorf("evacuated %d VMs, more than the upper bound %d: the bound is wrong", s.VMsEvacuated, s.VMsUpperBound)
	}
	for _, b := range c.Baselines {
		t.Logf("%s: evacuated %d, missed %d, makespan %.1f s", b.Name, b.VMsEvacuated, b.VMsMissedDeadline, b.MakespanS)
		if s.VMsMissedDeadline > b.VMsMissedDeadline {
			t.Errorf("refuge missed %d deadlines, more than %s (%d)", s.VMsMissedDeadline, b.Name, b.VMsMissedDeadline)
		}
		if b.Name == "sequential" && s.VMsMissedDeadline >= b.VMsMissedDeadline {
			t.Errorf("refuge missed %d deadlines, not fewer than sequential (%d)", s.VMsMissedDeadline, b.VMsMissedDeadline)
		}
	}
	if s.LowerBoundS <= 0 || s.MakespanS < s.LowerBoundS {
		t.Errorf("makespan %.1f s below the lower bound %.1f s: the bound is wrong", s.MakespanS, s.LowerBoundS)
	}
}

func TestRunIsDeterministic(t *testing.T) {
	f, sc := loadDemo(t)
	run := func() *Result {
		r, err := Run(Options{Federation: f, Scenario: sc, Policy: model.RefugePolicy()})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := run(), run()
	a.Summary.WallMS, b.Summary.WallMS = 0, 0
	a.Summary.PlanMS, b.Summary.PlanMS = 0, 0
	if !reflect.DeepEqual(a.Summary, b.Summary) {
		t.Errorf("summaries differ:\n%+v\n%+v", a.Summary, b.Summary)
	}
	if !reflect.DeepEqual(a.Report.VMs, b.Report.VMs) || !reflect.DeepEqual(a.Report.Timeline, b.Report.Timeline) {
		t.Error("two runs of the same scenario produced different outcomes")
	}
}

func TestEveryAtRiskVMIsAccountedFor(t *testing.T) {
	f, sc := loadDemo(t)
	for _, name := range append([]string{"refuge"}, model.BaselineNames...) {
		p, err := model.PolicyByName(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Run(Options{Federation: f, Scenario: sc, Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		counts := map[executor.Status]int{}
		for _, v := range r.Report.VMs {
			counts[v.Status]++
			if v.Status == executor.StatusMigrated && (strings.HasPrefix(v.To, "kochi") || strings.HasPrefix(v.To, "kagawa")) {
				t.Errorf("%s: %s migrated to threatened host %s", name, v.Name, v.To)
			}
		}
		if counts[executor.StatusPending] != 0 || counts[executor.StatusRunning] != 0 {
			t.Errorf("%s: VMs left pending or running after the run: %v", name, counts)
		}
		if got := counts[executor.StatusMigrated]; got != r.Summary.VMsEvacuated {
			t.Errorf("%s: %d migrated records, summary says %d", name, got, r.Summary.VMsEvacuated)
		}
	}
}

func TestAllSitesThreatenedSavesNothingAndSaysWhy(t *testing.T) {
	f, _ := loadDemo(t)
	sc := &model.Scenario{Name: "everything"}
	for _, s := range f.Sites {
		sc.Threats = append(sc.Threats, model.Threat{Site: s.Name, Deadline: model.Duration(600e9)})
	}
	r, err := Run(Options{Federation: f, Scenario: sc, Policy: model.RefugePolicy()})
	if err != nil {
		t.Fatal(err)
	}
	if r.Summary.VMsEvacuated != 0 || r.Summary.VMsAtRisk != len(f.VMs) {
		t.Fatalf("evacuated %d of %d at risk, want 0 of %d", r.Summary.VMsEvacuated, r.Summary.VMsAtRisk, len(f.VMs))
	}
	if len(r.Plan.Unsaved) != len(f.VMs) {
		t.Fatalf("plan lists %d unsaved VMs, want all %d", len(r.Plan.Unsaved), len(f.VMs))
	}
	for _, u := range r.Plan.Unsaved {
		if u.Code == "" || u.Reason == "" {
			t.Errorf("unsaved %s without a reason", u.Name)
		}
	}
}
