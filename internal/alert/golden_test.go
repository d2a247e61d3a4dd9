package alert_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
	_ "github.com/refuge-project/refuge/internal/alert/formats"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden parses every fixture with ParseAll (sniffing its format) and
// compares the alerts with testdata/golden/<dir>/<file>.json: one object
// for a document holding one alert, an array for a feed.
func TestGolden(t *testing.T) {
	for _, path := range alerttest.Fixtures(t) {
		rel, _ := filepath.Rel(alerttest.Testdata(), path)
		t.Run(rel, func(t *testing.T) {
			alerts, err := alert.ParseAll(alerttest.Read(t, path))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			alerttest.Check(t, alerts...)
			var v any = alerts
			if len(alerts) == 1 {
				v = alerts[0]
			}
			got, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", rel+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file %s (run go test -update to accept; -want +got):\n%s", rel, golden, gocmp.Diff(string(want), string(got)))
			}
		})
	}
}
