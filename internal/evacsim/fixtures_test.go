package evacsim

import (
	"path/filepath"
	"testing"

	"github.com/refuge-project/refuge/internal/model"
)

// The scheduler regression cases of testdata/scenarios (copied from the
// shared fixtures; see their README): federations on which an earlier
// refuge policy saved far fewer VMs than a simple schedule. refuge must
// save at least as many as the best baseline on each.
func TestFixtureScenarios(t *testing.T) {
	for _, name := range []string{"oversubscribed_link", "nic_misattribution"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", "scenarios", name)
			fed, err := model.LoadFederation(filepath.Join(dir, "federation.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			sc, err := model.LoadScenario(filepath.Join(dir, "scenario.yaml"), fed)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Compare(Options{Federation: fed, Scenario: sc, Policy: model.RefugePolicy()})
			if err != nil {
				t.Fatal(err)
			}
			best := Baseline{}
			for _, b := range c.Baselines {
				if b.VMsEvacuated > best.VMsEvacuated {
					best = b
				}
			}
			t.Logf("refuge saved %d of %d (plan upper bound %d); best baseline %s saved %d",
				c.VMsEvacuated, c.VMsAtRisk, c.VMsUpperBound, best.Name, best.VMsEvacuated)
			if c.VMsEvacuated < best.VMsEvacuated {
				t.Errorf("refuge saved %d, fewer than %s (%d)", c.VMsEvacuated, best.Name, best.VMsEvacuated)
			}
		})
	}
}
