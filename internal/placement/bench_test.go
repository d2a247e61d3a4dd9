package placement

import (
	"fmt"
	"testing"
)

// BenchmarkPlace measures one placement decision plus its application on
// hosts that stay about half full: VMs are removed as fast as they are
// added, so the state is the same for every iteration.
func BenchmarkPlace(b *testing.B) {
	for _, tc := range []struct {
		policy string
		hosts  int
	}{
		{PowerOfTwo, 10_000}, {PowerOfTwo, 1_000_000},
		{FirstFit, 10_000}, {NextFit, 10_000}, {BestFit, 10_000}, {LeastLoaded, 10_000},
	} {
		b.Run(fmt.Sprintf("%s/hosts=%d", tc.policy, tc.hosts), func(b *testing.B) {
			hs := make([]Host, tc.hosts)
			for i := range hs {
				hs[i] = Host{Name: "h", VCPU: 4, MemoryMiB: 8192}
			}
			s, err := NewState(Config{VCPUOvercommit: 4, Headroom: 0.2}, hs, nil)
			if err != nil {
				b.Fatal(err)
			}
			p, _ := New(tc.policy, Options{Seed: 1, NoConsolidation: true})
			r := Request{VCPU: 1, MemoryMiB: 2048, Load: 0.5}
			// Fill to about half the memory.
			var placed []int
			for range tc.hosts * 2 {
				_, e, err := s.Place(p, r)
				if err != nil {
					b.Fatal(err)
				}
				placed = append(placed, e.VM)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				d, err := p.Place(s, r)
				if err != nil {
					b.Fatal(err)
				}
				// Move the oldest VM to the chosen host instead of adding one:
				// same work as Apply, constant state size.
				v := placed[i%len(placed)]
				if err := s.Move(v, d.Host); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
