package monitor

import (
	"fmt"
	"testing"
)

// BenchmarkAssign measures laying out the board and assigning queens
// (the cost the paper leaves unmeasured): 1M hosts is the headline.
func BenchmarkAssign(b *testing.B) {
	for _, hosts := range []int{10_000, 1_000_000, 999_999} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Assign(hosts, Level2, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAssignAndTargets adds building every queen's target list.
func BenchmarkAssignAndTargets(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		a, err := Assign(1_000_000, Level2, 1)
		if err != nil {
			b.Fatal(err)
		}
		for _, q := range a.Queens() {
			_ = a.Targets(q)
		}
	}
}

func BenchmarkSolve(b *testing.B) {
	for b.Loop() {
		if _, err := Solve(1000); err != nil {
			b.Fatal(err)
		}
	}
}
