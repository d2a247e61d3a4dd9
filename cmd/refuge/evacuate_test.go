package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/refuge-project/refuge/internal/evacuate"
	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/guest"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/testbed"
)

func TestEvacuateFlags(t *testing.T) {
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs([]string{"evacuate", "--federation", "x.yaml"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--scenario or --site") {
		t.Fatalf("want a flag error, got %v", err)
	}
}

// TestEvacuateUnreachableExample: the example federation's hosts are not
// there (no TLS certificate, no such names). Each is reported once, in one
// short line, within the connect timeout, and the command fails saying
// that nothing is reachable — not after 30 s with one 7 KB line.
func TestEvacuateUnreachableExample(t *testing.T) {
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs([]string{"evacuate", "--federation", "../../examples/nankai-trough/federation.yaml", "--site", "kochi", "--connect-timeout", "3s"})
	start := time.Now()
	err := root.Execute()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v; want about the 3 s connect timeout at most", took)
	}
	if err == nil || !strings.Contains(err.Error(), "none of the 60 hosts") {
		t.Fatalf("err = %v", err)
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if len(lines) != 60 {
		t.Errorf("%d lines on stderr; want one per host (60):\n%s", len(lines), errb.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "refuge: host ") || !strings.Contains(l, "unreachable, left out: ") || len(l) > 200 {
			t.Errorf("line %q", l)
		}
	}
	if out.Len() != 0 {
		t.Errorf("stdout: %q; want nothing", out.String())
	}
}

// TestEvacuateProgress: on a terminal the timeline streams above a status
// line that is redrawn in place and removed at the end.
func TestEvacuateProgress(t *testing.T) {
	defer goleak.VerifyNone(t)
	fed, sc, err := loadExample("nankai-trough")
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	p := newProgress(buf, true, newTimeline(buf, fed, sc, true), "Timeline", time.Now(), 60)
	p.run()
	if s := buf.String(); !strings.Contains(s, "connecting to 60 hosts") {
		t.Errorf("no status while connecting: %q", s)
	}
	p.event(executor.Event{At: time.Second, Kind: executor.EvStart, VM: "v1", From: "h1", To: "h2"})
	p.event(executor.Event{At: 9 * time.Second, Kind: executor.EvDone, VM: "v1", From: "h1", To: "h2", Detail: "8s"})
	p.close()
	s := buf.String()
	for _, want := range []string{"Timeline\n", "00:01.0  start     v1 h1 → h2\n", "00:09.0  done      v1 h1 → h2  8s\n", "VMs safe, 1 migrating", "1/"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in %q", want, s)
		}
	}
	// Every timeline line starts on a clean line; the output ends without
	// a status line.
	if i := strings.LastIndex(s, "\r\033[K"); strings.Contains(s[i:], "VMs safe") || strings.Contains(s[i:], "connecting") {
		t.Errorf("status line left at the end: %q", s[i:])
	}

	buf = &syncBuffer{}
	p = newProgress(buf, false, newTimeline(buf, fed, sc, true), "Timeline", time.Now(), 60)
	p.run()
	p.event(executor.Event{At: time.Second, Kind: executor.EvStart, VM: "v1", From: "h1", To: "h2"})
	p.close()
	if s := buf.String(); strings.Contains(s, "\r") || !strings.Contains(s, "start     v1") {
		t.Errorf("not a terminal: want the timeline only, got %q", s)
	}
}

// The integration tests below run real QEMU guests on a three-site test
// bed (internal/testbed) when REFUGE_INTEGRATION=1 (.ci/run sets it).

// wanBed starts sites a, b, c, d; a–b shaped to 100 Mbit/s with 20 ms RTT
// through the relay, a–c to 100 Mbit/s with 10 ms RTT; d has no link (its
// daemon is stopped before the evacuation: a host that is down).
func wanBed(t *testing.T) *testbed.Bed {
	t.Helper()
	return startBed(t, 4, []testbed.LinkSpec{
		{A: 0, B: 1, RateMbit: 100, RTT: 20 * time.Millisecond},
		{A: 0, B: 2, RateMbit: 100, RTT: 10 * time.Millisecond},
	})
}

// startBed starts a test bed of that many sites and links, removed when
// the test ends; it skips the test unless REFUGE_INTEGRATION=1.
func startBed(t *testing.T, sites int, links []testbed.LinkSpec) *testbed.Bed {
	t.Helper()
	if os.Getenv("REFUGE_INTEGRATION") != "1" {
		t.Skip("integration test: set REFUGE_INTEGRATION=1 (needs root, libvirtd and QEMU; see docs/libvirt.md)")
	}
	img, err := guest.Build(context.Background(), guest.DefaultDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := testbed.Start(context.Background(), testbed.Config{Sites: sites, Guest: img, Logf: t.Logf, Links: links})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// evacGuest is the guest every evacuation test runs: 128 MiB, 40 MiB of
// it patterned and rewritten at 1 MiB/s, checked every 10 s.
func evacGuest(name string) testbed.GuestSpec {
	return testbed.GuestSpec{Name: name, MemoryMiB: 128, CheckMiB: 40, DirtyMiBps: 1, VerifyEvery: 10}
}

func startGuests(t *testing.T, s *testbed.Site, names []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Go(func() { errs[i] = s.StartGuest(context.Background(), evacGuest(n)) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// federationYAML describes the bed's sites (one host each, named after the
// site), the links given and the VMs on host.
func federationYAML(b *testbed.Bed, sites []*testbed.Site, links []*testbed.Link, vms []string, on *testbed.Site) string {
	var y strings.Builder
	y.WriteString("name: testbed\nsites:\n")
	for i, s := range sites {
		fmt.Fprintf(&y, "  - name: %s\n    lat: %g\n    lon: 135\n    fabrics:\n      - name: %s-f\n        hosts:\n", s.Name, 33+float64(i), s.Name)
		fmt.Fprintf(&y, "          - {name: %s, vcpu: 8, memory_mib: 4096, nic_mbps: 10000, uri: %q}\n", s.Name,
			s.URI()+"&peer="+url.QueryEscape(s.PeerURI()))
	}
	y.WriteString("links:\n")
	for _, l := range links {
		fmt.Fprintf(&y, "  - {name: %s-%s, a: %s, b: %s, bandwidth_mbps: %g, rtt_ms: %g}\n", l.A.Name, l.B.Name, l.A.Name, l.B.Name,
			l.Spec.RateMbit, float64(l.Spec.RTT)/float64(time.Millisecond))
	}
	y.WriteString("vms:\n")
	g := evacGuest("")
	for _, v := range vms {
		fmt.Fprintf(&y, "  - {name: %s, host: %s, vcpu: 1, memory_mib: %d, storage: shared, dirty_rate_mibps: %d, working_set_mib: %d}\n",
			v, on.Name, g.MemoryMiB, g.DirtyMiBps, g.CheckMiB)
	}
	return y.String()
}

func saveResult(t *testing.T, name string, v any) {
	dir := os.Getenv("REFUGE_RESULTS_DIR")
	if dir == "" {
		return
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Error(err)
	}
}

// checkPlaced asserts that every VM is active on the site the report says,
// and nowhere else, and that its guest still answers.
func checkPlaced(t *testing.T, b *testbed.Bed, rep *evacuate.Report, vms []string) {
	t.Helper()
	ctx := context.Background()
	moved := map[string]bool{}
	for _, v := range vms {
		moved[v] = true
	}
	var wg sync.WaitGroup
	for _, v := range rep.VMs {
		if !moved[v.Name] {
			continue
		}
		if v.Status != string(executor.StatusMigrated) {
			t.Errorf("%s: %s (%s)", v.Name, v.Status, v.Reason)
			continue
		}
		for _, s := range b.Sites {
			st := s.State(ctx, v.Name)
			if active := st == "running" || st == "paused"; active != (s.Name == v.To) {
				t.Errorf("%s is %q on %s; want it active on %s only", v.Name, st, s.Name, v.To)
			}
		}
		dst := b.Site(v.To)
		if dst == nil {
			continue
		}
		// Alive now: its last boot's console shows no trouble and a
		// memory check. (A guest that died at the switch-over must have
		// been restarted by the driver, and the report must say so.)
		out := dst.ConsoleSince(v.Name, 0)
		boots := strings.Split(out, "GUEST-UP")
		lastBoot := boots[len(boots)-1]
		if bad := testbed.Trouble(lastBoot); bad != "" {
			t.Errorf("%s on %s is dead: %s", v.Name, v.To, bad)
		}
		if died := testbed.Trouble(out) != ""; died && !v.Restarted {
			t.Errorf("%s died on %s (%s) but the report does not say it was restarted", v.Name, v.To, testbed.Trouble(out))
		}
		// The guests check their memory concurrently: wait for all at once.
		wg.Go(func() {
			if _, err := dst.WaitConsole(ctx, v.Name, int64(len(out)), "memchk OK", 90*time.Second); err != nil {
				t.Errorf("%s: %v", v.Name, err)
			}
		})
	}
	wg.Wait()
}

func logReport(t *testing.T, rep *evacuate.Report) {
	var buf bytes.Buffer
	printEvacuation(&buf, rep)
	t.Logf("\n%s", buf.String())
}

// TestRealSites runs real QEMU guests on one four-site test bed: first
// the seed-003 schedules over one shaped link (the guests end where they
// started), then `refuge evacuate` of the same guests from site a to b and
// c. One bed and one set of guests keep the suite short.
func TestRealSites(t *testing.T) {
	b := wanBed(t)
	n := 4
	if v, err := strconv.Atoi(os.Getenv("REFUGE_SEED003_VMS")); err == nil && v > 0 {
		n = v
	}
	var vms []string
	for i := range n {
		vms = append(vms, fmt.Sprintf("g%d", i+1))
	}
	startGuests(t, b.Sites[0], vms)
	if !t.Run("Seed003", func(t *testing.T) { seed003(t, b, vms) }) {
		return
	}
	t.Run("Evacuate", func(t *testing.T) { evacuateCLI(t, b, vms) })
}

// maxPredictionErrorPct bounds each non-live migration's prediction error
// (docs/calibration.md).
const maxPredictionErrorPct = 25

// evacuateCLI: `refuge evacuate` moves the running guests from site a to
// sites b and c through the planner and executor, and reports each
// migration beside the simulator's prediction (mean |error| and makespan
// error within maxPredictionErrorPct). Site d's daemon is stopped before the
// run: the command says so once, reports d's VM lost as unreachable and
// evacuates the rest. Non-live (--non-live): under QEMU 7.2/TCG live
// migrations over these links left guests dead, or once with corrupted
// user memory that the agent ping did not notice (docs/libvirt.md), and
// this test asserts every guest's integrity.
func evacuateCLI(t *testing.T, b *testbed.Bed, vms []string) {
	a, d := b.Sites[0], b.Sites[3]
	if err := d.StopDaemon(); err != nil {
		t.Fatal(err)
	}
	fedFile := filepath.Join(t.TempDir(), "federation.yaml")
	y := federationYAML(b, b.Sites, b.Links, vms, a) +
		fmt.Sprintf("  - {name: d1, host: %s, vcpu: 1, memory_mib: 128, storage: shared}\n", d.Name)
	if err := os.WriteFile(fedFile, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs([]string{"evacuate", "--federation", fedFile, "--site", a.Name, "--deadline", "10m", "--non-live", "--json"})
	if err := root.Execute(); err != nil {
		t.Fatalf("refuge evacuate: %v\n%s", err, errb.String())
	}
	var rep evacuate.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out.String())
	}
	logReport(t, &rep)
	saveResult(t, fmt.Sprintf("evacuate-%d.json", len(vms)), rep)
	// The down host: one line on stderr, its VM lost, nothing to or from it.
	if lines := strings.Count(errb.String(), "unreachable, left out"); lines != 1 || !strings.Contains(errb.String(), d.Name) {
		t.Errorf("want one line about %s on stderr, got:\n%s", d.Name, errb.String())
	}
	if len(rep.HostsDown) != 1 || rep.HostsDown[0].Host != d.Name || rep.VMsUnreachable != 1 {
		t.Errorf("hosts down %+v, %d VMs unreachable; want %s, 1", rep.HostsDown, rep.VMsUnreachable, d.Name)
	}
	for _, v := range rep.VMs {
		if v.Name == "d1" && (v.Status != string(executor.StatusLost) || !strings.Contains(v.Reason, "unreachable")) {
			t.Errorf("d1: %+v; want lost, unreachable", v)
		}
		if v.To == d.Name || v.PredictedTo == d.Name {
			t.Errorf("%s moved (or predicted to move) to the down host", v.Name)
		}
	}
	if rep.VMsEvacuated != len(vms) {
		t.Fatalf("evacuated %d of %d", rep.VMsEvacuated, len(vms))
	}
	if rep.ReadyS <= 0 || rep.ReadyS > 15 {
		t.Errorf("started moving %.1f s after the command started; want the connect time counted, and under 15 s", rep.ReadyS)
	}
	checkPlaced(t, b, &rep, vms)
	// Two migrations share each link here, and two TCP streams through one
	// tbf queue do not share it fairly (one ended 5 s before the other in
	// a run), while the model shares it equally: per migration the error
	// reached +32 %. Asserted here: the run as a whole; per migration on
	// the seed-003 runs whose migrations run alone or four to a link.
	for _, v := range rep.VMs {
		if slices.Contains(vms, v.Name) && (v.MigrationS <= 0 || v.PredictedS <= 0 || v.Bytes == 0) {
			t.Errorf("%s: missing measurement or prediction: %+v", v.Name, v)
		}
	}
	if rep.MeanAbsErrorPct > maxPredictionErrorPct || math.Abs(rep.MakespanErrorPct) > maxPredictionErrorPct {
		t.Errorf("prediction: mean |error| %.1f %%, makespan error %+.1f %%; want both within ±%d %%", rep.MeanAbsErrorPct, rep.MakespanErrorPct, maxPredictionErrorPct)
	}
}

// checkPredictions asserts that each migration was measured and predicted,
// the prediction within maxPredictionErrorPct.
func checkPredictions(t *testing.T, rep *evacuate.Report, vms []string) {
	t.Helper()
	for _, v := range rep.VMs {
		if !slices.Contains(vms, v.Name) {
			continue
		}
		if v.MigrationS <= 0 || v.PredictedS <= 0 || v.Bytes == 0 {
			t.Errorf("%s: missing measurement or prediction: %+v", v.Name, v)
			continue
		}
		if math.Abs(v.ErrorPct) > maxPredictionErrorPct {
			t.Errorf("%s (%s): predicted %.1f s, measured %.1f s: error %+.1f %%, over ±%d %%", v.Name, rep.Policy, v.PredictedS, v.MigrationS, v.ErrorPct, maxPredictionErrorPct)
		}
	}
}

// seed003 compares schedules on one shaped WAN link (100 Mbit/s, 20 ms
// RTT through the relay) with the guests (four by default;
// REFUGE_SEED003_VMS for more): one migration at a time, two per link, all
// at once, and refuge's adaptive controller. Runs alternate direction
// (a → b, then b → a, …), so after the four the guests are back on a.
// Migrations are non-live: under TCG most live migrations over this link
// leave the guest dead at the destination (docs/libvirt.md), and the
// restarts would hold the schedules' slots for half a minute each. It
// asserts the ordering docs/wan-scheduling.md claims (checkSeed003Order),
// and each migration's prediction within maxPredictionErrorPct where the
// schedule does not depend on how TCP streams share the link (one at a
// time), and all four at once as a whole (mean error and makespan).
func seed003(t *testing.T, b *testbed.Bed, vms []string) {
	a, c := b.Sites[0], b.Sites[1]
	link := b.LinkBetween(a, c)
	two := model.AllAtOncePolicy()
	two.Name = "per-link-2"
	two.Concurrency.PerLinkLimit = 2
	policies := []model.Policy{model.SequentialPolicy(), two, model.AllAtOncePolicy(), model.RefugePolicy()}
	from, to := a, c
	reps := map[string]*evacuate.Report{}
	var order []*evacuate.Report
	for _, pol := range policies {
		fed, err := model.ParseFederation([]byte(federationYAML(b, []*testbed.Site{a, c}, []*testbed.Link{link}, vms, from)))
		if err != nil {
			t.Fatal(err)
		}
		sc := &model.Scenario{Name: "seed-003", Threats: []model.Threat{{Site: from.Name, Deadline: model.Duration(15 * time.Minute)}}}
		load, _ := os.ReadFile("/proc/loadavg")
		rep, err := evacuate.Run(context.Background(), evacuate.Options{Federation: fed, Scenario: sc, Policy: pol, NonLive: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load average before the run: %s", strings.TrimSpace(string(load)))
		logReport(t, rep)
		if rep.VMsEvacuated != len(vms) {
			t.Fatalf("%s: evacuated %d of %d", pol.Name, rep.VMsEvacuated, len(vms))
		}
		checkPlaced(t, b, rep, vms)
		switch pol.Name {
		case "sequential":
			checkPredictions(t, rep, vms)
		case "all-at-once":
			// Four TCP streams share the link unfairly (one may end long
			// before the others, while the simulator shares it equally):
			// the schedule as a whole, not each migration, is predicted.
			if rep.MeanAbsErrorPct > maxPredictionErrorPct || math.Abs(rep.MakespanErrorPct) > maxPredictionErrorPct {
				t.Errorf("all-at-once prediction: mean |error| %.1f %%, makespan error %+.1f %%; want both within ±%d %%", rep.MeanAbsErrorPct, rep.MakespanErrorPct, maxPredictionErrorPct)
			}
		}
		reps[pol.Name] = rep
		order = append(order, rep)
		from, to = to, from
	}
	t.Logf("%-12s %10s %10s %12s %12s %12s", "policy", "makespan", "sim", "mean mig", "sim mean", "max downtime")
	for _, r := range order {
		t.Logf("%-12s %9.1fs %9.1fs %11.1fs %11.1fs %10.0fms", r.Policy, r.MigrationsEndS, r.PredictedMakespanS, r.MeanMigrationS, r.PredictedMeanS, r.MaxDowntimeMS)
	}
	saveResult(t, fmt.Sprintf("seed003-%d.json", len(vms)), order)
	checkSeed003Order(t, reps)
}

// checkSeed003Order asserts what docs/wan-scheduling.md ("What the test
// asserts") claims of the four schedules, with the margins given there:
// refuge ends about when all-at-once does (within 35 %: on a link one
// migration fills it runs them one at a time, overlapping each set-up with
// the previous one's last bytes) while its migrations take far less time each (all-at-once's mean at
// least 1.5 × refuge's, and 1.5 × per-link-2's), and
// sequential, which leaves the link idle between migrations, ends last.
func checkSeed003Order(t *testing.T, r map[string]*evacuate.Report) {
	t.Helper()
	seq, two, all, ref := r["sequential"], r["per-link-2"], r["all-at-once"], r["refuge"]
	if ref.MigrationsEndS > 1.35*all.MigrationsEndS {
		t.Errorf("refuge ended at %.1f s, more than 1.35 × all-at-once's %.1f s", ref.MigrationsEndS, all.MigrationsEndS)
	}
	if all.MeanMigrationS < 1.5*ref.MeanMigrationS {
		t.Errorf("all-at-once's migrations took %.1f s on average, less than 1.5 × refuge's %.1f s", all.MeanMigrationS, ref.MeanMigrationS)
	}
	if all.MeanMigrationS < 1.5*two.MeanMigrationS {
		t.Errorf("all-at-once's migrations took %.1f s on average, less than 1.5 × per-link-2's %.1f s", all.MeanMigrationS, two.MeanMigrationS)
	}
	for _, o := range []*evacuate.Report{two, all, ref} {
		if seq.MigrationsEndS <= o.MigrationsEndS {
			t.Errorf("sequential ended at %.1f s, not after %s (%.1f s)", seq.MigrationsEndS, o.Policy, o.MigrationsEndS)
		}
	}
}
