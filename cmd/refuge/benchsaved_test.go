package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSeeds(t *testing.T) {
	good := map[string][]uint64{
		"1-3":       {1, 2, 3},
		"1,3,5":     {1, 3, 5},
		" 7 ":       {7},
		"1-2, 9,4":  {1, 2, 9, 4},
		"0":         {0},
		"5-5":       {5},
		"10-12,1-1": {10, 11, 12, 1},
	}
	for in, want := range good {
		got, err := parseSeeds(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseSeeds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", " ", "a", "1-", "-3", "3-1", "1,,2", "1,1", "1-3,2", "1.5", "1-100000", "18446744073709551616"} {
		if got, err := parseSeeds(in); err == nil {
			t.Errorf("parseSeeds(%q) = %v, want an error", in, got)
		}
	}
}

// small keeps the simulated federations small.
var small = []string{"--max-hosts-per-site", "2", "--vms-per-host", "2"}

func TestBenchSavedJSON(t *testing.T) {
	args := append([]string{"bench", "saved", "--seeds", "1,2", "--fixtures", "", "--json"}, small...)
	out, errOut, err := runCLI(t, args...)
	if err != nil {
		t.Fatal(err, errOut)
	}
	var res benchSavedResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	if len(res.Cases) != 2 || res.Summary.Cases != 2 || len(res.Fixtures) != 0 {
		t.Fatalf("%d cases (summary %d), %d fixtures; want 2, 2, 0", len(res.Cases), res.Summary.Cases, len(res.Fixtures))
	}
	for _, c := range res.Cases {
		if c.AtRisk == 0 || c.SavedUpperBound > c.AtRisk || c.Threatened == 0 || c.Threatened >= c.Sites {
			t.Errorf("%s: %d at risk, bound %d, %d of %d sites threatened", c.Name, c.AtRisk, c.SavedUpperBound, c.Threatened, c.Sites)
		}
		if len(c.Policies) != 4 || c.Policies[0].Policy != "refuge" {
			t.Fatalf("%s: policies %+v, want refuge and three baselines", c.Name, c.Policies)
		}
		for _, p := range c.Policies {
			if p.Saved > c.SavedUpperBound || p.PrioritySaved > c.PriorityUpperBound {
				t.Errorf("%s: %s saved %d (priority %d), above the bound %d (%d)", c.Name, p.Policy, p.Saved, p.PrioritySaved,
					c.SavedUpperBound, c.PriorityUpperBound)
			}
			if p.MakespanRatio < 1-1e-9 && p.Moved > 0 {
				t.Errorf("%s: %s makespan ratio %g below 1", c.Name, p.Policy, p.MakespanRatio)
			}
		}
	}
	if !strings.Contains(errOut, "seed 1:") || !strings.Contains(errOut, "seed 2:") {
		t.Errorf("no progress line per seed on stderr: %q", errOut)
	}
	if len(res.Summary.MeanMakespanRatio) != 4 {
		t.Errorf("mean makespan ratios %v, want one per policy", res.Summary.MeanMakespanRatio)
	}
}

func TestBenchSavedTextAndFixtures(t *testing.T) {
	// A fixture directory with one tiny case: three 4 GiB VMs behind a
	// 1 Gbit/s link, 90 s to go: any schedule saves at most two (each takes
	// 36.5 s on the link after a 3.7 s set-up).
	dir := t.TempDir()
	caseDir := filepath.Join(dir, "tiny")
	if err := os.Mkdir(caseDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(caseDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("federation.yaml", `name: tiny
sites:
  - name: src
    fabrics:
      - name: src-f
        hosts:
          - {name: src-0, vcpu: 64, memory_mib: 65536, disk_gib: 1000, nic_mbps: 10000}
  - name: dst
    fabrics:
      - name: dst-f
        hosts:
          - {name: dst-0, vcpu: 64, memory_mib: 65536, disk_gib: 1000, nic_mbps: 10000}
links:
  - {name: src-dst, a: src, b: dst, bandwidth_mbps: 1000, rtt_ms: 1, mode: dedicated}
vms:
  - {name: vm-0, host: src-0, vcpu: 1, memory_mib: 4096, dirty_rate_mibps: 5, priority: 3}
  - {name: vm-1, host: src-0, vcpu: 1, memory_mib: 4096, dirty_rate_mibps: 5, priority: 1}
  - {name: vm-2, host: src-0, vcpu: 1, memory_mib: 4096, priority: 1}
`)
	write("scenario.yaml", `name: tiny
threats:
  - {site: src, deadline: 90s, hazard: earthquake}
`)
	args := append([]string{"bench", "saved", "--seeds", "3", "--fixtures", dir}, small...)
	out, _, err := runCLI(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| seed 3 |", "| tiny | 2 | 1 | 3 | 2 |", "refuge/bound mean", "Mean makespan ÷ lower bound: refuge"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchSavedFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--seeds", "3-1"}, `--seeds "3-1"`},
		{[]string{"--seeds", "x"}, `--seeds "x"`},
		{[]string{"--seeds", "1", "--fixtures", filepath.Join(t.TempDir(), "none")}, "--fixtures"},
		{[]string{"--seeds", "1", "--fixtures", t.TempDir()}, "no case directories"},
		{[]string{"--seeds", "1", "--vms-per-host", "-1", "--fixtures", ""}, "VMs per host"},
	} {
		_, _, err := runCLI(t, append([]string{"bench", "saved"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bench saved %v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}

// TestBenchSavedAcceptance holds the scheduler to the scheduling issue's
// acceptance on the benchmark's own federations (seeds 1–20, full size) and
// the two regression fixtures: refuge saves at least as many VMs as every
// baseline on every case and, on average, at least 90 % of the
// schedule-independent upper bound; with deadlines far away its makespan is
// on average within 10 % of the lower bound; it misses no VM a run could
// move. The simulations are deterministic, so the figures are exact.
func TestBenchSavedAcceptance(t *testing.T) {
	fixtures := filepath.Join("..", "..", "internal", "evacsim", "testdata", "scenarios")
	out, errOut, err := runCLI(t, "bench", "saved", "--seeds", "1-20", "--fixtures", fixtures, "--json")
	if err != nil {
		t.Fatal(err, errOut)
	}
	var res benchSavedResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	t.Logf("refuge/bound mean %.3f (total %.3f), worst refuge/best baseline %.2f (%s), makespan ratio %v",
		s.MeanRefugeOverBound, s.TotalRefugeOverBound, s.WorstRefugeOverBestBaseline, s.WorstCase, s.MeanMakespanRatio)
	if s.Cases != 20 || len(res.Fixtures) != 2 {
		t.Fatalf("%d cases, %d fixtures; want 20 and 2", s.Cases, len(res.Fixtures))
	}
	for _, c := range append(res.Cases, res.Fixtures...) {
		refuge := c.Policies[0]
		for _, b := range c.Policies[1:] {
			if b.Saved > refuge.Saved {
				t.Errorf("%s: %s saves %d, refuge %d", c.Name, b.Policy, b.Saved, refuge.Saved)
			}
		}
		if !refuge.Complete {
			t.Errorf("%s: with far deadlines refuge moved %d of %d", c.Name, refuge.Moved, c.Movable)
		}
	}
	if s.MeanRefugeOverBound < 0.90 {
		t.Errorf("refuge saves on average %.3f of the upper bound, want ≥ 0.90", s.MeanRefugeOverBound)
	}
	if r := s.MeanMakespanRatio["refuge"]; r > 1.10 {
		t.Errorf("refuge's mean makespan is %.3f × the lower bound, want ≤ 1.10", r)
	}
}
