package evacsim

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	"pgregory.net/rapid"

	"github.com/refuge-project/refuge/internal/executor"
	"github.com/refuge-project/refuge/internal/fedgen"
	"github.com/refuge-project/refuge/internal/model"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPropertyEvacuationInvariants plays random scenarios on random
// federations with every policy and checks what must always hold: the
// simulated federation stays consistent (every VM on exactly one up host or
// lost, no host's memory overcommitted — Run checks it), no VM is migrated
// twice, no migration starts towards a site that is threatened at that
// moment, and every at-risk VM is accounted for.
func TestPropertyEvacuationInvariants(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		f, err := fedgen.Generate(fedgen.Options{
			Sites: rapid.IntRange(2, 5).Draw(rt, "sites"),
			Hosts: rapid.IntRange(6, 30).Draw(rt, "hosts"),
			VMs:   rapid.IntRange(5, 120).Draw(rt, "vms"),
			Seed:  seed,
		})
		if err != nil {
			rt.Fatal(err)
		}
		sc := fedgen.Threaten(f, fedgen.ThreatOptions{Seed: seed, MinDeadline: 2 * time.Minute, MaxDeadline: 20 * time.Minute})
		ix := model.NewIndex(f)
		threatened := map[string]bool{}
		for _, th := range sc.Threats {
			threatened[th.Site] = true
		}
		// Random events: a host failure, a link change, a deadline change.
		at := func(label string) model.Duration {
			return model.Duration(time.Duration(rapid.IntRange(1, 900).Draw(rt, label)) * time.Second)
		}
		if rapid.Bool().Draw(rt, "hostFails") {
			h := rapid.IntRange(0, len(ix.Hosts)-1).Draw(rt, "host")
			sc.Events = append(sc.Events, model.Event{At: at("hostAt"), Kind: model.EventHostFailed, Host: ix.Host(h).Name})
		}
		if len(f.Links) > 0 && rapid.Bool().Draw(rt, "linkChanges") {
			l := rapid.IntRange(0, len(f.Links)-1).Draw(rt, "link")
			ev := model.Event{At: at("linkAt"), Kind: model.EventLinkCut, Link: f.Links[l].Name}
			if rapid.Bool().Draw(rt, "degrade") {
				ev.Kind = model.EventLinkDegraded
				ev.BandwidthMbps = f.Links[l].BandwidthMbps / 4
			}
			sc.Events = append(sc.Events, ev)
		}
		newThreat := map[string]time.Duration{}
		if rapid.Bool().Draw(rt, "deadlineChanges") {
			s := rapid.IntRange(0, len(f.Sites)-1).Draw(rt, "site")
			when := at("deadlineAt")
			sc.Events = append(sc.Events, model.Event{At: when, Kind: model.EventDeadlineChanged,
				Site: f.Sites[s].Name, Deadline: when + model.Duration(5*time.Minute)})
			if !threatened[f.Sites[s].Name] {
				newThreat[f.Sites[s].Name] = when.D()
			}
		}
		slices.SortStableFunc(sc.Events, func(a, b model.Event) int { return cmp.Compare(a.At, b.At) })
		if err := sc.Validate(f); err != nil {
			rt.Fatalf("generated scenario invalid: %v", err)
		}
		policy := rapid.SampledFrom(append([]string{"refuge"}, model.BaselineNames...)).Draw(rt, "policy")
		pol, err := model.PolicyByName(policy)
		if err != nil {
			rt.Fatal(err)
		}
		res, err := Run(Options{Federation: f, Scenario: sc, Policy: pol})
		if err != nil {
			rt.Fatal(err)
		}
		siteOf := func(host string) string { return f.Sites[ix.HostSite(ix.HostByName[host])].Name }
		done := map[string]int{}
		lastDone := map[string]executor.Event{}
		for _, e := range res.Report.Timeline {
			switch e.Kind {
			case executor.EvDone:
				// A VM moves once per threat: again only if the site it
				// was moved to became threatened after it arrived.
				if prev, ok := lastDone[e.VM]; ok {
					when, newly := newThreat[siteOf(prev.To)]
					if !newly || prev.At > when || siteOf(e.From) != siteOf(prev.To) {
						rt.Fatalf("%s migrated twice (%s)", e.VM, policy)
					}
				}
				done[e.VM]++
				lastDone[e.VM] = e
			case executor.EvStart:
				s := siteOf(e.To)
				if threatened[s] {
					rt.Fatalf("%s started towards threatened site %s (%s)", e.VM, s, policy)
				}
				if when, ok := newThreat[s]; ok && e.At > when {
					rt.Fatalf("%s started towards %s at %s, after it became threatened at %s (%s)", e.VM, s, e.At, when, policy)
				}
			}
		}
		if res.Summary.VMsEvacuated+res.Summary.VMsMissedDeadline != res.Summary.VMsAtRisk {
			rt.Fatalf("summary does not add up: %+v", res.Summary)
		}
		for _, r := range res.Report.VMs {
			if r.Status == executor.StatusPending || r.Status == executor.StatusRunning {
				rt.Fatalf("%s left %s after the run (%s)", r.Name, r.Status, policy)
			}
		}
	})
}
