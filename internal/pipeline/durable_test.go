package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/threat"
)

// memJournal is a Journal in memory that goes through JSON, as a store
// would.
type memJournal struct {
	mu     sync.Mutex
	worlds map[bool][]byte
	alerts map[string][]byte
	// causes are every Record's causes, in order.
	causes []Cause
	fail   error
	writes int
}

func newMemJournal() *memJournal {
	return &memJournal{worlds: map[bool][]byte{}, alerts: map[string][]byte{}}
}

func (j *memJournal) Record(r Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail != nil {
		return j.fail
	}
	j.writes++
	j.causes = append(j.causes, r.Causes...)
	for _, t := range r.Forgotten {
		for k := range j.alerts {
			if strings.HasPrefix(k, t+"/") {
				delete(j.alerts, k)
			}
		}
	}
	for _, a := range r.Alerts {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		j.alerts[a.Thread+"/"+a.ID] = b
	}
	b, err := json.Marshal(r.World)
	if err != nil {
		return err
	}
	j.worlds[r.World.Drill] = b
	return nil
}

func (j *memJournal) Load(context.Context) (Snapshot, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var s Snapshot
	for _, b := range j.worlds {
		var w WorldState
		if err := json.Unmarshal(b, &w); err != nil {
			return s, err
		}
		s.Worlds = append(s.Worlds, w)
	}
	for _, b := range j.alerts {
		var a Received
		if err := json.Unmarshal(b, &a); err != nil {
			return s, err
		}
		s.Alerts = append(s.Alerts, a)
	}
	return s, nil
}

// TestRestoreResumesExactly: a successor pipeline restored from the
// journal holds the same approval, applies nothing again, takes a repeat
// as a duplicate, and records who approved.
func TestRestoreResumesExactly(t *testing.T) {
	ctx := context.Background()
	pol := lowEstimatePolicy()
	pol.Sites = map[string]threat.SitePolicy{"kochi": {Approval: threat.ApprovalApprove}}
	j := newMemJournal()
	withJournal := func(c *Config) { c.Policy, c.Journal = pol, j }
	h := newHarness(t, withJournal)
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	if len(j.alerts) != 1 {
		t.Fatalf("recorded alerts %v, want the EEW", j.alerts)
	}

	// The successor: nothing applied yet, the approval still pending.
	next := newHarness(t, withJournal)
	next.clk.advance(time.Minute)
	if err := next.p.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if next.target.n() != 0 {
		t.Errorf("restore applied %v", next.target.calls)
	}
	pend := next.p.Pending()
	if len(pend) != 1 || pend[0].ID != "kochi" {
		t.Fatalf("pending after restore %+v, want kochi", pend)
	}
	near(t, "restored pending deadline", pend[0].Deadline, kochiDeadline)
	writes := j.writes
	if err := next.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	if k := next.lastEvent().Kind; k != EvDuplicate {
		t.Errorf("the same alert after restore: %s, want %s", k, EvDuplicate)
	}
	if j.writes != writes || next.target.n() != 0 {
		t.Errorf("a duplicate wrote %d times and applied %v", j.writes-writes, next.target.calls)
	}

	if err := next.p.Decide("kochi", true, "alice"); err != nil {
		t.Fatal(err)
	}
	near(t, "approved deadline", next.target.last()["kochi"], kochiDeadline)

	// A third pipeline has the decision (who, and that it was carried
	// out): nothing to apply, nothing pending.
	third := newHarness(t, withJournal)
	if err := third.p.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if err := third.p.Retry(); err != nil || third.target.n() != 0 || len(third.p.Pending()) != 0 {
		t.Errorf("after restore: retry %v, applied %v, pending %v", err, third.target.calls, third.p.Pending())
	}
	var st WorldState
	if err := json.Unmarshal(j.worlds[false], &st); err != nil {
		t.Fatal(err)
	}
	if d := st.Decisions["kochi"]; !d.Approved || d.By != "alice" || d.At.IsZero() {
		t.Errorf("recorded decision %+v, want approved by alice", d)
	}
	if st.Applied["kochi"].IsZero() {
		t.Errorf("recorded applied %v, want kochi", st.Applied)
	}

	// A withdrawal reaches the restored state.
	if err := third.p.Submit(ctx, cancelOf(eew(1, t0), 2, t0.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if len(third.target.last()) != 0 || third.target.n() != 1 {
		t.Errorf("withdrawal after restore applied %v, want no deadline once", third.target.calls)
	}
}

// TestRecordFailureHoldsTheTarget: while the journal refuses (this
// controller does not lead), the target is not asked; once it records
// again (it leads, and restored the empty recorded state), the next
// Retry records and applies the alert it took as a follower.
func TestRecordFailureHoldsTheTarget(t *testing.T) {
	ctx := context.Background()
	j := newMemJournal()
	refused := errors.New("not the leader")
	j.fail = refused
	h := newHarness(t, func(c *Config) { c.Policy, c.Journal = lowEstimatePolicy(), j })
	if err := h.p.Submit(ctx, eew(1, t0.Add(8*time.Second))); !errors.Is(err, refused) {
		t.Fatalf("submit while the journal refuses: %v, want %v", err, refused)
	}
	if h.target.n() != 0 {
		t.Fatalf("the target was asked before the state was recorded: %v", h.target.calls)
	}
	j.mu.Lock()
	j.fail = nil
	j.mu.Unlock()
	if err := h.p.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if h.target.n() != 0 || len(h.p.Status().Threads) != 1 {
		t.Fatalf("after restore: applied %v, threads %+v; want nothing applied, the follower's alert kept", h.target.calls, h.p.Status().Threads)
	}
	if err := h.p.Retry(); err != nil {
		t.Fatal(err)
	}
	near(t, "applied deadline", h.target.last()["kochi"], kochiDeadline)
	if len(j.alerts) != 1 {
		t.Errorf("recorded alerts %d, want the EEW held since", len(j.alerts))
	}
}

// TestRestoreRefusesBadState: a recorded thread without its alert is an
// error naming it, not a panic.
func TestRestoreRefusesBadState(t *testing.T) {
	j := newMemJournal()
	j.worlds[false] = []byte(`{"threads":[{"kind":"eew","event_id":"ev-9"}]}`)
	h := newHarness(t, func(c *Config) { c.Journal = j })
	err := h.p.Restore(context.Background())
	if err == nil || !strings.Contains(err.Error(), "threads[0]") || !strings.Contains(err.Error(), "latest") {
		t.Errorf("restore of a thread without its alert: %v, want an error naming threads[0].latest", err)
	}
}

// TestPrunedThreadsAreForgotten: a thread pruned after Retain takes its
// recorded alerts with it; one begun again by a new version keeps them.
func TestPrunedThreadsAreForgotten(t *testing.T) {
	ctx := context.Background()
	j := newMemJournal()
	h := newHarness(t, func(c *Config) { c.Policy, c.Journal, c.Retain = lowEstimatePolicy(), j, time.Hour })
	for _, a := range []*alert.Alert{eew(1, t0.Add(8*time.Second)), tsunamiWarning(t0.Add(16 * time.Minute))} {
		if err := h.p.Submit(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	h.clk.advance(2 * time.Hour)
	if err := h.p.Submit(ctx, eew(2, t0.Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	var threads []string
	for k := range j.alerts {
		threads = append(threads, k[:strings.LastIndex(k, "/")])
	}
	slices.Sort(threads)
	if want := []string{"eew/ev-1", "eew/ev-1"}; !slices.Equal(threads, want) {
		t.Errorf("recorded alerts of threads %v, want %v (the tsunami thread forgotten)", threads, want)
	}
}

// explainer is a recorder told why (Explained).
type explainer struct {
	recorder
	causes [][]Cause
}

func (e *explainer) ApplyBecause(causes []Cause, d map[string]time.Time, watch []string, abort bool) error {
	if err := e.Apply(d, watch, abort); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.causes = append(e.causes, causes)
	return nil
}

// oneAlert is a source that delivers one alert.
type oneAlert struct{ a *alert.Alert }

func (s oneAlert) Name() string { return "test-feed" }

func (s oneAlert) Run(ctx context.Context, sink alertsource.Sink) error { return sink(ctx, s.a) }

// describe lists causes as strings.
func describe(cs []Cause) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

// TestCausesRecordedOnceAndExplained: every alert accepted and every
// decision is in one Record's causes, with who delivered or decided it,
// and not again for a repeat, a retry or after a restore; an Explained
// target is told the causes of each change — those of a change it
// refused also after a restore — and never again once it applied them.
func TestCausesRecordedOnceAndExplained(t *testing.T) {
	ctx := context.Background()
	pol := lowEstimatePolicy()
	pol.Sites = map[string]threat.SitePolicy{"kochi": {Approval: threat.ApprovalApprove}}
	j := newMemJournal()
	first := &explainer{}
	h := newHarness(t, func(c *Config) { c.Policy, c.Journal, c.Target = pol, j, first })
	// Kochi is held: the target gets the watched sites, because of the EEW.
	if err := h.p.Run(ctx, oneAlert{eew(1, t0.Add(8*time.Second))}); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Submit(WithSource(ctx, "relay-1"), eew(1, t0.Add(8*time.Second))); err != nil {
		t.Fatal(err)
	}
	want := []string{"eew event ev-1 serial 1 (alert, actual) from test-feed"}
	if got := describe(j.causes); !slices.Equal(got, want) {
		t.Errorf("recorded causes %q, want %q (the repeat not again)", got, want)
	}
	if len(first.causes) != 1 || !slices.Equal(describe(first.causes[0]), want) {
		t.Errorf("the target was told %v, want %q", first.causes, want)
	}

	// The approval is recorded, the target refuses it.
	first.fail = errors.New("not the leader")
	if err := h.p.Decide("kochi", true, "alice"); err == nil {
		t.Fatal("the target's refusal was not reported")
	}
	if err := h.p.Retry(); err == nil {
		t.Fatal("the target's refusal was not reported")
	}
	approved := "kochi's evacuation approved by alice"
	want = append(want, approved)
	if got := describe(j.causes); !slices.Equal(got, want) {
		t.Errorf("recorded causes %q, want %q", got, want)
	}

	// A successor applies it, told that the approval is why, once.
	next := &explainer{}
	h2 := newHarness(t, func(c *Config) { c.Policy, c.Journal, c.Target = pol, j, next })
	if err := h2.p.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := h2.p.Retry(); err != nil {
			t.Fatal(err)
		}
	}
	if len(next.causes) != 1 || !slices.Equal(describe(next.causes[0]), []string{approved}) {
		t.Errorf("the successor's target was told %v, want once %q", next.causes, approved)
	}
	near(t, "approved deadline", next.last()["kochi"], kochiDeadline)
	if got := describe(j.causes); !slices.Equal(got, want) {
		t.Errorf("recorded causes after the restore %q, want %q", got, want)
	}
	var st WorldState
	if err := json.Unmarshal(j.worlds[false], &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Causes) != 0 {
		t.Errorf("causes kept once applied: %+v", st.Causes)
	}
}
