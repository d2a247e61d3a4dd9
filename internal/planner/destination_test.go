package planner

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/refuge-project/refuge/internal/model"
)

// TestPlacementPolicyProperties: whatever placement policy chooses the
// destinations, plans keep every invariant of checkPlan (safe, up
// destinations with room, anti-affinity, no VM twice, bounds), and equal
// inputs still give equal plans.
func TestPlacementPolicyProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := drawInput(t)
		in.Policy.Placement = rapid.SampledFrom(model.PlacementNames).Draw(t, "placement")
		p, err := Compute(in)
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, in, p)
		again, err := Compute(in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Moves, again.Moves) {
			t.Fatal("same input, different plans")
		}
	})
}

func TestPlacementPolicyChoosesDestinations(t *testing.T) {
	b := newFed().
		site("a", host("a1"), host("a2")).
		site("b", host("b1", memGiB(64)), host("b2", memGiB(64)), host("b3", memGiB(64)), host("b4", memGiB(64))).
		link("a", "b", 10000)
	for i := range 8 {
		b.vm("v"+string(rune('0'+i)), "a1", 4)
	}
	ix := b.index(t)
	base := model.RefugePolicy()
	base.DeadlineAware = false
	hostsUsed := func(pl string) map[string]int {
		pol := base
		pol.Placement = pl
		p := compute(t, Input{Index: ix, Policy: pol, Deadlines: threaten(t, ix, time.Hour, "a")})
		if len(p.Moves) != 8 {
			t.Fatalf("%s: %d moves, unsaved %+v", pl, len(p.Moves), p.Unsaved)
		}
		out := map[string]int{}
		for _, m := range p.Moves {
			out[m.ToHost]++
		}
		return out
	}
	// first-fit fills b1 before b2 (8 × 4 GiB fit in 64 GiB).
	if got := hostsUsed("first-fit"); got["b1"] != 8 {
		t.Errorf("first-fit destinations %v, want all on b1", got)
	}
	// least-loaded spreads them evenly.
	if got := hostsUsed("least-loaded"); len(got) != 4 || got["b1"] != 2 {
		t.Errorf("least-loaded destinations %v, want 2 per host", got)
	}
	// power-of-two spreads too (the less committed of two random hosts).
	if got := hostsUsed("power-of-two"); len(got) < 3 {
		t.Errorf("power-of-two destinations %v, want at least 3 hosts", got)
	}
	pol := base
	pol.Placement = "worst-fit"
	if _, err := Compute(Input{Index: ix, Policy: pol, Deadlines: threaten(t, ix, time.Hour, "a")}); err == nil || !strings.Contains(err.Error(), "power-of-two") {
		t.Errorf("unknown placement: %v", err)
	}
}
