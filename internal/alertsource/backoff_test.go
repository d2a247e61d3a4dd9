package alertsource

import (
	"slices"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := NewBackoff(100*time.Millisecond, time.Second, 42)
	nominal := []time.Duration{100, 200, 400, 800, 1000, 1000}
	var got []time.Duration
	for i, n := range nominal {
		d := b.Next()
		n *= time.Millisecond
		if d < n/2 || d > n {
			t.Errorf("delay %d = %v, want within [%v, %v]", i, d, n/2, n)
		}
		got = append(got, d)
	}
	if b.Failures() != len(nominal) {
		t.Errorf("failures %d", b.Failures())
	}
	// Seeded: the same seed gives the same delays, another seed others.
	same, other := NewBackoff(100*time.Millisecond, time.Second, 42), NewBackoff(100*time.Millisecond, time.Second, 43)
	var s, o []time.Duration
	for range nominal {
		s, o = append(s, same.Next()), append(o, other.Next())
	}
	if !slices.Equal(s, got) {
		t.Errorf("same seed: %v, then %v", got, s)
	}
	if slices.Equal(o, got) {
		t.Errorf("different seeds gave the same delays %v", o)
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Errorf("after Reset: %v", d)
	}
	// Many failures never overflow past Max.
	for range 200 {
		if d := b.Next(); d > time.Second || d < 500*time.Millisecond && b.Failures() > 5 {
			t.Fatalf("delay %v after %d failures", d, b.Failures())
		}
	}
	// Defaults.
	d := NewBackoff(0, 0, 1)
	if d.Base != DefaultBackoffBase || d.Max != DefaultBackoffMax {
		t.Errorf("defaults %v %v", d.Base, d.Max)
	}
}
