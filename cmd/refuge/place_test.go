package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlaceEveryPolicy(t *testing.T) {
	fed := filepath.Join(exampleDir, "federation.yaml")
	for _, pol := range []string{"power-of-two", "next-fit", "first-fit", "best-fit", "least-loaded"} {
		out, _, err := runCLI(t, "place", "--federation", fed, "--vcpu", "2", "--memory-mib", "4096", "--count", "5",
			"--policy", pol, "--threatened", "kochi,kagawa", "--json")
		if err != nil {
			t.Fatalf("%s: %v", pol, err)
		}
		var r placeResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%s: %v\n%s", pol, err, out)
		}
		if len(r.Placements) != 5 || len(r.Failed) != 0 {
			t.Fatalf("%s: %+v", pol, r)
		}
		for _, p := range r.Placements {
			if p.Site == "kochi" || p.Site == "kagawa" {
				t.Errorf("%s placed %s on threatened site %s", pol, p.Request, p.Site)
			}
		}
	}
}

func TestPlaceRequestsFileAndBadInput(t *testing.T) {
	dir := t.TempDir()
	fed := filepath.Join(exampleDir, "federation.yaml")
	good := filepath.Join(dir, "req.yaml")
	if err := os.WriteFile(good, []byte("requests:\n  - {name: a, vcpu: 2, memory_mib: 2048, load: 1}\n  - {name: huge, vcpu: 2, memory_mib: 99999999, load: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "place", "--federation", fed, "--requests", good)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("a request that fits nowhere: err %v, want exit status 2", err)
	}
	if !strings.Contains(out, "not placed: power-of-two: place huge") || !strings.Contains(out, "1 placed, 1 not placed") {
		t.Errorf("output:\n%s", out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("requests:\n  - {name: a, vcpu: 0, memory_mib: 2048}\n  - {name: a, vcpu: 1, memory_mib: 1, colour: red}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCLI(t, "place", "--federation", fed, "--requests", bad)
	if err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown field: %v", err)
	}
	for _, args := range [][]string{
		{"place", "--federation", fed},
		{"place", "--federation", fed, "--vcpu", "1", "--memory-mib", "1", "--policy", "worst-fit"},
		{"place", "--federation", fed, "--vcpu", "1", "--memory-mib", "1", "--threatened", "kyoto"},
		{"place", "--federation", fed, "--vcpu", "1", "--memory-mib", "1", "--load", "3"},
		{"place", "--federation", fed, "--requests", good, "--vcpu", "1"},
	} {
		if _, _, err := runCLI(t, args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
