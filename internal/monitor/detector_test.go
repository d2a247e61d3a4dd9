package monitor

import (
	"testing"
	"time"
)

func TestTimeoutDetector(t *testing.T) {
	cfg, err := DetectorConfig{Timeout: time.Second}.withDefaults(100 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, 0)
	d := newDetector(&cfg, t0)
	if got, _ := d.state(t0); got != StateSuspect {
		t.Errorf("never heard from: %s, want suspect", got)
	}
	d.beat(t0)
	for _, tc := range []struct {
		at   time.Duration
		want HostState
	}{{0, StateAlive}, {499 * time.Millisecond, StateAlive}, {500 * time.Millisecond, StateSuspect}, {time.Second, StateFailed}} {
		if got, _ := d.state(t0.Add(tc.at)); got != tc.want {
			t.Errorf("at %v: %s, want %s", tc.at, got, tc.want)
		}
	}
	d.beat(t0.Add(900 * time.Millisecond))
	if got, age := d.state(t0.Add(time.Second)); got != StateAlive || age != 100*time.Millisecond {
		t.Errorf("after a beat: %s %v", got, age)
	}
}

func TestPhiDetector(t *testing.T) {
	cfg, err := DetectorConfig{Kind: DetectPhi, Timeout: 10 * time.Second}.withDefaults(100 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, 0)
	d := newDetector(&cfg, t0)
	for i := range 50 {
		d.beat(t0.Add(time.Duration(i) * 100 * time.Millisecond))
	}
	last := t0.Add(49 * 100 * time.Millisecond)
	if st, _ := d.state(last.Add(100 * time.Millisecond)); st != StateAlive {
		t.Errorf("on time: %s", st)
	}
	// Silent for many intervals: phi passes the threshold long before the
	// 10 s hard timeout.
	if st, _ := d.state(last.Add(time.Second)); st != StateFailed {
		t.Errorf("1 s of silence with 100 ms heartbeats: %s, want failed", st)
	}
	p1, p2 := d.phi(200*time.Millisecond), d.phi(400*time.Millisecond)
	if !(p2 > p1 && p1 > 0) {
		t.Errorf("phi not increasing: %g %g", p1, p2)
	}
	if _, err := (DetectorConfig{Kind: "x"}).withDefaults(time.Second); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := (DetectorConfig{Timeout: -1}).withDefaults(time.Second); err == nil {
		t.Error("negative timeout accepted")
	}
}
