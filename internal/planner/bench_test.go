package planner

import (
	"fmt"
	"testing"

	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/model"
)

// benchInput builds a generated federation with about a third of its sites
// threatened.
func benchInput(b *testing.B, vms, hosts int) Input {
	b.Helper()
	f, err := fedgen.Generate(fedgen.Options{VMs: vms, Hosts: hosts, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	ix := model.NewIndex(f)
	dl, err := DeadlinesFrom(ix, fedgen.Threaten(f, fedgen.ThreatOptions{Seed: 1}).Threats)
	if err != nil {
		b.Fatal(err)
	}
	return Input{Index: ix, Policy: model.RefugePolicy(), Deadlines: dl}
}

func BenchmarkCompute(b *testing.B) {
	for _, size := range []struct{ vms, hosts int }{{1000, 100}, {10000, 300}, {100000, 1000}} {
		b.Run(fmt.Sprintf("vms=%d/hosts=%d", size.vms, size.hosts), func(b *testing.B) {
			in := benchInput(b, size.vms, size.hosts)
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
