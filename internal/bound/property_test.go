package bound_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/refuge-project/refuge/internal/bound"
	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/model"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// farDeadline replaces every deadline when all VMs must move.
const farDeadline = 24 * time.Hour

// TestPropertyNoScheduleBeatsTheBounds runs the baselines in the simulator
// on small random benchmark cases, with their deadlines and with deadlines
// far away, and checks that no run saves more VMs or priority than
// SavedUpperBound allows, nor moves its VMs faster than
// MakespanLowerBoundOf allows.
func TestPropertyNoScheduleBeatsTheBounds(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		f, sc, err := fedgen.Case(fedgen.CaseOptions{
			Seed:            rapid.Uint64().Draw(rt, "seed"),
			MaxHostsPerSite: rapid.IntRange(2, 3).Draw(rt, "hostsPerSite"),
			VMsPerHost:      rapid.IntRange(1, 5).Draw(rt, "vmsPerHost"),
		})
		if err != nil {
			rt.Fatal(err)
		}
		// Shorter deadlines too, so that the bound binds.
		scale := rapid.Float64Range(0.2, 1).Draw(rt, "deadlineScale")
		for i := range sc.Threats {
			sc.Threats[i].Deadline = model.Duration(time.Duration(float64(sc.Threats[i].Deadline) * scale).Truncate(time.Second))
		}
		ix := model.NewIndex(f)
		in := bound.ForScenario(ix, sc)
		saved, err := bound.SavedUpperBound(in)
		if err != nil {
			rt.Fatal(err)
		}
		far := fedgen.WithDeadline(sc, farDeadline)
		for _, name := range model.BaselineNames {
			pol, err := model.PolicyByName(name)
			if err != nil {
				rt.Fatal(err)
			}
			res, err := evacsim.Run(evacsim.Options{Federation: f, Scenario: sc, Policy: pol})
			if err != nil {
				rt.Fatal(err)
			}
			s := res.Summary
			if s.VMsEvacuated > saved.Count || s.PrioritySaved > saved.Priority {
				rt.Fatalf("%s saved %d VMs (priority %d), above the bound %d (%s), priority %d (%s)",
					name, s.VMsEvacuated, s.PrioritySaved, saved.Count, saved.Binding, saved.Priority, saved.PriorityBinding)
			}
			if s.VMsAtRisk != saved.AtRisk {
				rt.Fatalf("%s: %d VMs at risk, the bound counts %d", name, s.VMsAtRisk, saved.AtRisk)
			}
			checkMakespan(rt, in, name+" with deadlines", res)
			res, err = evacsim.Run(evacsim.Options{Federation: f, Scenario: far, Policy: pol})
			if err != nil {
				rt.Fatal(err)
			}
			checkMakespan(rt, in, name+" with far deadlines", res)
		}
	})
}

// checkMakespan checks a run's makespan against the lower bound for the VMs
// it moved.
func checkMakespan(rt *rapid.T, in bound.Input, what string, res *evacsim.Result) {
	var moved []int
	for v, r := range res.Report.VMs {
		if r.Status == executor.StatusMigrated {
			moved = append(moved, v)
		}
	}
	m, err := bound.MakespanLowerBoundOf(in, moved)
	if err != nil {
		rt.Fatalf("%s: %v", what, err)
	}
	if got := time.Duration(res.Summary.MakespanS * float64(time.Second)); got < m.Bound-time.Millisecond {
		rt.Fatalf("%s moved %d VMs in %v, below the lower bound %v (%s)", what, len(moved), got, m.Bound, m.Binding)
	}
}
