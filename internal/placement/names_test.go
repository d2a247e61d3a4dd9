package placement

import (
	"slices"
	"testing"

	"github.com/refuge-project/refuge/internal/model"
)

// TestModelKnowsEveryPolicy: the policy document's `placement` field
// accepts exactly the planner's own rule and this package's policies.
func TestModelKnowsEveryPolicy(t *testing.T) {
	want := append([]string{model.PlacementEarliestFinish}, Names()...)
	got := slices.Clone(model.PlacementNames)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("model.PlacementNames %v, want %v", got, want)
	}
	for _, n := range Names() {
		if Describe(n) == "" {
			t.Errorf("%s has no description", n)
		}
	}
}
