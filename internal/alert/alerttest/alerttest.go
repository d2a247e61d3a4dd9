// Package alerttest holds test helpers shared by the alert parsers' tests:
// the fixture documents under internal/alert/testdata, and the checks every
// parsed alert must pass.
package alerttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/refuge-project/refuge/internal/alert"
)

// Testdata returns the path of internal/alert/testdata.
func Testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// FixtureDirs are the subdirectories of Testdata holding real documents.
var FixtureDirs = []string{"cap", "jma", "other", "p2pquake", "usgs"}

// Fixtures returns the paths of the fixture documents in the given
// subdirectories of Testdata (all of FixtureDirs if none), sorted.
func Fixtures(t testing.TB, dirs ...string) []string {
	t.Helper()
	if len(dirs) == 0 {
		dirs = FixtureDirs
	}
	var out []string
	for _, d := range dirs {
		entries, err := os.ReadDir(filepath.Join(Testdata(), d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				out = append(out, filepath.Join(Testdata(), d, e.Name()))
			}
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		t.Fatalf("no fixtures in %v", dirs)
	}
	return out
}

// Read returns the contents of a file, failing the test if it cannot.
func Read(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Fixture returns the contents of a fixture by its path under Testdata
// ("jma/jmasample_37_01_01_240613_VXSE43.xml").
func Fixture(t testing.TB, rel string) []byte {
	t.Helper()
	return Read(t, filepath.Join(Testdata(), rel))
}

// Check fails the test unless every alert validates and reads back
// unchanged from its JSON form.
func Check(t testing.TB, alerts ...*alert.Alert) {
	t.Helper()
	for i, a := range alerts {
		if err := a.Validate(); err != nil {
			t.Fatalf("alert %d does not validate: %v", i, err)
		}
		js, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("alert %d does not marshal: %v", i, err)
		}
		var back alert.Alert
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatalf("alert %d does not unmarshal: %v\n%s", i, err, js)
		}
		if diff := gocmp.Diff(a, &back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("alert %d changed in a JSON round trip (-parsed +reread):\n%s", i, diff)
		}
	}
}
