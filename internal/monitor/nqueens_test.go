package monitor

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestSolveEveryN(t *testing.T) {
	for n := 4; n <= 1000; n++ {
		q, err := Solve(n)
		if err != nil || len(q) != n || !Valid(q) {
			t.Fatalf("Solve(%d) = %v, %v: not a solution", n, q, err)
		}
	}
	for _, n := range []int{100_003, 1_000_000} {
		if q, err := Solve(n); err != nil || !Valid(q) {
			t.Fatalf("Solve(%d) invalid: %v", n, err)
		}
	}
	if q, err := Solve(1); err != nil || !slices.Equal(q, []int{0}) {
		t.Fatalf("Solve(1) = %v, %v", q, err)
	}
	for _, n := range []int{-1, 0, 2, 3} {
		if _, err := Solve(n); !errors.Is(err, ErrNoSolution) {
			t.Errorf("Solve(%d) = %v, want ErrNoSolution", n, err)
		}
		if _, err := SolveBacktrack(n); !errors.Is(err, ErrNoSolution) {
			t.Errorf("SolveBacktrack(%d) = %v, want ErrNoSolution", n, err)
		}
	}
}

// TestCrossCheck: for n ≤ 12 the construction and the paper's backtracking
// both give solutions, both belong to the full solution set, and the set
// has the known size.
func TestCrossCheck(t *testing.T) {
	known := map[int]int{1: 1, 4: 2, 5: 10, 6: 4, 7: 40, 8: 92, 9: 352, 10: 724, 11: 2680, 12: 14200}
	for n := 1; n <= 12; n++ {
		if n == 2 || n == 3 {
			if CountSolutions(n) != 0 {
				t.Fatalf("n=%d has solutions?", n)
			}
			continue
		}
		if got := CountSolutions(n); got != known[n] {
			t.Fatalf("CountSolutions(%d) = %d, want %d", n, got, known[n])
		}
		all := Solutions(n)
		if len(all) != known[n] {
			t.Fatalf("Solutions(%d) has %d, want %d", n, len(all), known[n])
		}
		set := map[string]bool{}
		for _, s := range all {
			if !Valid(s) {
				t.Fatalf("enumerated invalid solution %v", s)
			}
			set[fmt.Sprint(s)] = true
		}
		c, err := Solve(n)
		if err != nil || !set[fmt.Sprint(c)] {
			t.Fatalf("construction for n=%d gave %v, not among the %d solutions (%v)", n, c, len(all), err)
		}
		b, err := SolveBacktrack(n)
		if err != nil || !set[fmt.Sprint(b)] || !Valid(b) {
			t.Fatalf("backtracking for n=%d gave %v (%v)", n, b, err)
		}
	}
}

func TestValidRejects(t *testing.T) {
	for _, q := range [][]int{{0, 1}, {1, 3, 0, 3}, {0, 2, 4, 1, 5}, {1, 3, 0, 4}, {-1}} {
		if Valid(q) {
			t.Errorf("Valid(%v) = true", q)
		}
	}
	if !Valid([]int{1, 3, 0, 2}) {
		t.Error("4-queens solution rejected")
	}
}
