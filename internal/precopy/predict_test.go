package precopy

import (
	"math"
	"testing"
	"time"
)

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*math.Abs(want)+1e-9 }

// At the first byte of memory, continuing live is Solo without its setup.
func TestPredictAtTheStartIsSolo(t *testing.T) {
	rate := Goodput(1e9/8, 0)
	for _, g := range []Guest{
		{MemoryBytes: 2048 * mib, DirtyRate: 30 * mib, WorkingSet: 256 * mib},
		{MemoryBytes: 1024 * mib},
		{MemoryBytes: 4096 * mib, DirtyRate: 90 * mib},
		{MemoryBytes: 1024 * mib, DirtyRate: 200 * mib}, // throttled hard
	} {
		e := Solo(g, cfg, rate, 0)
		p := Predict(Progress{MemoryBytes: g.MemoryBytes, WorkingSet: g.WorkingSet, Remaining: g.MemoryBytes,
			DirtyRate: g.DirtyRate, Rate: rate, Config: cfg})
		l := p.Live
		if l.OK != e.Converges || l.Rounds != e.Rounds || !near(l.Time.Seconds(), (e.Total-e.Setup).Seconds(), 1e-6) ||
			!near(l.Bytes, e.Bytes, 1e-9) || !near(l.Downtime.Seconds(), e.Downtime.Seconds(), 1e-6) {
			t.Errorf("%+v: Predict.Live %+v, Solo %+v", g, l, e)
		}
		// Nothing dirtied yet: pausing now sends all memory once.
		if !p.Paused.OK || p.Paused.Bytes != g.MemoryBytes || p.Paused.Time != seconds(g.MemoryBytes/rate)+SwitchoverOverhead ||
			p.Paused.Downtime != p.Paused.Time {
			t.Errorf("%+v: Paused %+v", g, p.Paused)
		}
	}
}

func TestPredictMidRound(t *testing.T) {
	const rate = 100 * mib
	p := Predict(Progress{
		MemoryBytes: 4096 * mib, WorkingSet: 1024 * mib,
		Remaining: 300 * mib, RoundElapsed: 2 * time.Second, Rounds: 3,
		DirtyRate: 60 * mib, Throttle: 0.5, // 120 MiB/s unthrottled
		Rate: rate, Config: Config{MaxDowntime: 300 * time.Millisecond},
	})
	// Pausing sends the rest of the round and the 2 s × 60 MiB/s dirtied
	// since it began.
	if want := 420.0 * mib; p.Paused.Bytes != want || p.PostCopy.Bytes != want {
		t.Errorf("unsent: paused %.0f, post-copy %.0f MiB; want 420", p.Paused.Bytes/mib, p.PostCopy.Bytes/mib)
	}
	if want := 4200*time.Millisecond + SwitchoverOverhead; p.Paused.Time != want || p.Paused.Downtime != want {
		t.Errorf("paused: %+v, want %v", p.Paused, want)
	}
	if p.PostCopy.Time != 4200*time.Millisecond || p.PostCopy.Downtime != SwitchoverOverhead {
		t.Errorf("post-copy: %+v", p.PostCopy)
	}
	// Live: the round ends after 3 s more, having dirtied 5 s × 60 MiB/s;
	// 300 MiB at 100 MiB/s take 3 s, during which 180 MiB are dirtied, …
	// λ = 0.6 converges without throttle changes (no auto-converge).
	if !p.Live.OK || p.Live.Rounds < 3 || p.Live.Time < 3*time.Second+p.Live.Downtime {
		t.Errorf("live: %+v", p.Live)
	}
	if p.Live.Downtime > 300*time.Millisecond+SwitchoverOverhead {
		t.Errorf("live downtime %v over the limit", p.Live.Downtime)
	}
}

func TestPredictNonConverging(t *testing.T) {
	const rate = 100 * mib
	p := Predict(Progress{MemoryBytes: 2048 * mib, Remaining: 1024 * mib, RoundElapsed: 10 * time.Second, Rounds: 5,
		DirtyRate: 150 * mib, Rate: rate, Config: Config{MaxDowntime: 300 * time.Millisecond}})
	if p.Live.OK {
		t.Errorf("live converges at λ = 1.5: %+v", p.Live)
	}
	// 1 GiB left plus 1.5 GiB dirtied, but never more than all memory.
	if !p.Paused.OK || p.Paused.Bytes != 2048*mib {
		t.Errorf("paused: %+v, want all 2 GiB", p.Paused)
	}
	if p := Predict(Progress{MemoryBytes: mib, Remaining: mib}); p.Live.OK || p.Paused.OK || p.PostCopy.OK {
		t.Errorf("no rate: %+v", p)
	}
}
