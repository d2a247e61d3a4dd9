package planner

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendShortMatchesShort: the allocation-free formatting of reasons
// writes exactly what short (time.Duration.String) writes.
func TestAppendShortMatchesShort(t *testing.T) {
	ds := []time.Duration{0, 1, -1, 49 * time.Millisecond, 50 * time.Millisecond, 950 * time.Millisecond,
		time.Second, 59*time.Second + 949*time.Millisecond, 59*time.Second + 950*time.Millisecond, time.Minute, -time.Minute,
		time.Hour, 25*time.Hour + 30*time.Second, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		// Log-uniform magnitudes from nanoseconds to centuries, both signs.
		d := time.Duration(math.Pow(10, r.Float64()*18.9))
		if r.IntN(4) == 0 {
			d = -d
		}
		ds = append(ds, d)
	}
	for _, d := range ds {
		if got, want := string(appendShort(nil, d)), short(d); got != want {
			t.Fatalf("appendShort(%d) = %q, short = %q", int64(d), got, want)
		}
	}
}
