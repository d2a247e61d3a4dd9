package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

const exampleDir = "../../examples/nankai-trough"

func TestDemoJSONHasTheFieldsTheIssueNames(t *testing.T) {
	out, _, err := runCLI(t, "demo", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("demo --json is not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"vms_total", "vms_at_risk", "vms_evacuated", "vms_missed_deadline", "vms_upper_bound",
		"makespan_s", "lower_bound_s", "mean_migration_s", "max_downtime_ms", "plan_ms", "baselines"} {
		if _, ok := got[k]; !ok {
			t.Errorf("demo --json lacks %q", k)
		}
	}
	bl, _ := got["baselines"].([]any)
	if len(bl) != 3 {
		t.Fatalf("want 3 baselines, got %v", got["baselines"])
	}
	names := map[string]bool{}
	for _, b := range bl {
		m := b.(map[string]any)
		names[m["name"].(string)] = true
		for _, k := range []string{"name", "vms_evacuated", "vms_missed_deadline", "makespan_s"} {
			if _, ok := m[k]; !ok {
				t.Errorf("baseline %v lacks %q", m["name"], k)
			}
		}
	}
	for _, n := range []string{"sequential", "kubevirt-like", "all-at-once"} {
		if !names[n] {
			t.Errorf("baseline %s missing", n)
		}
	}
}

func TestDemoTimelineAndSummary(t *testing.T) {
	out, _, err := runCLI(t, "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Timeline", "VMs safe", "Summary (refuge)", "sequential", "kubevirt-like", "all-at-once"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

func TestSimAndPlanOnExampleFiles(t *testing.T) {
	fed, sc := filepath.Join(exampleDir, "federation.yaml"), filepath.Join(exampleDir, "scenario.yaml")
	out, _, err := runCLI(t, "sim", "--federation", fed, "--scenario", sc, "--policy", "kubevirt-like", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Policy string `json:"policy"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Policy != "kubevirt-like" {
		t.Errorf("sim --policy kubevirt-like --json: policy %q, err %v", s.Policy, err)
	}
	out, _, err = runCLI(t, "plan", "--federation", fed, "--scenario", sc, "--explain")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kochi-dns-ns01") {
		t.Errorf("plan --explain does not mention kochi-dns-ns01:\n%.2000s", out)
	}
	out, _, err = runCLI(t, "plan", "--federation", fed, "--scenario", sc, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Moves      []map[string]any `json:"moves"`
		LowerBound float64          `json:"lower_bound"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil || len(p.Moves) == 0 {
		t.Errorf("plan --json: %d moves, err %v", len(p.Moves), err)
	}
}

func TestBadInputGivesClearErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\nsites:\n  - name: a\n    lat: 200\n    lon: 0\n    fabrics: []\n    colour: red\nvms: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCLI(t, "validate", "--federation", bad)
	if err == nil {
		t.Fatal("validate accepted a bad federation")
	}
	for _, want := range []string{"sites[0].colour", "sites[0].lat"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if _, _, err := runCLI(t, "sim", "--federation", filepath.Join(dir, "missing.yaml"), "--scenario", bad); err == nil {
		t.Error("sim accepted a missing federation file")
	}
	if _, _, err := runCLI(t, "sim", "--federation", filepath.Join(exampleDir, "federation.yaml"),
		"--scenario", filepath.Join(exampleDir, "scenario.yaml"), "--policy", "nonsense"); err == nil || !strings.Contains(err.Error(), "unknown policy") {
		t.Errorf("unknown policy: %v", err)
	}
	if _, _, err := runCLI(t, "bench", "plan", "--vms", "0"); err == nil {
		t.Error("bench plan accepted --vms 0")
	}
}

func TestSchemaCommand(t *testing.T) {
	for _, name := range []string{"federation", "scenario", "policy"} {
		out, _, err := runCLI(t, "schema", name)
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Errorf("schema %s is not JSON: %v", name, err)
		}
	}
	if _, _, err := runCLI(t, "schema", "nonsense"); err == nil {
		t.Error("schema accepted an unknown name")
	}
}

func TestBenchPlanJSON(t *testing.T) {
	out, _, err := runCLI(t, "bench", "plan", "--vms", "2000", "--hosts", "50", "--runs", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r benchPlanResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.VMs != 2000 || r.PlanMS <= 0 || r.Moves+r.Unsaved != r.AtRisk {
		t.Errorf("bench plan result inconsistent: %+v", r)
	}
}

func TestBenchSimJSON(t *testing.T) {
	out, _, err := runCLI(t, "bench", "sim", "--vms", "300", "--hosts", "40", "--sites", "4", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r benchSimResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Policies) != 4 || r.Policies[0].Policy != "refuge" || r.EventsSec <= 0 {
		t.Errorf("bench sim result incomplete: %+v", r)
	}
}

func TestValidateJSONAndMetricsFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\nsites: []\nvms: []\nextra: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "validate", "--federation", bad, "--json")
	if err == nil {
		t.Fatal("validate --json accepted a bad federation")
	}
	var res validateResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.OK || len(res.Problems) < 2 {
		t.Fatalf("validate --json: %+v (%v)", res, err)
	}
	out, _, err = runCLI(t, "validate", "--federation", filepath.Join(exampleDir, "federation.yaml"), "--json")
	if err != nil || !strings.Contains(out, `"ok": true`) {
		t.Fatalf("validate --json on the example: %v\n%s", err, out)
	}
	metrics := filepath.Join(dir, "m.prom")
	if _, _, err := runCLI(t, "demo", "--quiet", "--metrics-file", metrics); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"refuge_migrations_started_total", "refuge_link_window{", "refuge_plans_total"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("metrics file lacks %s", want)
		}
	}
}
