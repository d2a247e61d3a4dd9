package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
	for _, want := range []string{"refuge_migrations_started_total", "refuge_link_admitted_bytes_per_second{", "refuge_plans_total"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("metrics file lacks %s", want)
		}
	}
}

// TestErrorsPrintOnceBeforeAnyOutput: a bad command line fails with status
// 1, prints nothing on stdout (no header, no summary) and its error once,
// as one "refuge: …" line on stderr.
func TestErrorsPrintOnceBeforeAnyOutput(t *testing.T) {
	fed := filepath.Join(exampleDir, "federation.yaml")
	watch := func(args ...string) []string {
		return append([]string{"watch", "--federation", fed, "--simulate", "--speed", "1000"}, args...)
	}
	t.Setenv(relaySecretsEnv, "drill=0123456789abcdef-secret")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad log level", []string{"--log-level", "bogus", "demo"}, `invalid argument "bogus" for "--log-level" flag: want debug, info, warn or error`},
		{"unknown flag", []string{"demo", "--bogus"}, "unknown flag: --bogus"},
		{"missing flag", []string{"sim", "--federation", fed}, `required flag(s) "scenario" not set`},
		{"missing federation", []string{"validate", "--federation", "/nonexistent.yaml"}, "no such file"},
		{"ftp feed", watch("--source", "usgs:ftp://x"), `source "usgs:ftp://x": URL scheme "ftp" is not supported`},
		{"relative feed", watch("--source", "jma-atom:feed.xml"), `URL scheme "" is not supported`},
		{"ftp stream", watch("--source", "p2pquake:ftp://x"), `URL scheme "ftp" is not supported`},
		{"missing file", watch("--source", "file:/nonexistent"), `source "file:/nonexistent": stat /nonexistent: no such file or directory`},
		{"second source missing", watch("--source", "file:"+drillDir, "--source", "file:/nonexistent"), "/nonexistent"},
		{"bad listen address", watch("--source", "webhook:256.0.0.1:8080"), `listen address "256.0.0.1:8080"`},
		{"listen address without port", watch("--source", "webhook:localhost"), "listen address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tc.args, &out, &errOut); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if out.Len() > 0 {
				t.Errorf("printed before failing:\n%s", out.String())
			}
			e := errOut.String()
			if !strings.HasPrefix(e, "refuge: ") || strings.Count(e, "\n") != 1 || !strings.Contains(e, tc.want) {
				t.Errorf("stderr %q, want one line \"refuge: …%s…\"", e, tc.want)
			}
		})
	}
}

func TestLogLevels(t *testing.T) {
	for _, lv := range []string{"debug", "info", "warn", "error", "INFO"} {
		if _, _, err := runCLI(t, "--log-level", lv, "schema", "policy"); err != nil {
			t.Errorf("--log-level %s: %v", lv, err)
		}
	}
	g := &globalFlags{}
	if err := g.logLevel.Set("Debug"); err != nil || !g.logger(io.Discard).Enabled(context.Background(), slog.LevelDebug) {
		t.Errorf("--log-level Debug: %v", err)
	}
}

// TestWatchSourceFailureInTimelineOnly: a source that fails while watch
// runs (its listen address is taken) shows in the timeline once; the exit
// error only counts the failures.
func TestWatchSourceFailureInTimelineOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv(relaySecretsEnv, "drill=0123456789abcdef-secret")
	var out, errOut bytes.Buffer
	code := run([]string{"watch", "--federation", filepath.Join(exampleDir, "federation.yaml"), "--simulate", "--json",
		"--source", "webhook:" + ln.Addr().String()}, &out, &errOut)
	if code != 1 || errOut.String() != "refuge: 1 alert source(s) failed (see the timeline)\n" {
		t.Errorf("status %d, stderr %q", code, errOut.String())
	}
	var failed int
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		if m["kind"] == "failed" {
			failed++
			if d, _ := m["detail"].(string); !strings.Contains(d, "address already in use") {
				t.Errorf("failure %q does not say why", d)
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d failures in the timeline, want 1:\n%s", failed, out.String())
	}
}

// TestRelaySecretsOffTheCommandLine: watch takes relay secrets from a file
// or the environment; --relay-secret still works, with a deprecation
// warning on stderr (never in the output), and no secret is ever echoed.
func TestRelaySecretsOffTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secrets")
	writeFile(t, file, []byte("# relays\nphone-1=file-secret-0123456789\n\n"))
	for _, tc := range []struct {
		name  string
		f     watchFlags
		env   string
		want  map[string]string
		error string
	}{
		{name: "file", f: watchFlags{relaySecretsIn: file}, want: map[string]string{"phone-1": "file-secret-0123456789"}},
		{name: "environment", env: "a=env-secret-a-0123456 b=env-secret-b-0123456",
			want: map[string]string{"a": "env-secret-a-0123456", "b": "env-secret-b-0123456"}},
		{name: "all three", f: watchFlags{relaySecretsIn: file, relaySecrets: []string{"c=argv-secret-0123456789"}}, env: "a=env-secret-a-0123456",
			want: map[string]string{"phone-1": "file-secret-0123456789", "a": "env-secret-a-0123456", "c": "argv-secret-0123456789"}},
		{name: "missing file", f: watchFlags{relaySecretsIn: filepath.Join(dir, "nope")}, error: "--relay-secrets-file"},
		{name: "malformed", env: "no-equals-sign-secret", error: `relay secret "no-e…": want ID=SECRET`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(relaySecretsEnv, tc.env)
			m, err := tc.f.relaySecretsMap()
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) || strings.Contains(err.Error(), "equals-sign-secret") {
					t.Errorf("error %v, want one with %q (and no secret)", err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range m {
				got[k] = string(v)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("secrets %v, want %v", got, tc.want)
			}
		})
	}

	t.Setenv(relaySecretsEnv, "")
	var out, errOut bytes.Buffer
	run([]string{"watch", "--federation", filepath.Join(exampleDir, "federation.yaml"), "--simulate", "--json",
		"--relay-secret", "drill=argv-secret-0123456789", "--source", "file:/nonexistent"}, &out, &errOut)
	if out.Len() > 0 || !strings.Contains(errOut.String(), "Flag --relay-secret has been deprecated") ||
		strings.Contains(errOut.String(), "argv-secret") {
		t.Errorf("--relay-secret: stdout %q, stderr %q", out.String(), errOut.String())
	}
}

// TestFlagsMeanOneThing walks every command: --policy-file is an
// evacuation policy, a threat policy is --threat-policy, a secret is not
// taken on the command line, and --json is what docs/cli.md's table says
// (one object or JSON lines). Deprecated flags (old names kept working)
// are exempt.
func TestFlagsMeanOneThing(t *testing.T) {
	doc := string(readFile(t, "../../docs/cli.md"))
	documented := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(refuge [a-z ]+)` \\| (one object|JSON lines) \\|$").FindAllStringSubmatch(doc, -1) {
		documented[m[1]] = m[2]
	}
	if len(documented) == 0 {
		t.Fatal("docs/cli.md has no --json table")
	}
	forEachCommand(newRoot(io.Discard, io.Discard), func(c *cobra.Command) {
		path := c.CommandPath()
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			usage := strings.ToLower(f.Usage)
			switch {
			case f.Deprecated != "":
			case f.Name == "policy-file" && !strings.Contains(usage, "evacuation policy"):
				t.Errorf("%s --policy-file: %q is not an evacuation policy", path, f.Usage)
			case strings.Contains(usage, "threat policy") && f.Name != "threat-policy":
				t.Errorf("%s --%s names a threat policy: call it --threat-policy", path, f.Name)
			case strings.Contains(f.Name, "secret") && !strings.HasSuffix(f.Name, "-file"):
				t.Errorf("%s --%s takes a secret on the command line", path, f.Name)
			case f.Name == "json":
				kind, ok := documented[path]
				delete(documented, path)
				switch {
				case !ok:
					t.Errorf("%s --json is not in docs/cli.md's table", path)
				case kind == "one object" && !strings.Contains(f.Usage, "one JSON object"),
					kind == "JSON lines" && !strings.Contains(f.Usage, "JSON lines"):
					t.Errorf("%s --json: help %q, docs/cli.md says %s", path, f.Usage, kind)
				}
			}
		})
	})
	for path := range documented {
		t.Errorf("docs/cli.md lists %s, which has no --json", path)
	}
}
