package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refuge-project/refuge/internal/model"
)

const (
	alertFixtures = "../../internal/alert/testdata"
	drillDir      = exampleDir + "/drill"
)

// assessOut runs refuge alert assess --json on the example federation.
func assessOut(t *testing.T, file string, extra ...string) string {
	t.Helper()
	out, _, err := runCLI(t, append([]string{"alert", "assess", file, "--federation", exampleDir + "/federation.yaml", "--json"}, extra...)...)
	if err != nil {
		t.Fatalf("assess %s: %v", file, err)
	}
	return out
}

func assessJSON(t *testing.T, file string, extra ...string) map[string]any {
	t.Helper()
	out := assessOut(t, file, extra...)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	return got
}

// siteLevels returns each site's level and deadline from assess --json.
func siteLevels(t *testing.T, got map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range got["sites"].([]any) {
		m := s.(map[string]any)
		v := m["level"].(string)
		if d, ok := m["deadline"]; ok {
			v += " " + d.(string)
		}
		out[m["site"].(string)] = v
	}
	return out
}

func TestAlertAssessFixtures(t *testing.T) {
	// The Bungo channel EEW (M5.8): intensity 3 at Kochi at most, nothing
	// to do anywhere.
	got := assessJSON(t, alertFixtures+"/jma/jmasample_37_01_01_240613_VXSE43.xml")
	want := map[string]string{"kochi": "none", "kagawa": "none", "osaka": "none", "tokyo": "none"}
	if l := siteLevels(t, got); !equalMaps(l, want) {
		t.Errorf("EEW: %v, want %v", l, want)
	}
	if th := got["scenario"].(map[string]any)["threats"].([]any); len(th) != 0 {
		t.Errorf("EEW scenario threatens %v", th)
	}
	// The 2011-03-11 14:49 tsunami warning: an advisory for Kochi's coast.
	got = assessJSON(t, alertFixtures+"/jma/jmasample_32-39_11_02_250206_VTSE41.xml")
	want = map[string]string{"kochi": "watch", "kagawa": "none", "osaka": "none", "tokyo": "none"}
	if l := siteLevels(t, got); !equalMaps(l, want) {
		t.Errorf("tsunami: %v, want %v", l, want)
	}
	// With a policy that evacuates on advisories: Kochi by 16:28 (arrival
	// 16:30 less the 2 min margin), 1h39m after the 14:49 issue.
	pol := filepath.Join(t.TempDir(), "threat.yaml")
	if err := os.WriteFile(pol, []byte("tsunami:\n  advisory: evacuate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got = assessJSON(t, alertFixtures+"/jma/jmasample_32-39_11_02_250206_VTSE41.xml", "--threat-policy", pol)
	if l := siteLevels(t, got); l["kochi"] != "evacuate 1h39m0s" {
		t.Errorf("kochi under an advisory policy: %q", l["kochi"])
	}
	// --policy-file, its old name, still works, with a warning on stderr.
	var out, errOut bytes.Buffer
	code := run([]string{"alert", "assess", alertFixtures + "/jma/jmasample_32-39_11_02_250206_VTSE41.xml",
		"--federation", exampleDir + "/federation.yaml", "--policy-file", pol, "--json"}, &out, &errOut)
	var old map[string]any
	if err := json.Unmarshal(out.Bytes(), &old); err != nil || code != 0 || siteLevels(t, old)["kochi"] != "evacuate 1h39m0s" ||
		!strings.Contains(errOut.String(), "Flag --policy-file has been deprecated, use --threat-policy") {
		t.Errorf("--policy-file: status %d, %v, stderr %q", code, err, errOut.String())
	}
}

// TestAlertAssessFeedJSON: a document with several alerts (a USGS feed)
// prints one JSON object, {"assessments": [...]}, an assessment per alert.
func TestAlertAssessFeedJSON(t *testing.T) {
	feed := alertFixtures + "/usgs/usgs_4.5_week_20180612.geojson"
	parsed, _, err := runCLI(t, "alert", "parse", feed, "--json")
	if err != nil {
		t.Fatal(err)
	}
	alerts, err := parsedAlerts(parsed)
	if err != nil || len(alerts) < 2 {
		t.Fatalf("%s holds %d alerts (%v), want several", feed, len(alerts), err)
	}
	var got struct {
		Assessments []map[string]any `json:"assessments"`
	}
	if err := json.Unmarshal([]byte(assessOut(t, feed)), &got); err != nil || len(got.Assessments) != len(alerts) {
		t.Fatalf("%d assessments for %d alerts (%v)", len(got.Assessments), len(alerts), err)
	}
	for i, as := range got.Assessments {
		if as["event_id"] != alerts[i]["event_id"] || len(as["sites"].([]any)) != 4 {
			t.Errorf("assessment %d: event %v, want %v, with 4 sites", i, as["event_id"], alerts[i]["event_id"])
		}
	}
}

func TestAlertAssessDrill(t *testing.T) {
	got := assessJSON(t, drillDir+"/01-eew.json")
	want := map[string]string{"kochi": "evacuate 10m16.594388456s", "kagawa": "watch", "osaka": "watch", "tokyo": "none"}
	if l := siteLevels(t, got); !equalMaps(l, want) {
		t.Errorf("drill EEW: %v, want %v", l, want)
	}
	// The drill scenario it writes with --drill is one refuge sim reads.
	scen := filepath.Join(t.TempDir(), "scenario.yaml")
	if _, _, err := runCLI(t, "alert", "assess", drillDir+"/02-eew-update.json", "--federation", exampleDir+"/federation.yaml", "--write-scenario", scen, "--drill"); err != nil {
		t.Fatal(err)
	}
	fed, err := model.LoadFederation(exampleDir + "/federation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := model.LoadScenario(scen, fed)
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Threats) != 2 || sc.Threats[0].Site != "kochi" || sc.Threats[1].Site != "kagawa" || !strings.HasPrefix(sc.Name, "drill-") {
		t.Errorf("scenario %s threats %+v", sc.Name, sc.Threats)
	}
	// Human output names the sites and the deadlines.
	out, _, err := runCLI(t, "alert", "assess", drillDir+"/03-tsunami.json", "--federation", exampleDir+"/federation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"to evacuate (drill only, not a real event): kochi by +11m0s", "major_warning +13m0s", "site lost at 2026-03-01T12:14:00+09:00"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// --at counts from another time.
	got = assessJSON(t, drillDir+"/03-tsunami.json", "--at", "2026-03-01T12:10:00+09:00")
	if l := siteLevels(t, got); l["kochi"] != "evacuate 4m0s" {
		t.Errorf("--at: kochi %q", l["kochi"])
	}
}

// exerciseFixture is JMA's exercise tsunami warning (Status 訓練), which
// threatens Kochi, Kagawa and Osaka.
const exerciseFixture = "../../internal/threat/testdata/jmasample_32-39_12_02_250206_VTSE41.xml"

func TestAlertAssessMarksDrills(t *testing.T) {
	fed := exampleDir + "/federation.yaml"
	// Text: every line carries the tag, the evacuation is a drill's.
	out, _, err := runCLI(t, "alert", "assess", exerciseFixture, "--federation", fed)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(line, "[EXERCISE] ") && line != "[EXERCISE] " {
			t.Errorf("line %d not marked: %q", i+1, line)
		}
	}
	for _, want := range []string{"NOT A REAL EVENT", "to evacuate (drill only, not a real event): kochi", "no scenario without --drill"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// JSON: the assessment, every site and every reason say so; no scenario.
	got := assessJSON(t, exerciseFixture)
	if got["drill"] != "exercise" || got["scenario"] != nil || !strings.Contains(got["scenario_withheld"].(string), "--drill") {
		t.Errorf("JSON drill %v scenario %v withheld %v", got["drill"], got["scenario"], got["scenario_withheld"])
	}
	for _, s := range got["sites"].([]any) {
		m := s.(map[string]any)
		if m["drill"] != "exercise" {
			t.Errorf("site %v not marked", m["site"])
		}
		reasons, _ := m["reasons"].([]any) // none for a site nothing threatens
		for _, r := range reasons {
			if !strings.HasPrefix(r.(string), "[EXERCISE] ") {
				t.Errorf("site %v reason %q not marked", m["site"], r)
			}
		}
	}
	// --write-scenario refuses it without --drill and writes nothing.
	scen := filepath.Join(t.TempDir(), "scenario.yaml")
	if _, _, err := runCLI(t, "alert", "assess", exerciseFixture, "--federation", fed, "--write-scenario", scen); err == nil ||
		!strings.Contains(err.Error(), "not a real event (status exercise); add --drill") {
		t.Errorf("exercise written as a scenario: %v", err)
	}
	if _, err := os.Stat(scen); !os.IsNotExist(err) {
		t.Errorf("scenario file written: %v", err)
	}
	// With --drill: a scenario marked as a drill, in JSON and on disk.
	got = assessJSON(t, exerciseFixture, "--drill")
	if sc, ok := got["scenario"].(map[string]any); !ok || !strings.HasPrefix(sc["name"].(string), "drill-") {
		t.Errorf("--drill scenario %v", got["scenario"])
	}
	if _, _, err := runCLI(t, "alert", "assess", exerciseFixture, "--federation", fed, "--write-scenario", scen, "--drill"); err != nil {
		t.Fatal(err)
	}
	f, err := model.LoadFederation(fed)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := model.LoadScenario(scen, f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sc.Name, "drill-alert-") || !strings.HasPrefix(sc.Description, "[EXERCISE] DRILL, NOT A REAL EVENT") || len(sc.Threats) != 3 {
		t.Errorf("drill scenario %q %q %d threats", sc.Name, sc.Description, len(sc.Threats))
	}
	for _, th := range sc.Threats {
		if !strings.HasPrefix(th.Note, "[EXERCISE] ") {
			t.Errorf("threat note %q", th.Note)
		}
	}
	// A real alert is not marked and makes a real scenario.
	out, _, err = runCLI(t, "alert", "assess", alertFixtures+"/jma/jmasample_32-39_11_02_250206_VTSE41.xml", "--federation", fed)
	if err != nil || strings.Contains(out, "[EXERCISE]") || strings.Contains(out, "drill") {
		t.Errorf("real alert: %v\n%s", err, out)
	}
}

func TestAlertAssessBadInput(t *testing.T) {
	dir := t.TempDir()
	trunc := filepath.Join(dir, "truncated.xml")
	data, err := os.ReadFile(alertFixtures + "/jma/jmasample_37_01_01_240613_VXSE43.xml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trunc, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	badPolicy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(badPolicy, []byte("shaking:\n  power_loss_intensity: 9\nsites:\n  kochy: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fed := exampleDir + "/federation.yaml"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"alert", "assess", trunc, "--federation", fed}, "truncated"},
		{[]string{"alert", "assess", filepath.Join(dir, "missing.xml"), "--federation", fed}, "no such file"},
		{[]string{"alert", "assess", drillDir + "/01-eew.json"}, `"federation" not set`},
		{[]string{"alert", "assess", drillDir + "/01-eew.json", "--federation", fed, "--threat-policy", badPolicy}, "sites.kochy"},
		{[]string{"alert", "assess", drillDir + "/01-eew.json", "--federation", fed, "--threat-policy", badPolicy}, "shaking.power_loss_intensity"},
		{[]string{"alert", "assess", drillDir + "/01-eew.json", "--federation", fed, "--at", "yesterday"}, "--at"},
	} {
		_, _, err := runCLI(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one mentioning %q", c.args, err, c.want)
		}
	}
	// A cancellation raises no threat.
	got := assessJSON(t, drillDir+"/cancel/02-cancel.json")
	for site, l := range siteLevels(t, got) {
		if l != "none" {
			t.Errorf("cancel: %s %s", site, l)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
