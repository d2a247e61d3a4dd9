package model

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/refuge-project/refuge/internal/strictyaml"
	"github.com/refuge-project/refuge/internal/validate"
)

// roundTrip marshals v to JSON and to YAML and checks that parse reads
// both back as v.
func roundTrip[T any](t *testing.T, v T, parse func([]byte) (T, error)) {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	ys, err := yaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	for format, data := range map[string][]byte{"JSON": js, "YAML": ys} {
		got, err := parse(data)
		if err != nil {
			t.Fatalf("%s does not parse back: %v\n%s", format, err, data)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("%s round trip changed the value:\n got %+v\nwant %+v", format, got, v)
		}
	}
}

func TestFederationRoundTrip(t *testing.T) {
	roundTrip(t, testFederation(t), ParseFederation)
}

func TestScenarioRoundTrip(t *testing.T) {
	f := testFederation(t)
	roundTrip(t, testScenario(t), func(b []byte) (*Scenario, error) { return ParseScenario(b, f) })
}

func TestPolicyRoundTrip(t *testing.T) {
	custom, err := ParsePolicy(readTestdata(t, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	policies := []Policy{custom}
	for _, n := range PolicyNames() {
		p, _ := PolicyByName(n)
		policies = append(policies, p)
	}
	for _, p := range policies {
		t.Run(p.Name, func(t *testing.T) {
			roundTrip(t, p, ParsePolicy)
			// Every field is written, so the base does not matter.
			js, _ := json.Marshal(p)
			for _, base := range PolicyNames() {
				doc := `{"base": "` + base + `", ` + string(js[1:])
				got, err := ParsePolicy([]byte(doc))
				if err != nil || !reflect.DeepEqual(got, p) {
					t.Fatalf("on base %s: %+v, %v", base, got, err)
				}
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	refuge := RefugePolicy()
	withLinks := RefugePolicy()
	withLinks.Concurrency.PerLinkLimit = 8
	withLinks.Name = "narrow"
	for _, tc := range []struct {
		name, doc string
		want      Policy
	}{
		{"empty mapping is the default", "{}", refuge},
		{"base only", "base: sequential\n", SequentialPolicy()},
		{"explicit default base", "base: refuge\n", refuge},
		{"nested override keeps siblings", "name: narrow\nconcurrency: {per_link: 8}\n", withLinks},
		{"null keeps the base value", "name: ~\nvcpu_overcommit: null\nconcurrency: {per_link: 8}\n", func() Policy { p := withLinks; p.Name = "refuge"; return p }()},
		{"durations", "safety_margin: 2m\nmigration: {max_downtime: 500ms}\n", func() Policy {
			p := RefugePolicy()
			p.SafetyMargin, p.Migration.MaxDowntime = Duration(2*time.Minute), Duration(500*time.Millisecond)
			return p
		}()},
		{"baseline made adaptive", "base: kubevirt-like\nname: kv-adaptive\nconcurrency: {adaptive: true, interval: 2s, initial_per_link: 1, decrease_factor: 0.5}\n", func() Policy {
			p := KubeVirtLikePolicy()
			p.Name = "kv-adaptive"
			p.Concurrency.Adaptive, p.Concurrency.Interval, p.Concurrency.InitialPerLink, p.Concurrency.DecreaseFactor = true, Duration(2*time.Second), 1, 0.5
			return p
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePolicy([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		paths     []string
		msg       string
	}{
		{"unknown base", "base: sequental\n", []string{"base"}, `unknown policy "sequental" (known: all-at-once, kubevirt-like, refuge, sequential)`},
		{"unknown base and field", "base: x\nordr: fifo\n", []string{"base", "ordr"}, `did you mean "order"?`},
		{"base of wrong type", "base: [refuge]\n", []string{"base"}, "must be a string, got a list"},
		{"unknown nested field", "concurrency: {per_links: 3}\n", []string{"concurrency.per_links"}, `did you mean "per_link"?`},
		{"override made invalid", "base: sequential\nconcurrency: {adaptive: true}\n",
			[]string{"concurrency.interval", "concurrency.initial_per_link", "concurrency.decrease_factor"}, "must be > 0s, got 0s"},
		{"decode and validation together", "vcpu_overcommit: 0\norder: lifo\nmigration: {max_downtime: soon}\n",
			[]string{"vcpu_overcommit", "order", "migration.max_downtime"}, `must be a duration such as "90s" or "15m", got "soon"`},
		{"document not a mapping", "- refuge\n", []string{""}, "the document must be a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tc.doc))
			checkProblems(t, err, tc.paths, tc.msg)
		})
	}
	if _, err := ParsePolicy(nil); !errors.Is(err, strictyaml.ErrEmptyDocument) {
		t.Fatalf("empty policy: %v", err)
	}
	var se *strictyaml.SyntaxError
	if _, err := ParsePolicy([]byte("name: [\n")); !errors.As(err, &se) {
		t.Fatalf("malformed policy: %v", err)
	}
}

func TestLoadFiles(t *testing.T) {
	f, err := LoadFederation("testdata/federation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadScenario("testdata/scenario.yaml", f); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy("testdata/policy.yaml"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\nsites: []\ncolour: red\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	for _, tc := range []struct {
		name string
		load func(string) error
		what string
	}{
		{"federation", func(p string) error { _, err := LoadFederation(p); return err }, "federation"},
		{"scenario", func(p string) error { _, err := LoadScenario(p, f); return err }, "scenario"},
		{"policy", func(p string) error { _, err := LoadPolicy(p); return err }, "policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.load(missing)
			if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "read "+tc.what) {
				t.Errorf("missing file: %v", err)
			}
			err = tc.load(bad)
			var list validate.List
			if !errors.As(err, &list) || !strings.HasPrefix(err.Error(), tc.what+" "+bad+": ") {
				t.Errorf("bad file: %v", err)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.D() != 90*time.Minute || d.Seconds() != 5400 {
		t.Fatalf("1h30m: %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("90")); err == nil || !strings.Contains(err.Error(), `got "90"`) {
		t.Fatalf("90: %v", err)
	}
	if d.String() != "1h30m0s" {
		t.Fatalf("String() = %q", d.String())
	}
	js, _ := json.Marshal(struct{ D Duration }{Duration(1500 * time.Millisecond)})
	if string(js) != `{"D":"1.5s"}` {
		t.Fatalf("JSON %s", js)
	}
	if txt, _ := Duration(time.Second).MarshalText(); string(txt) != "1s" {
		t.Fatalf("text %s", txt)
	}
}
