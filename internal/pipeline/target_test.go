package pipeline

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert/webhook"
	"github.com/refuge-project/refuge/internal/alertsource"
	"github.com/refuge-project/refuge/internal/evacsim"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/hypervisor/simhv"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/sim"
)

// engineTarget returns the example federation simulated on an engine
// stepped by hand, and an ExecutorTarget on it set up by cfg (Index,
// Driver, Clock and State are filled in).
func engineTarget(t *testing.T, cfg ExecutorConfig) (*ExecutorTarget, *model.Index, *sim.Engine, *simhv.Cluster) {
	t.Helper()
	ix := model.NewIndex(loadExample(t))
	eng := sim.NewEngine(evacsim.Epoch)
	cluster, err := simhv.New(eng, ix)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Index, cfg.Driver, cfg.Clock = ix, cluster, eng
	cfg.State = func() ([]int, []bool) { return cluster.Placement(), nil }
	tg, err := NewExecutorTarget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tg, ix, eng, cluster
}

// TestExecutorTargetOnTheEngine drives an ExecutorTarget on a simulated
// federation stepped by hand: deterministic.
func TestExecutorTargetOnTheEngine(t *testing.T) {
	var ix *model.Index
	var timeline []string
	var deadlines []string
	tg, ix, eng, cluster := engineTarget(t, ExecutorConfig{
		OnDeadline: func(s int, at time.Time, ok bool) {
			deadlines = append(deadlines, ix.Fed.Sites[s].Name+" "+map[bool]string{true: at.Sub(evacsim.Epoch).String(), false: "withdrawn"}[ok])
		},
		OnEvent: func(at time.Time, ev executor.Event) {
			timeline = append(timeline, at.Sub(evacsim.Epoch).Round(time.Second).String()+" "+ev.Kind+" "+ev.Detail)
		},
	})
	kochi := ix.SiteByName["kochi"]
	if err := tg.Apply(map[string]time.Time{"kochi": evacsim.Epoch.Add(20 * time.Minute)}, nil, false); err != nil {
		t.Fatal(err)
	}
	if tg.Executions() != 1 || cluster.Running() == 0 {
		t.Fatalf("executions %d, %d migrations running", tg.Executions(), cluster.Running())
	}
	eng.RunUntil(2 * time.Minute)
	// Moved earlier by an update.
	if err := tg.Apply(map[string]time.Time{"kochi": evacsim.Epoch.Add(15 * time.Minute)}, nil, false); err != nil {
		t.Fatal(err)
	}
	eng.RunUntil(3 * time.Minute)
	// Withdrawn: running migrations finish, nothing new starts from Kochi.
	running := cluster.Running()
	if err := tg.Apply(map[string]time.Time{}, nil, false); err != nil {
		t.Fatal(err)
	}
	startsBefore := countPrefix(timeline, "start")
	eng.Run()
	if n := countPrefix(timeline, "start"); n != startsBefore {
		t.Errorf("%d migrations started after the threat was withdrawn", n-startsBefore)
	}
	select {
	case <-tg.Done():
	default:
		t.Fatal("executor not done")
	}
	joined := strings.Join(timeline, "\n")
	for _, want := range []string{"kochi deadline now 15m0s", "kochi threat withdrawn", "finished"} {
		if !strings.Contains(joined, want) {
			t.Errorf("timeline lacks %q:\n%s", want, joined)
		}
	}
	if strings.Join(deadlines, ", ") != "kochi 20m0s, kochi 15m0s, kochi withdrawn" {
		t.Errorf("deadline hooks %v", deadlines)
	}
	rep := tg.Reports()[0]
	migrated := 0
	for _, r := range rep.VMs {
		if r.Status == executor.StatusMigrated {
			migrated++
		}
		if r.Status == executor.StatusMissed || r.Status == executor.StatusLost {
			t.Errorf("%s %s after the threat was withdrawn", r.Name, r.Status)
		}
	}
	if migrated < running {
		t.Errorf("%d migrated, fewer than the %d running at the withdrawal", migrated, running)
	}

	// A new threat after the executor finished starts another one from the
	// current placement: VMs already moved stay where they are.
	again := map[string]time.Time{"kochi": eng.Now().Add(30 * time.Minute)}
	if err := tg.Apply(again, nil, false); err != nil {
		t.Fatal(err)
	}
	if tg.Executions() != 2 {
		t.Fatalf("executions %d", tg.Executions())
	}
	eng.Run()
	rep2 := tg.Reports()[1]
	left := 0
	for v, r := range rep2.VMs {
		if h := cluster.Placement()[v]; h >= 0 && ix.HostSite(h) == kochi {
			left++
		}
		if r.Status == executor.StatusMigrated && rep.VMs[v].Status == executor.StatusMigrated {
			t.Errorf("%s migrated twice", r.Name)
		}
	}
	if left != 0 {
		t.Errorf("%d VMs left on kochi with 30 min to go", left)
	}
	// Re-applying what the finished executor had starts nothing.
	if err := tg.Apply(again, nil, false); err != nil || tg.Executions() != 2 {
		t.Errorf("re-applied: %v, %d executions", err, tg.Executions())
	}
	if err := tg.Apply(map[string]time.Time{"atlantis": eng.Now()}, nil, false); err == nil {
		t.Error("unknown site accepted")
	}
}

// TestExecutorTargetWatch: the sites the pipeline says are at watch level
// reach the executor (SetWatch) — before its first plan when it starts,
// before a deadline is withdrawn, after a watched site's new deadline —
// and, with watch_sites: exclude, no VM ever moves to a watched site.
func TestExecutorTargetWatch(t *testing.T) {
	pol := model.RefugePolicy()
	pol.WatchSites = model.WatchExclude
	var ix *model.Index
	var timeline []string
	watched := map[string]bool{}
	tg, ix, eng, cluster := engineTarget(t, ExecutorConfig{
		Policy: pol,
		OnEvent: func(at time.Time, ev executor.Event) {
			switch ev.Kind {
			case executor.EvStart:
				if to := ix.Fed.Sites[ix.HostSite(ix.HostByName[ev.To])].Name; watched[to] {
					t.Errorf("%s started towards %s, which is at watch level", ev.VM, to)
				}
			case executor.EvWatch, executor.EvDeadline:
				timeline = append(timeline, ev.Detail)
			}
		},
	})
	apply := func(deadlines map[string]time.Time, watch ...string) {
		t.Helper()
		clear(watched)
		for _, s := range watch {
			watched[s] = true
		}
		timeline = nil
		if err := tg.Apply(deadlines, watch, false); err != nil {
			t.Fatal(err)
		}
	}
	at := func(d time.Duration) time.Time { return evacsim.Epoch.Add(d) }
	// Kochi evacuates, Kagawa and Osaka are watched: every VM goes to
	// Tokyo, from the first plan on.
	apply(map[string]time.Time{"kochi": at(30 * time.Minute)}, "kagawa", "osaka")
	if tg.Executions() != 1 || cluster.Running() == 0 {
		t.Fatalf("executions %d, %d migrations running", tg.Executions(), cluster.Running())
	}
	if want := "kagawa at watch level, osaka at watch level"; strings.Join(timeline, ", ") != want {
		t.Errorf("timeline %q, want %q", timeline, want)
	}
	eng.RunUntil(2 * time.Minute)
	// Kagawa evacuates too: its deadline first, then its watch cleared.
	apply(map[string]time.Time{"kochi": at(30 * time.Minute), "kagawa": at(90 * time.Minute)}, "osaka")
	if want := "kagawa deadline now 1h30m0s, kagawa no longer at watch level"; strings.Join(timeline, ", ") != want {
		t.Errorf("timeline %q, want %q", timeline, want)
	}
	eng.RunUntil(4 * time.Minute)
	// Kochi's threat falls to watch: watched before it is withdrawn.
	apply(map[string]time.Time{"kagawa": at(90 * time.Minute)}, "kochi", "osaka")
	if want := "kochi at watch level, kochi threat withdrawn"; strings.Join(timeline, ", ") != want {
		t.Errorf("timeline %q, want %q", timeline, want)
	}
	eng.RunUntil(6 * time.Minute)
	// Osaka and Kochi are clear: they may receive VMs again.
	apply(map[string]time.Time{"kagawa": at(90 * time.Minute)})
	if want := "kochi no longer at watch level, osaka no longer at watch level"; strings.Join(timeline, ", ") != want {
		t.Errorf("timeline %q, want %q", timeline, want)
	}
	eng.Run()
	if left := cluster.Running(); left != 0 {
		t.Errorf("%d migrations still running", left)
	}
}

func countPrefix(lines []string, kind string) int {
	n := 0
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 1 && f[1] == kind {
			n++
		}
	}
	return n
}

// TestEndToEndOverWebhook runs the whole pipeline in real time, 600 times
// faster than real: a relay posts an EEW, an update and a cancellation;
// the simulated federation starts migrating, moves the deadline and stops.
// It tests the plumbing, so it pins the old estimate (lowEstimatePolicy),
// under which the update moves Kochi's deadline; under the defaults the
// update makes Kochi 7 and the site is lost before the cancellation.
func TestEndToEndOverWebhook(t *testing.T) {
	fed := loadExample(t)
	var mu sync.Mutex
	var timeline []executor.Event
	started := make(chan struct{}, 1)
	withdrawn := make(chan struct{}, 1)
	w, err := NewSimWorld(SimConfig{Federation: fed, Speed: 600, Epoch: evacsim.Epoch,
		OnEvent: func(_ time.Time, ev executor.Event) {
			mu.Lock()
			timeline = append(timeline, ev)
			mu.Unlock()
			if ev.Kind == executor.EvStart {
				notify(started)
			}
			if ev.Kind == executor.EvDeadline && strings.Contains(ev.Detail, "withdrawn") {
				notify(withdrawn)
			}
		},
		OnSiteLost: func(_ time.Time, site string) { t.Errorf("site %s lost after its threat was withdrawn", site) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var pevents []Event
	p, err := New(Config{Federation: fed, Policy: lowEstimatePolicy(), Target: w.Target(), Clock: w.Clock(), Replay: true,
		OnEvent: func(ev Event) { mu.Lock(); pevents = append(pevents, ev); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("end-to-end-relay-secret-0123")
	secrets, _ := webhook.StaticSecrets(map[string][]byte{"phone": secret})
	addrs := make(chan net.Addr, 1)
	src := &alertsource.Webhook{Addr: "127.0.0.1:0", Config: webhook.Config{Secret: secrets}, OnListen: func(a net.Addr) { addrs <- a }}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { errs <- w.Run(ctx) }()
	go func() { errs <- p.Run(ctx, src) }()
	defer func() {
		cancel()
		<-errs
		<-errs
		http.DefaultClient.CloseIdleConnections()
	}()
	url := "http://" + (<-addrs).String() + "/"
	send := func(fields map[string]any, nonce string) int {
		t.Helper()
		fields["version"], fields["relay_id"], fields["nonce"] = 1, "phone", nonce
		body, _ := json.Marshal(fields)
		req, _ := webhook.NewRequest(context.Background(), url, "phone", secret, body, time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	issued := evacsim.Epoch
	if got := send(NankaiEEWFields("e2e", issued), "1"); got != http.StatusAccepted {
		t.Fatalf("EEW: %d", got)
	}
	waitChan(t, started, "the first migration")
	// Serial 2 moves the hypocentre nearer Kochi: an earlier deadline.
	upd := NankaiEEWFields("e2e", issued.Add(time.Second))
	upd["serial"] = 2
	upd["hypocenter"].(map[string]any)["lat"] = 33.0
	if got := send(upd, "2"); got != http.StatusAccepted {
		t.Fatalf("update: %d", got)
	}
	// A cancel for an unknown event is refused with 422 and changes nothing.
	if got := send(map[string]any{"event_id": "nope", "serial": 1, "kind": "eew", "status": "actual", "msg_type": "cancel",
		"issued_at": issued.Format(time.RFC3339)}, "3"); got != http.StatusUnprocessableEntity {
		t.Errorf("unknown cancel: %d, want 422", got)
	}
	if got := send(map[string]any{"event_id": "e2e", "serial": 3, "kind": "eew", "status": "actual", "msg_type": "cancel",
		"issued_at": issued.Add(2 * time.Second).Format(time.RFC3339)}, "4"); got != http.StatusAccepted {
		t.Fatalf("cancel: %d", got)
	}
	waitChan(t, withdrawn, "the withdrawal")
	select {
	case <-w.Target().Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the evacuation did not stop after the cancellation")
	}
	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	for _, ev := range pevents {
		kinds = append(kinds, ev.Kind)
	}
	want := []string{EvAssessed, EvApplied, EvAssessed, EvApplied, EvRejected, EvCancelled, EvApplied}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Errorf("pipeline events %v, want %v", kinds, want)
	}
	var deadlineMoved bool
	for _, ev := range timeline {
		if ev.Kind == executor.EvDeadline && strings.HasPrefix(ev.Detail, "kochi deadline now") {
			deadlineMoved = true
		}
	}
	if !deadlineMoved {
		t.Error("the update did not move the executor's deadline")
	}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func waitChan(t *testing.T, c chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestSimWorldLosesSiteAtDeadline: an evacuation that cannot finish loses
// the site when its deadline passes.
func TestSimWorldLosesSiteAtDeadline(t *testing.T) {
	fed := loadExample(t)
	lost := make(chan string, 4)
	w, err := NewSimWorld(SimConfig{Federation: fed, Speed: 600, Epoch: evacsim.Epoch,
		OnSiteLost: func(_ time.Time, site string) { lost <- site }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := w.Target().Apply(map[string]time.Time{"kochi": w.Clock().Now().Add(time.Minute)}, nil, false); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-lost:
		if s != "kochi" {
			t.Errorf("lost %s", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("site not lost")
	}
	var left int
	w.Do(func() {
		for _, r := range w.Target().Reports()[0].VMs {
			switch r.Status {
			case executor.StatusMissed, executor.StatusUnsaved, executor.StatusLost:
				left++
			}
		}
	})
	if left == 0 {
		t.Error("every VM made a one-minute deadline")
	}
}
