package sim

import (
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var epoch = time.Date(2026, 3, 11, 14, 46, 0, 0, time.UTC)

func TestEngineOrderAndClock(t *testing.T) {
	e := NewEngine(epoch)
	var got []string
	rec := func(s string) func() {
		return func() { got = append(got, s+"@"+e.Elapsed().String()) }
	}
	e.Schedule(2*time.Second, rec("b"))
	e.Schedule(time.Second, rec("a1"))
	e.Schedule(time.Second, rec("a2")) // same time: FIFO
	e.AfterFunc(time.Second, rec("a3"))
	e.Schedule(time.Second, func() {
		got = append(got, "a4")
		e.AfterFunc(0, rec("a5"))  // due now: after everything already due now
		e.Schedule(0, rec("past")) // in the past: treated as now
	})
	e.Schedule(time.Second, rec("a6"))
	e.Run()
	want := []string{"a1@1s", "a2@1s", "a3@1s", "a4", "a6@1s", "a5@1s", "past@1s", "b@2s"}
	if !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	if e.Events() != 8 {
		t.Errorf("Events = %d, want 8", e.Events())
	}
	if !e.Now().Equal(epoch.Add(2 * time.Second)) {
		t.Errorf("Now = %v", e.Now())
	}
	if e.Step() {
		t.Error("Step with no events reported true")
	}
}

func TestEngineStopAndRunUntil(t *testing.T) {
	e := NewEngine(epoch)
	ran := map[string]bool{}
	mark := func(s string) func() { return func() { ran[s] = true } }
	a := e.Schedule(time.Second, mark("a"))
	b := e.AfterFunc(2*time.Second, mark("b"))
	c := e.Schedule(3*time.Second, mark("c"))
	if e.Schedule(time.Second, nil).Pending() {
		t.Error("nil callback scheduled")
	}
	if !b.Stop() {
		t.Error("Stop of pending timer reported false")
	}
	if b.Stop() {
		t.Error("second Stop reported true")
	}
	if e.Pending() != 2 {
		t.Errorf("Pending = %d, want 2", e.Pending())
	}
	e.RunUntil(2500 * time.Millisecond)
	if !ran["a"] || ran["b"] || ran["c"] {
		t.Errorf("ran = %v after RunUntil(2.5s)", ran)
	}
	if e.Elapsed() != 2500*time.Millisecond {
		t.Errorf("Elapsed = %v, want 2.5s", e.Elapsed())
	}
	if a.Stop() {
		t.Error("Stop of executed timer reported true")
	}
	if at, ok := e.NextAt(); !ok || at != 3*time.Second {
		t.Errorf("NextAt = %v, %v", at, ok)
	}
	if !c.Pending() {
		t.Error("c not pending")
	}
	e.RunUntil(time.Second) // never goes back
	if e.Elapsed() != 2500*time.Millisecond {
		t.Errorf("Elapsed went back to %v", e.Elapsed())
	}
	e.Run()
	if !ran["c"] || e.Events() != 2 {
		t.Errorf("ran = %v, events = %d", ran, e.Events())
	}
	var zero Timer
	if zero.Stop() || zero.Pending() {
		t.Error("zero Timer is pending")
	}
}

// TestEngineMatchesReference schedules and cancels random events and checks
// the execution order against sorting by (time, insertion order).
func TestEngineMatchesReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := NewEngine(epoch)
		type ev struct {
			at        time.Duration
			seq       int
			cancelled bool
		}
		var evs []*ev
		var timers []Timer
		var got []int
		n := rapid.IntRange(0, 300).Draw(t, "n")
		for i := range n {
			x := &ev{at: time.Duration(rapid.IntRange(0, 50).Draw(t, "at")), seq: i}
			evs = append(evs, x)
			timers = append(timers, e.Schedule(x.at, func() { got = append(got, x.seq) }))
			if k := rapid.IntRange(0, 2*len(timers)).Draw(t, "cancel"); k < len(timers) {
				if timers[k].Stop() {
					evs[k].cancelled = true
				}
			}
		}
		var want []int
		live := slices.DeleteFunc(slices.Clone(evs), func(x *ev) bool { return x.cancelled })
		slices.SortStableFunc(live, func(a, b *ev) int { return int(a.at - b.at) })
		for _, x := range live {
			want = append(want, x.seq)
		}
		if e.Pending() != len(want) {
			t.Fatalf("Pending = %d, want %d", e.Pending(), len(want))
		}
		e.Run()
		if !slices.Equal(got, want) {
			t.Fatalf("order %v, want %v", got, want)
		}
	})
}

func TestEngineCompactsCancelled(t *testing.T) {
	e := NewEngine(epoch)
	keep := e.Schedule(time.Hour, func() {})
	for i := range 10000 {
		e.Schedule(time.Duration(i), func() {}).Stop()
	}
	if len(e.heap) > 200 {
		t.Errorf("heap holds %d entries for 1 live event", len(e.heap))
	}
	if !keep.Pending() || e.Pending() != 1 {
		t.Error("live event lost in compaction")
	}
	e.Run()
	if e.Events() != 1 || e.Elapsed() != time.Hour {
		t.Errorf("events %d at %v", e.Events(), e.Elapsed())
	}
}

func TestEngineNoAllocsSteadyState(t *testing.T) {
	e := NewEngine(epoch)
	var f func()
	f = func() { e.AfterFunc(time.Millisecond, f) }
	e.Schedule(0, f)
	for range 100 {
		e.Step()
	}
	allocs := testing.AllocsPerRun(1000, func() {
		e.Schedule(e.Elapsed()+time.Second, f).Stop()
		e.Step()
	})
	// AfterFunc boxes its Timer in the clock.Timer interface: one
	// allocation per event; Schedule itself allocates nothing.
	if allocs > 1 {
		t.Errorf("%.1f allocations per event, want <= 1", allocs)
	}
}
