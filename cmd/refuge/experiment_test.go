package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestExperimentSeed004JSON: the acceptance's shape — figures with
// figure, method, x, value and paper — for every figure and method.
func TestExperimentSeed004JSON(t *testing.T) {
	out, _, err := runCLI(t, "sim", "experiment", "seed004", "--json", "--quick", "--no-scale", "--clients", "50")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Figures     []map[string]any `json:"figures"`
		Diagnostics []map[string]any `json:"diagnostics"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for _, f := range r.Figures {
		for _, k := range []string{"figure", "method", "x", "value", "paper"} {
			if _, ok := f[k]; !ok {
				t.Fatalf("figure %v lacks %q", f, k)
			}
		}
		seen[f["figure"].(string)+"/"+f["method"].(string)] = true
	}
	for _, want := range []string{
		"failed_tasks/next-fit", "failed_tasks/power-of-two", "failed_tasks/power-of-two+migration",
		"sla_violations/next-fit", "sla_violations/power-of-two",
		"utilization_pct/next-fit", "utilization_pct/power-of-two+migration",
		"utilization_all_hosts_pct/next-fit",
		"power_w/next-fit", "power_w/power-of-two", "power_w/power-of-two+migration",
		"balance_metric/master-slave", "balance_metric/queen-l1", "balance_metric/queen-l2",
	} {
		if !seen[want] {
			t.Errorf("no %s figures", want)
		}
	}
	diag := map[string]bool{}
	for _, f := range r.Diagnostics {
		diag[f["figure"].(string)+"/"+f["method"].(string)] = true
	}
	for _, want := range []string{"hosts_active/next-fit", "hosts_off/power-of-two+migration",
		"unserved_cores/next-fit", "watts_per_served_core/power-of-two"} {
		if !diag[want] {
			t.Errorf("no %s diagnostics", want)
		}
	}
}

func TestExperimentTableAndErrors(t *testing.T) {
	out, _, err := runCLI(t, "sim", "experiment", "seed004", "--quick", "--no-scale", "--clients", "50")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Failed tasks (Figure 3)", "[12.24]", "queen-l2", "[8750]",
		"utilisation of the active hosts", "idle ones included", "Power per core of demand served"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if _, _, err := runCLI(t, "sim", "experiment", "seed999"); err == nil || !strings.Contains(err.Error(), "seed004") {
		t.Errorf("unknown experiment: %v", err)
	}
}
