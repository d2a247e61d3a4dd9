package pipeline

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/clock"
	"github.com/refuge-project/refuge/internal/threat"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// manualClock is a clock that moves only when told.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) AfterFunc(time.Duration, func()) clock.Timer { panic("not used") }

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder is a Target that records what it is asked.
type recorder struct {
	mu      sync.Mutex
	calls   []map[string]time.Time
	watches [][]string
	abort   []bool
	fail    error
}

func (r *recorder) Apply(d map[string]time.Time, watch []string, abort bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.calls = append(r.calls, maps.Clone(d))
	r.watches = append(r.watches, slices.Clone(watch))
	r.abort = append(r.abort, abort)
	return nil
}

func (r *recorder) lastWatch() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.watches) == 0 {
		return nil
	}
	return r.watches[len(r.watches)-1]
}

func (r *recorder) last() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return nil
	}
	return r.calls[len(r.calls)-1]
}

func (r *recorder) n() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, alert.JST)

func depth(km float64) *float64 { return &km }

// eew is a synthetic EEW of a magnitude 8 earthquake off Cape Muroto that
// started at t0: under the default policy the Kochi example site is lost
// 10 min 24.594 s after the origin (S arrival + UPS 10 min).
func eew(serial int, issued time.Time) *alert.Alert {
	return &alert.Alert{
		Format: "webhook", Product: "relay", EventID: "ev-1", Serial: serial, Kind: alert.KindEEW, Status: alert.StatusActual,
		MsgType: alert.MsgAlert, IssuedAt: issued, OriginTime: t0,
		Hypocenter: &alert.Hypocenter{Lat: 32.8, Lon: 134.2, DepthKm: depth(20)},
		Magnitude:  &alert.Magnitude{Value: 8.0, Type: "Mj"},
		Digest:     alert.Digest([]byte{byte(serial)}),
	}
}

func cancelOf(a *alert.Alert, serial int, issued time.Time) *alert.Alert {
	return &alert.Alert{Format: a.Format, Product: a.Product, EventID: a.EventID, Serial: serial, Kind: a.Kind, Status: a.Status,
		MsgType: alert.MsgCancel, IssuedAt: issued, Digest: alert.Digest([]byte("cancel"))}
}

func tsunamiWarning(arrival time.Time) *alert.Alert {
	return &alert.Alert{
		Format: "webhook", Product: "relay", EventID: "ev-1", Serial: 1, Kind: alert.KindTsunami, Status: alert.StatusActual,
		MsgType: alert.MsgAlert, IssuedAt: t0.Add(3 * time.Minute),
		Tsunami: []alert.TsunamiForecast{{Code: "610", Name: "高知県", Category: alert.TsunamiMajorWarning, ArrivalTime: arrival}},
		Digest:  alert.Digest([]byte("tsunami")),
	}
}

// kochiDeadline is the Kochi site's deadline under the EEW above.
var kochiDeadline = t0.Add(10*time.Minute + 24594*time.Millisecond)

// lowEstimatePolicy is the threat policy with the shaking estimate of
// before issue 12 (AVS30 400 m/s, crustal, no margin), which ran low
// against JMA's forecasts. Under it the EEW above makes Kochi evacuate on
// its UPS (kochiDeadline) and Kagawa watched, nothing else, and a serial 2
// at 33.0 N moves Kochi's deadline without making it 7. Tests of the
// pipeline's plumbing (approvals, the relay webhook) pin it, so that they
// keep testing what they were written for whatever the estimate's
// defaults become. Under the defaults Osaka is watched too and that
// serial 2 makes Kochi 7, lost at once (TestWatchDrill in cmd/refuge
// checks the defaults' behaviour on the drill).
func lowEstimatePolicy() *threat.Policy {
	pol := threat.DefaultPolicy()
	pol.Shaking.AVS30, pol.Shaking.FaultType, pol.Shaking.Margin = 400, threat.FaultCrustal, 0
	return &pol
}

type harness struct {
	p      *Pipeline
	clk    *manualClock
	target *recorder
	drill  *recorder
	mu     sync.Mutex
	events []Event
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{clk: &manualClock{t: t0.Add(10 * time.Second)}, target: &recorder{}, drill: &recorder{}}
	cfg := Config{Federation: loadExample(t), Target: h.target, Drill: h.drill, Clock: h.clk,
		OnEvent: func(ev Event) { h.mu.Lock(); h.events = append(h.events, ev); h.mu.Unlock() }}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	return h
}

func (h *harness) kinds() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e.Kind)
	}
	return out
}

func (h *harness) lastEvent() Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.events[len(h.events)-1]
}

func near(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if d := got.Sub(want); d.Abs() > time.Millisecond {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestDedupUpdatesAndCancel(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 1 {
		t.Fatalf("target called %d times", h.target.n())
	}
	near(t, "kochi deadline", h.target.last()["kochi"], kochiDeadline)
	if len(h.target.last()) != 1 {
		t.Errorf("target got %v, want kochi only", h.target.last())
	}

	// The same message again, from another source: ignored.
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 1 || h.lastEvent().Kind != EvDuplicate {
		t.Errorf("duplicate: %d target calls, last event %s", h.target.n(), h.lastEvent().Kind)
	}

	// Serial 3, a larger magnitude: the deadline is unchanged (same S arrival
	// and UPS) but the thread moves on; then serial 2 arrives late: stale.
	s3 := eew(3, t0.Add(12*time.Second))
	s3.Hypocenter.Lat = 33.0 // nearer Kochi: earlier S arrival
	h.clk.advance(4 * time.Second)
	if err := h.p.Submit(ctx, s3); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 2 {
		t.Fatalf("update: target called %d times", h.target.n())
	}
	moved := h.target.last()["kochi"]
	if !moved.Before(kochiDeadline) {
		t.Errorf("nearer hypocentre: deadline %v not before %v", moved, kochiDeadline)
	}
	if err := h.p.Submit(ctx, eew(2, t0.Add(10*time.Second))); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 2 || h.lastEvent().Kind != EvStale {
		t.Errorf("stale: %d calls, last event %s", h.target.n(), h.lastEvent().Kind)
	}

	// The cancellation withdraws Kochi; running migrations finish by default.
	if err := h.p.Submit(ctx, cancelOf(s3, 4, t0.Add(20*time.Second))); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 3 || len(h.target.last()) != 0 || h.target.abort[2] {
		t.Errorf("cancel: calls %v aborts %v", h.target.calls, h.target.abort)
	}
	// Cancelled twice: a duplicate, not an error.
	if err := h.p.Submit(ctx, cancelOf(s3, 4, t0.Add(20*time.Second))); err != nil || h.lastEvent().Kind != EvDuplicate {
		t.Errorf("second cancel: %v, %s", err, h.lastEvent().Kind)
	}
	// A late serial 3 after the cancel is stale.
	if err := h.p.Submit(ctx, eew(3, t0.Add(12*time.Second))); err != nil || h.lastEvent().Kind != EvDuplicate && h.lastEvent().Kind != EvStale {
		t.Errorf("late serial: %v, %s", err, h.lastEvent().Kind)
	}
	if h.target.n() != 3 {
		t.Errorf("a message after the cancellation reached the target: %v", h.target.calls)
	}
	want := []string{EvAssessed, EvApplied, EvDuplicate, EvAssessed, EvApplied, EvStale, EvCancelled, EvApplied, EvDuplicate}
	if got := h.kinds(); strings.Join(got[:len(want)], " ") != strings.Join(want, " ") {
		t.Errorf("events %v\nwant   %v", got, want)
	}
}

func TestBadInputNeverThreatens(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	// A cancellation for an event never seen.
	err := h.p.Submit(ctx, cancelOf(eew(1, t0), 2, t0.Add(time.Minute)))
	if !errors.Is(err, ErrUnknownEvent) || !errors.Is(err, alertsource.ErrRejected) {
		t.Errorf("unknown cancel: %v", err)
	}
	// An alert that does not validate.
	bad := eew(1, t0)
	bad.Hypocenter.Lat = 123
	if err := h.p.Submit(ctx, bad); !errors.Is(err, ErrInvalid) || !errors.Is(err, alertsource.ErrRejected) {
		t.Errorf("invalid alert: %v", err)
	}
	if err := h.p.Submit(ctx, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil alert: %v", err)
	}
	// Real cancellation documents: the EEW cancellation of the Bungo channel
	// sample and the 2021 tsunami advisory cancellation, with no event before.
	for _, rel := range []string{"jma/jmasample_37_01_03_240613_VXSE43.xml", "jma/jmasample_38-39_03_01_210805_VTSE41.xml", "jma/jmasample_36_01_33_240613_VXSE44.xml"} {
		a, err := alert.Parse(alerttest.Fixture(t, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := h.p.Submit(ctx, a); !errors.Is(err, ErrUnknownEvent) {
			t.Errorf("%s: %v, want ErrUnknownEvent", rel, err)
		}
	}
	if h.target.n() != 0 || h.drill.n() != 0 {
		t.Errorf("bad input reached a target: %v %v", h.target.calls, h.drill.calls)
	}
	if st := h.p.Status(); len(st.Threads) != 0 || len(st.Sites) != 0 {
		t.Errorf("status after bad input: %+v", st)
	}
}

func TestRealFixturesThroughThePipeline(t *testing.T) {
	// Every real document, in file order, goes through without an error
	// other than a refusal, and none makes the example federation evacuate.
	h := newHarness(t, func(c *Config) { c.Replay = true })
	for _, path := range alerttest.Fixtures(t) {
		alerts, err := alert.ParseAll(alerttest.Read(t, path))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range alerts {
			if err := h.p.Submit(context.Background(), a); err != nil && !errors.Is(err, alertsource.ErrRejected) {
				t.Errorf("%s: %v", path, err)
			}
		}
	}
	for _, c := range append(h.target.calls, h.drill.calls...) {
		if len(c) != 0 {
			t.Errorf("a fixture made the pipeline evacuate %v", c)
		}
	}
	// The Bungo channel EEW then its cancellation: accepted in order.
	h = newHarness(t, nil)
	for _, rel := range []string{"jma/jmasample_37_01_01_240613_VXSE43.xml", "jma/jmasample_37_01_03_240613_VXSE43.xml"} {
		a, _ := alert.Parse(alerttest.Fixture(t, rel))
		if err := h.p.Submit(context.Background(), a); err != nil {
			t.Errorf("%s: %v", rel, err)
		}
	}
	if st := h.p.Status(); len(st.Threads) != 1 || !st.Threads[0].Cancelled {
		t.Errorf("status %+v", st)
	}
}

func TestDrillsAndStatuses(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	ex := eew(1, t0.Add(8*time.Second))
	ex.Status = alert.StatusExercise
	if err := h.p.Submit(ctx, ex); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 0 || h.drill.n() != 1 {
		t.Fatalf("exercise: target %d drill %d calls", h.target.n(), h.drill.n())
	}
	// The same event id as an actual alert is another thread: real target.
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 1 {
		t.Errorf("actual after exercise: %d target calls", h.target.n())
	}
	draft := eew(2, t0.Add(9*time.Second))
	draft.Status = alert.StatusDraft
	if err := h.p.Submit(ctx, draft); err != nil || h.lastEvent().Kind != EvIgnored {
		t.Errorf("draft: %v, %s", err, h.lastEvent().Kind)
	}

	// Without a drill target, exercises are ignored …
	h = newHarness(t, func(c *Config) { c.Drill = nil })
	test := eew(1, t0.Add(8*time.Second))
	test.Status = alert.StatusTest
	if err := h.p.Submit(ctx, test); err != nil || h.lastEvent().Kind != EvIgnored || h.target.n() != 0 {
		t.Errorf("test alert without drills: %v %s %d", err, h.lastEvent().Kind, h.target.n())
	}
	// … unless the operator lets them act.
	h = newHarness(t, func(c *Config) { c.ActOn = []alert.Status{alert.StatusActual, alert.StatusTest} })
	if err := h.p.Submit(ctx, test); err != nil || h.target.n() != 1 || h.drill.n() != 0 {
		t.Errorf("test alert acting: %v target %d drill %d", err, h.target.n(), h.drill.n())
	}
}

func TestThreadsCombineAndWithdrawSeparately(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(c *Config) { c.AbortOnCancel = true })
	// Tsunami first: Kochi by the arrival (t0+12m) less 2 min.
	if err := h.p.Submit(ctx, tsunamiWarning(t0.Add(12*time.Minute))); err != nil {
		t.Fatal(err)
	}
	near(t, "tsunami deadline", h.target.last()["kochi"], t0.Add(10*time.Minute))
	// The EEW of the same event id is another thread; its deadline is
	// later and leaves Kochi's, but the sites it watches reach the target.
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	near(t, "combined deadline", h.target.last()["kochi"], t0.Add(10*time.Minute))
	if got := h.target.lastWatch(); h.target.n() != 2 || !slices.Equal(got, []string{"kagawa", "osaka"}) {
		t.Errorf("target calls %v, watch %v; want one more, watching kagawa and osaka", h.target.calls, got)
	}
	// Cancelling the tsunami warning leaves the EEW's deadline.
	if err := h.p.Submit(ctx, cancelOf(tsunamiWarning(time.Time{}), 2, t0.Add(5*time.Minute))); err != nil {
		t.Fatal(err)
	}
	near(t, "after the tsunami cancel", h.target.last()["kochi"], kochiDeadline)
	if err := h.p.Submit(ctx, cancelOf(eew(1, t0), 2, t0.Add(5*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if len(h.target.last()) != 0 || !h.target.abort[len(h.target.abort)-1] {
		t.Errorf("after both cancels: %v (abort %v)", h.target.last(), h.target.abort)
	}
	st := h.p.Status()
	if len(st.Threads) != 2 || !st.Threads[0].Cancelled || !st.Threads[1].Cancelled || len(st.Sites) != 0 {
		t.Errorf("status %+v", st)
	}
}

func TestSameSerialOtherProductMerges(t *testing.T) {
	// A warning and a forecast of the same serial: the worse counts,
	// whichever comes first.
	ctx := context.Background()
	h := newHarness(t, nil)
	weak := eew(1, t0.Add(8*time.Second))
	weak.Product, weak.Magnitude = "forecast", &alert.Magnitude{Value: 6}
	if err := h.p.Submit(ctx, weak); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 0 {
		t.Fatalf("an M6 off Muroto evacuated %v", h.target.calls)
	}
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	near(t, "merged", h.target.last()["kochi"], kochiDeadline)
	// The weak forecast again, as a correction of the same serial: the
	// warning still counts.
	weak2 := *weak
	weak2.MsgType = alert.MsgUpdate
	if err := h.p.Submit(ctx, &weak2); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 1 {
		t.Errorf("target calls %v", h.target.calls)
	}
	// A newer serial replaces both.
	s2 := *weak
	s2.Serial, s2.IssuedAt = 2, t0.Add(15*time.Second)
	if err := h.p.Submit(ctx, &s2); err != nil {
		t.Fatal(err)
	}
	if len(h.target.last()) != 0 {
		t.Errorf("serial 2 (M6) should withdraw Kochi: %v", h.target.last())
	}
}

func TestApproval(t *testing.T) {
	ctx := context.Background()
	// The approval flow, on the old estimate: Kochi evacuates, Kagawa is
	// watched, nothing else (see lowEstimatePolicy).
	pol := lowEstimatePolicy()
	pol.Sites = map[string]threat.SitePolicy{"kochi": {Approval: threat.ApprovalApprove}}
	h := newHarness(t, func(c *Config) { c.Policy = pol })
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	if len(h.target.last()) != 0 {
		t.Fatalf("an approve site was evacuated without approval: %v", h.target.calls)
	}
	// While it waits it is threatened all the same: no VMs for it.
	if got := h.target.lastWatch(); !slices.Equal(got, []string{"kagawa", "kochi"}) {
		t.Errorf("watched %v, want kagawa and the held kochi", got)
	}
	pend := h.p.Pending()
	if len(pend) != 1 || pend[0].ID != "kochi" || pend[0].Hazard != "earthquake" {
		t.Fatalf("pending %+v", pend)
	}
	near(t, "pending deadline", pend[0].Deadline, kochiDeadline)
	if !strings.Contains(strings.Join(h.kinds(), " "), EvApproval) {
		t.Errorf("no approval event: %v", h.kinds())
	}
	if err := h.p.Approve("osaka"); err == nil {
		t.Error("approving a site that waits for nothing succeeded")
	}
	// Approved two minutes later: the deadline stays absolute.
	h.clk.advance(2 * time.Minute)
	if err := h.p.Approve("kochi"); err != nil {
		t.Fatal(err)
	}
	near(t, "approved deadline", h.target.last()["kochi"], kochiDeadline)
	if got := h.target.lastWatch(); !slices.Equal(got, []string{"kagawa"}) {
		t.Errorf("watched %v once kochi evacuates, want kagawa", got)
	}
	if len(h.p.Pending()) != 0 {
		t.Errorf("still pending: %v", h.p.Pending())
	}
	// Updates of an approved threat go through.
	calls := h.target.n()
	s2 := eew(2, t0.Add(12*time.Second))
	s2.Hypocenter.Lat = 33.0
	if err := h.p.Submit(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != calls+1 || !h.target.last()["kochi"].Before(kochiDeadline) {
		t.Errorf("update of an approved threat: %v", h.target.calls)
	}
	// Withdrawn, then raised again: approval is asked again; decline it.
	if err := h.p.Submit(ctx, cancelOf(s2, 3, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	again := eew(1, t0.Add(8*time.Second))
	again.EventID = "ev-2"
	if err := h.p.Submit(ctx, again); err != nil {
		t.Fatal(err)
	}
	if len(h.p.Pending()) != 1 || len(h.target.last()) != 0 {
		t.Fatalf("second event: pending %v target %v", h.p.Pending(), h.target.last())
	}
	if err := h.p.Decline("kochi"); err != nil {
		t.Fatal(err)
	}
	st := h.p.Status()
	if len(st.Sites) != 2 || st.Sites[1].Site != "kochi" || !st.Sites[1].Declined || st.Sites[1].Evacuating || st.Sites[0].Level != threat.LevelWatch {
		t.Errorf("status %+v, want kagawa watched and kochi declined", st.Sites)
	}
	if len(h.target.last()) != 0 || !slices.Equal(h.target.lastWatch(), []string{"kagawa", "kochi"}) {
		t.Errorf("declined site evacuated (%v), or not watched (%v)", h.target.last(), h.target.lastWatch())
	}
}

func TestReplayTimeBase(t *testing.T) {
	// A recorded EEW replayed a year later: deadlines count from receipt.
	ctx := context.Background()
	h := newHarness(t, func(c *Config) { c.Replay = true })
	h.clk.advance(365 * 24 * time.Hour)
	now := h.clk.Now()
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	near(t, "replayed deadline", h.target.last()["kochi"], now.Add(kochiDeadline.Sub(t0.Add(8*time.Second))))
	// Live: the same alert a year late is already past its deadline.
	h = newHarness(t, nil)
	h.clk.advance(365 * 24 * time.Hour)
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	near(t, "live deadline", h.target.last()["kochi"], kochiDeadline)
}

func TestTargetFailureIsRetried(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.target.fail = errors.New("controller unreachable")
	err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second)))
	if err == nil || errors.Is(err, alertsource.ErrRejected) {
		t.Fatalf("target failure: %v, want a non-rejection error", err)
	}
	h.target.fail = nil
	// The relay retries the same message: a duplicate, but the target now
	// gets the deadline.
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	near(t, "after retry", h.target.last()["kochi"], kochiDeadline)
}

// TestRetryAppliesWhatWasRefused: a target that refused (a controller not
// leading yet) gets the deadline from Retry, without another alert; a
// Retry with nothing refused changes nothing.
func TestRetryAppliesWhatWasRefused(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, nil)
	h.target.fail = errors.New("not the leader")
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err == nil {
		t.Fatal("the target's refusal was not reported")
	}
	if err := h.p.Retry(); err == nil || !strings.Contains(err.Error(), "not the leader") {
		t.Errorf("retry while the target refuses: %v", err)
	}
	h.target.fail = nil
	if err := h.p.Retry(); err != nil {
		t.Fatal(err)
	}
	near(t, "after Retry", h.target.last()["kochi"], kochiDeadline)
	calls := len(h.target.calls)
	if err := h.p.Retry(); err != nil || len(h.target.calls) != calls {
		t.Errorf("a Retry with nothing refused: %v, %d calls, want %d", err, len(h.target.calls), calls)
	}
}

func TestNewChecksConfig(t *testing.T) {
	fed := loadExample(t)
	if _, err := New(Config{Target: &recorder{}}); err == nil {
		t.Error("no federation accepted")
	}
	if _, err := New(Config{Federation: fed}); err == nil {
		t.Error("no target accepted")
	}
	pol := threat.DefaultPolicy()
	pol.Sites = map[string]threat.SitePolicy{"atlantis": {}}
	if _, err := New(Config{Federation: fed, Target: &recorder{}, Policy: &pol}); err == nil || !strings.Contains(err.Error(), "atlantis") {
		t.Errorf("policy naming an unknown site: %v", err)
	}
}
