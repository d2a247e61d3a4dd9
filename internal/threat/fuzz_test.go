package threat

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

// FuzzAssess feeds whatever the parsers accept to Assess: it must never
// fail or panic, every number must be finite (JSON cannot carry the
// others), and the scenario must validate against the federation.
func FuzzAssess(f *testing.F) {
	for _, path := range append(alerttest.Fixtures(f), exerciseFixture) {
		f.Add(alerttest.Read(f, path))
	}
	fed, err := example()
	if err != nil {
		f.Fatal(err)
	}
	p := DefaultPolicy()
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := alert.ParseAll(data)
		if err != nil {
			return
		}
		for _, a := range alerts {
			as, err := Assess(a, fed, &p, a.IssuedAt.Add(-time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := json.Marshal(as); err != nil {
				t.Fatalf("assessment does not marshal: %v", err)
			}
			for _, s := range as.Sites {
				if sh := s.Shaking; sh != nil && sh.Estimate != nil {
					for _, v := range []float64{sh.Estimate.PGV, sh.Estimate.Instrumental, sh.Estimate.FaultKm} {
						if math.IsNaN(v) || math.IsInf(v, 0) {
							t.Fatalf("%s: non-finite estimate %+v", s.Site, sh.Estimate)
						}
					}
				}
			}
			if err := as.Scenario().Validate(fed); err != nil {
				t.Fatalf("scenario: %v", err)
			}
		}
	})
}

// FuzzParsePolicy: any document is either refused with an error or gives a
// policy that validates; never a panic.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("shaking:\n  power_loss_intensity: 5+\nsites:\n  kochi: {avs30_mps: 250}\n"))
	f.Add([]byte("tsunami: {advisory: evacuate, margin: 5m}\napproval: approve\n"))
	f.Add([]byte("{}"))
	f.Add([]byte("shaking: {fault_type: auto, margin: 0.45}\nsites:\n  kochi: {seismic_areas: [\"631\", 高知県中部]}\n"))
	fed, err := example()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data, fed)
		if err != nil {
			return
		}
		if err := p.Validate(fed); err != nil {
			t.Fatalf("accepted policy does not validate: %v", err)
		}
	})
}
