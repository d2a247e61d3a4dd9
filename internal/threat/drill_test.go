package threat

import (
	"math"
	"strings"
	"testing"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
	"github.com/refuge-project/refuge/internal/model"
)

// exerciseFixture is JMA's exercise tsunami warning (Status 訓練).
const exerciseFixture = "testdata/jmasample_32-39_12_02_250206_VTSE41.xml"

func TestAssessMarksDrills(t *testing.T) {
	fed := loadFed(t)
	p := DefaultPolicy()
	a, err := alert.Parse(alerttest.Read(t, exerciseFixture))
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != alert.StatusExercise {
		t.Fatalf("fixture status %s, want exercise", a.Status)
	}
	as, err := Assess(a, fed, &p, a.IssuedAt)
	if err != nil {
		t.Fatal(err)
	}
	if as.Real() || as.Drill != alert.StatusExercise || len(as.Notes) == 0 || !strings.Contains(as.Notes[0], "[EXERCISE]: NOT A REAL EVENT") {
		t.Errorf("drill %q, notes %q: want the exercise marked", as.Drill, as.Notes)
	}
	// The exercise threatens the Shikoku sites: levels are assessed as
	// for a real alert (the pipeline drives its drill world with them),
	// but every site and reason says it is an exercise.
	if got := levels(as); got["kochi"] != LevelEvacuate || got["kagawa"] != LevelEvacuate || got["osaka"] != LevelEvacuate {
		t.Errorf("levels %v", got)
	}
	for _, s := range as.Sites {
		if s.Drill != alert.StatusExercise {
			t.Errorf("%s: drill %q", s.Site, s.Drill)
		}
		for _, r := range s.Reasons {
			if !strings.HasPrefix(r, "[EXERCISE] ") {
				t.Errorf("%s: reason %q not marked", s.Site, r)
			}
		}
	}
	sc := as.Scenario()
	if !strings.HasPrefix(sc.Name, "drill-alert-") || !strings.HasPrefix(sc.Description, "[EXERCISE] DRILL, NOT A REAL EVENT") {
		t.Errorf("scenario %q %q is not marked as a drill", sc.Name, sc.Description)
	}
	for _, th := range sc.Threats {
		if !strings.HasPrefix(th.Note, "[EXERCISE] ") || strings.Count(th.Note, "[EXERCISE]") != 1 {
			t.Errorf("threat note %q", th.Note)
		}
	}
	if err := sc.Validate(fed); err != nil {
		t.Errorf("drill scenario: %v", err)
	}

	// A real alert carries no mark; its drill scenario is marked.
	real := parseFixture(t, "jma/jmasample_32-39_11_02_250206_VTSE41.xml")
	as, err = Assess(real, fed, &p, real.IssuedAt)
	if err != nil {
		t.Fatal(err)
	}
	if !as.Real() || as.Drill != "" || strings.Contains(as.Sites[0].Reasons[0], "[") || strings.HasPrefix(as.Scenario().Name, "drill-") {
		t.Errorf("real alert marked: %q %q %q", as.Drill, as.Sites[0].Reasons, as.Scenario().Name)
	}
	if d := as.DrillScenario(); !strings.HasPrefix(d.Name, "drill-alert-") || !strings.HasPrefix(d.Description, "[EXERCISE] DRILL") {
		t.Errorf("drill scenario of a real alert %q %q", d.Name, d.Description)
	}
	// Test and draft statuses are marked with their own tags.
	for _, st := range []alert.Status{alert.StatusTest, alert.StatusDraft} {
		b := *real
		b.Status = st
		as, _ := Assess(&b, fed, &p, b.IssuedAt)
		if as.Drill != st || !strings.HasPrefix(as.Sites[0].Reasons[0], DrillTag(st)+" ") {
			t.Errorf("%s: %q %q", st, as.Drill, as.Sites[0].Reasons)
		}
	}
}

func TestAssessTakesTheWorseOfForecastAndEstimate(t *testing.T) {
	// The Bungo channel EEW forecasts 5- for 愛媛県南予 (622). A site at
	// Uwajima city hall declaring 622: on default ground the estimate
	// (5-, I 4.88) matches the forecast; on very soft ground (AVS30
	// 100 m/s) it is 5+, worse than the forecast, and wins; with the
	// margin off and stiff ground (1000 m/s) the forecast wins.
	a := parseFixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml")
	fed := &model.Federation{Name: "uwajima", Sites: []model.Site{{Name: "uwajima", Lat: 33.22333333, Lon: 132.5605556, SeismicArea: "622", UPSMinutes: 10}}}
	for _, c := range []struct {
		avs30, margin float64
		want          alert.Intensity
		source        string
	}{
		{DefaultAVS30, DefaultMargin, alert.Intensity5Lower, "alert"},
		{100, DefaultMargin, alert.Intensity5Upper, "estimate"},
		{1000, 0, alert.Intensity5Lower, "alert"},
	} {
		p := DefaultPolicy()
		p.Shaking.Margin = c.margin
		p.Sites = map[string]SitePolicy{"uwajima": {AVS30: c.avs30}}
		as, err := Assess(a, fed, &p, a.IssuedAt)
		if err != nil {
			t.Fatal(err)
		}
		sh := as.Sites[0].Shaking
		if sh.Intensity != c.want || sh.Source != c.source || sh.Forecast != alert.Intensity5Lower || sh.ForecastArea != "愛媛県南予 622" {
			t.Errorf("AVS30 %g margin %g: %s from %s (forecast %s for %q, estimate %s), want %s from %s",
				c.avs30, c.margin, sh.Intensity, sh.Source, sh.Forecast, sh.ForecastArea, sh.Estimate.Class, c.want, c.source)
		}
		if !strings.Contains(as.Sites[0].Reasons[0], "alert 5- for 愛媛県南予 622; estimate") {
			t.Errorf("reason %q does not give both", as.Sites[0].Reasons[0])
		}
	}
}

func TestMMIToJMA(t *testing.T) {
	// Worden et al. (2012) inverted: MMI 8 → log10 PGV = (8 − 2.89)/3.16 =
	// 1.61709 → I = 2.68 + 1.72·1.61709 = 5.4614; MMI 4 → (4 − 3.78)/1.47 =
	// 0.14966 → 2.9374.
	near(t, "MMI 8", MMIToJMA(8), 5.461392, 1e-5)
	near(t, "MMI 4", MMIToJMA(4), 2.937415, 1e-5)
	prev := -math.MaxFloat64
	for m := 1.0; m <= 12; m += 0.5 {
		if v := MMIToJMA(m); v < prev {
			t.Errorf("MMIToJMA not increasing at %g", m)
		} else {
			prev = v
		}
	}
}

func TestShakeAlertContourLevels(t *testing.T) {
	a := parseFixture(t, "other/shakealert_2014_Napa_M5.7_contour.xml")
	// Find points inside the MMI ≥ 6 contour and inside MMI ≥ 2 only, on a
	// line north from the epicentre.
	inner, outer := contour(t, a, 6), contour(t, a, 2)
	mid := contour(t, a, 3)
	var in6, in2 alert.LatLon
	for lat := a.Hypocenter.Lat; lat < a.Hypocenter.Lat+5; lat += 0.01 {
		pt := alert.LatLon{lat, a.Hypocenter.Lon}
		if in6 == (alert.LatLon{}) && containsGeometry(inner, pt) {
			in6 = pt
		}
		if containsGeometry(outer, pt) && !containsGeometry(mid, pt) {
			in2 = pt
			break
		}
	}
	if in6 == (alert.LatLon{}) || in2 == (alert.LatLon{}) {
		t.Fatalf("no test points found (%v, %v)", in6, in2)
	}
	fed := &model.Federation{Name: "napa", Sites: []model.Site{
		{Name: "near", Lat: in6[0], Lon: in6[1], UPSMinutes: 10},
		{Name: "far", Lat: in2[0], Lon: in2[1], UPSMinutes: 10},
	}}
	p := DefaultPolicy()
	as, err := Assess(a, fed, &p, a.IssuedAt)
	if err != nil {
		t.Fatal(err)
	}
	near6, far2 := as.Sites[0], as.Sites[1]
	if near6.Shaking == nil || near6.Shaking.Forecast != IntensityClass(MMIToJMA(6)) || !strings.HasPrefix(near6.Shaking.ForecastArea, "predicted MMI ≥ 6") {
		t.Errorf("site inside MMI ≥ 6: %+v", near6.Shaking)
	}
	if far2.Shaking == nil || far2.Shaking.Forecast != IntensityClass(MMIToJMA(2)) || !strings.HasPrefix(far2.Shaking.ForecastArea, "predicted MMI ≥ 2") {
		t.Errorf("site inside MMI ≥ 2 only: %+v", far2.Shaking)
	}
	if near6.Shaking.Forecast <= far2.Shaking.Forecast {
		t.Errorf("MMI ≥ 6 (%s) does not count above MMI ≥ 2 (%s)", near6.Shaking.Forecast, far2.Shaking.Forecast)
	}
	for _, s := range as.Sites {
		if len(s.Areas) != 0 {
			t.Errorf("%s: contours counted as plain areas %v", s.Site, s.Areas)
		}
	}
	// A contour of MMI ≥ 8 (severe) around a site: 5+, watched; MMI ≥ 9:
	// 6+, evacuated at the S arrival plus the UPS.
	for _, c := range []struct {
		mmi   string
		want  alert.Intensity
		level Level
	}{{"8", alert.Intensity5Upper, LevelWatch}, {"9", alert.Intensity6Upper, LevelEvacuate}} {
		b := *a
		b.Areas = []alert.Area{{Name: "predicted MMI ≥ " + c.mmi, Polygons: inner.Polygons}}
		as, err := Assess(&b, fed, &p, b.IssuedAt)
		if err != nil {
			t.Fatal(err)
		}
		if sh := as.Sites[0].Shaking; sh.Forecast != c.want || as.Sites[0].Level < c.level {
			t.Errorf("MMI ≥ %s: forecast %s level %s, want %s and at least %s", c.mmi, sh.Forecast, as.Sites[0].Level, c.want, c.level)
		}
	}
}

// contour returns the ShakeAlert contour area of the given MMI level.
func contour(t *testing.T, a *alert.Alert, mmi float64) *alert.Area {
	t.Helper()
	for i := range a.Areas {
		if m, ok := ContourMMI(&a.Areas[i]); ok && m == mmi {
			return &a.Areas[i]
		}
	}
	t.Fatalf("no MMI %g contour", mmi)
	return nil
}
