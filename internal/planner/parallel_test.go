package planner

import (
	"cmp"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestParallelPrepareSamePlan: preparing the at-risk VMs on every CPU
// gives the plan a serial preparation gives (and, under -race, shares no
// state between the workers).
func TestParallelPrepareSamePlan(t *testing.T) {
	in := generatedInput(t, 3000, 120, 7)
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

// TestSortParallelMatchesSort: the two-halves fill and sort gives what one
// sort gives, for a total order, on sizes around the halves' edges.
func TestSortParallelMatchesSort(t *testing.T) {
	defer func(old int) { parallelPrepareMin = old }(parallelPrepareMin)
	parallelPrepareMin = 1
	r := rand.New(rand.NewPCG(3, 4))
	type kv struct{ k, id int }
	byKey := func(a, b kv) int { return cmp.Or(cmp.Compare(a.k, b.k), cmp.Compare(a.id, b.id)) }
	for _, n := range []int{1, 2, 3, 10, 101, 4096} {
		want := make([]kv, n)
		for i := range want {
			want[i] = kv{r.IntN(7), i}
		}
		xs := make([]kv, n)
		sortParallel(xs, func(i, j int) { copy(xs[i:j], want[i:j]) }, byKey)
		slices.SortFunc(want, byKey)
		if !slices.Equal(xs, want) {
			t.Fatalf("n=%d: sortParallel differs from slices.SortFunc", n)
		}
	}
}
