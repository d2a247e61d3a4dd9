package pipeline

import (
	"strings"
	"testing"
	"time"

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
