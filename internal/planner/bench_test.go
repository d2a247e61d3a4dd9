package planner

import (
	"fmt"
	"testing"

	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/model"
)

// generatedInput builds a generated federation (seed) with about a third
// of its sites threatened, under refuge's policy.
func generatedInput(tb testing.TB, vms, hosts int, seed uint64) Input {
	tb.Helper()
	f, err := fedgen.Generate(fedgen.Options{VMs: vms, Hosts: hosts, Seed: seed})
	if err != nil {
		tb.Fatal(err)
	}
	ix := model.NewIndex(f)
	dl, err := DeadlinesFrom(ix, fedgen.Threaten(f, fedgen.ThreatOptions{Seed: seed}).Threats)
	if err != nil {
		tb.Fatal(err)
	}
	return Input{Index: ix, Policy: model.RefugePolicy(), Deadlines: dl}
}

func BenchmarkCompute(b *testing.B) {
	for _, size := range []struct{ vms, hosts int }{{1000, 100}, {10000, 300}, {100000, 1000}} {
		b.Run(fmt.Sprintf("vms=%d/hosts=%d", size.vms, size.hosts), func(b *testing.B) {
			in := generatedInput(b, size.vms, size.hosts, 1)
			var p *Plan
			for b.Loop() {
				var err error
				if p, err = Compute(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(p.AtRisk), "at-risk")
			b.ReportMetric(float64(len(p.Moves)), "moves")
		})
	}
}
