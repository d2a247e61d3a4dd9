package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The fuzz tests feed arbitrary bytes to the parsers. Whatever the input,
// parsing must not panic; a document that parses must validate again, and
// must read back unchanged from its JSON form. Seeds live in
// testdata/fuzz/<FuzzName>/.

// reparse checks that a parsed value survives a JSON round trip.
func reparse[T any](t *testing.T, v T, parse func([]byte) (T, error)) {
	t.Helper()
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("parsed value does not marshal: %v", err)
	}
	back, err := parse(js)
	if err != nil {
		t.Fatalf("marshalled value does not parse: %v\n%s", err, js)
	}
	// An empty list and an absent one are the same to the model (and JSON
	// omits empty ones).
	if diff := gocmp.Diff(v, back, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("round trip changed the value (-parsed +reparsed):\n%s", diff)
	}
}

func FuzzParseFederation(f *testing.F) {
	f.Add(readTestdata(f, "federation.yaml"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fed, err := ParseFederation(data)
		if err != nil {
			return
		}
		if err := fed.Validate(); err != nil {
			t.Fatalf("parsed federation does not validate: %v", err)
		}
		NewIndex(fed)
		reparse(t, fed, ParseFederation)
	})
}

func FuzzParseScenario(f *testing.F) {
	f.Add(readTestdata(f, "scenario.yaml"))
	fed := testFederation(f)
	parse := func(data []byte) (*Scenario, error) { return ParseScenario(data, fed) }
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseScenario(data, nil); err != nil {
			if _, err := parse(data); err == nil {
				t.Fatal("a scenario that fails alone passes against a federation")
			}
		}
		s, err := parse(data)
		if err != nil {
			return
		}
		if err := s.Validate(fed); err != nil {
			t.Fatalf("parsed scenario does not validate: %v", err)
		}
		reparse(t, s, parse)
	})
}

func FuzzParsePolicy(f *testing.F) {
	f.Add(readTestdata(f, "policy.yaml"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed policy does not validate: %v", err)
		}
		reparse(t, p, ParsePolicy)
	})
}

// TestFuzzSeeds checks that the committed seeds are what their names say:
// valid-* documents parse and broken-* ones do not.
func TestFuzzSeeds(t *testing.T) {
	fed := testFederation(t)
	parsers := map[string]func([]byte) error{
		"FuzzParseFederation": func(b []byte) error { _, err := ParseFederation(b); return err },
		"FuzzParseScenario":   func(b []byte) error { _, err := ParseScenario(b, fed); return err },
		"FuzzParsePolicy":     func(b []byte) error { _, err := ParsePolicy(b); return err },
	}
	for fuzzName, parse := range parsers {
		dir := filepath.Join("testdata", "fuzz", fuzzName)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			lit, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), "go test fuzz v1\n[]byte(")
			data, unqErr := strconv.Unquote(strings.TrimSuffix(lit, ")"))
			if !ok || unqErr != nil {
				t.Fatalf("%s/%s is not a []byte corpus entry", fuzzName, e.Name())
			}
			err = parse([]byte(data))
			switch {
			case strings.HasPrefix(e.Name(), "valid-") && err != nil:
				t.Errorf("%s/%s does not parse: %v", fuzzName, e.Name(), err)
			case strings.HasPrefix(e.Name(), "broken-") && err == nil:
				t.Errorf("%s/%s parses", fuzzName, e.Name())
			}
		}
	}
}
