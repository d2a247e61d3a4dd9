package planner

import (
	"math"
	"reflect"
	"testing"

	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/model"
)

// TestParallelPrepareSamePlan: preparing the at-risk VMs on every CPU
// gives the plan a serial preparation gives (and, under -race, shares no
// state between the workers).
func TestParallelPrepareSamePlan(t *testing.T) {
	f, err := fedgen.Generate(fedgen.Options{VMs: 3000, Hosts: 120, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	ix := model.NewIndex(f)
	dl, err := DeadlinesFrom(ix, fedgen.Threaten(f, fedgen.ThreatOptions{Seed: 7}).Threats)
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Index: ix, Policy: model.RefugePolicy(), Deadlines: dl}
	plan := func(min int) *Plan {
		defer func(old int) { parallelPrepareMin = old }(parallelPrepareMin)
		parallelPrepareMin = min
		p, err := Compute(in)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	serial, parallel := plan(math.MaxInt), plan(1)
	if serial.AtRisk < 300 || len(serial.Moves) == 0 {
		t.Fatalf("case too small to test: %d at risk, %d moves", serial.AtRisk, len(serial.Moves))
	}
	if !reflect.DeepEqual(serial, parallel) {
		t.Fatalf("parallel preparation changed the plan: %d moves, %d unsaved (serial: %d, %d)",
			len(parallel.Moves), len(parallel.Unsaved), len(serial.Moves), len(serial.Unsaved))
	}
}
