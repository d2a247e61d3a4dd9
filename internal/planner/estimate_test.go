package planner

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/precopy"
)

// TestOwnLowerBound: the search's bounds of a migration's own time and
// bytes never exceed the estimate they stand for, over random guests, rates and settings
// (dirtying, working sets, local disks, auto-converge on and off).
func TestOwnLowerBound(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	setup0, switchover := precopy.Setup(0).Seconds(), precopy.SwitchoverOverhead.Seconds()
	for i := range 100000 {
		mem := float64(1+r.IntN(64)) * (1 << 30)
		g := precopy.Guest{MemoryBytes: mem, DirtyRate: r.Float64() * r.Float64() * 400 * (1 << 20)}
		if r.IntN(4) > 0 {
			g.WorkingSet = mem * r.Float64()
		}
		if r.IntN(3) == 0 {
			g.DiskBytes = float64(20+r.IntN(200)) * (1 << 30)
		}
		cfg := precopy.Config{MaxDowntime: time.Duration(1+r.IntN(1000)) * time.Millisecond, AutoConverge: r.IntN(2) == 0}
		rate := (0.01 + r.Float64()*3) * 1e9
		e := soloAt(g, cfg, rate)
		if !e.ok {
			continue
		}
		if lb := ownLowerBound(&g, g.DiskBytes+g.MemoryBytes, rate, setup0, switchover); lb > e.solo {
			t.Fatalf("case %d: guest %+v, %+v, rate %.4g: bound %.9f s > solo %.9f s", i, g, cfg, rate, lb, e.solo)
		}
		// The search's least bytes (at the fastest rate, where the first
		// round's dirt is least) bound the bytes at this rate.
		if least := g.DiskBytes + g.MemoryBytes + firstRoundDirt(&g, rate); least > e.bytes {
			t.Fatalf("case %d: guest %+v, %+v, rate %.4g: least bytes %.6g > %.6g", i, g, cfg, rate, least, e.bytes)
		}
	}
}
