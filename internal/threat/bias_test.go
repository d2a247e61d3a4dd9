package threat

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
	"github.com/refuge-project/refuge/internal/model"
)

// cityHalls places a site in each JMA seismic intensity area that an EEW
// fixture forecasts: the city hall (or, where the area has no city, the
// town office) of its main municipality. Coordinates are the municipal
// office positions of code4fukui/localgovjp (localgovjp-utf8.csv at commit
// 232edc3ae7b6e58d7cc931df6ee09dc7ce2c2257, CC0, compiled from GSI and
// J-LIS data); the areas the municipalities belong to are JMA's.
var cityHalls = map[string]struct {
	code, office string
	pos          alert.LatLon
}{
	// 2024-04-17 豊後水道 EEW warning (jma/jmasample_37_01_01_240613_VXSE43.xml).
	"愛媛県南予":  {"622", "宇和島市役所", alert.LatLon{33.22333333, 132.5605556}},
	"高知県西部":  {"632", "四万十市役所", alert.LatLon{32.99138889, 132.9338889}},
	"大分県南部":  {"752", "佐伯市役所", alert.LatLon{32.96027778, 131.8994444}},
	"大分県中部":  {"751", "大分市役所", alert.LatLon{33.23944444, 131.6097222}},
	"愛媛県中予":  {"621", "松山市役所", alert.LatLon{33.83916667, 132.7655556}},
	"大分県北部":  {"750", "中津市役所", alert.LatLon{33.59833333, 131.1883333}},
	"愛媛県東予":  {"620", "今治市役所", alert.LatLon{34.06611111, 132.9977778}},
	"山口県東部":  {"703", "岩国市役所", alert.LatLon{34.16694444, 132.2197222}},
	"広島県南西部": {"592", "広島市役所", alert.LatLon{34.38527778, 132.4552778}},
	// 2022-08-11 宗谷地方北部 EEW (p2pquake/p2pqapi_556_eew_20220811_soya_array.json, names only).
	"上川地方北部":  {"125", "名寄市役所", alert.LatLon{44.3559089, 142.4631835}},
	"宗谷地方南部":  {"136", "枝幸町役場", alert.LatLon{44.93873333, 142.5814043}},
	"宗谷地方北部":  {"135", "稚内市役所", alert.LatLon{45.41563748, 141.6730675}},
	"留萌地方中北部": {"130", "羽幌町役場", alert.LatLon{44.36054972, 141.6973205}},
}

// classCentre is the middle of the instrumental-intensity range of a JMA
// class (4: [3.5, 4.5) → 4; 5-: [4.5, 5.0) → 4.75; 7: from 6.5, taken as
// 6.75).
func classCentre(c alert.Intensity) float64 {
	switch {
	case c <= alert.Intensity4:
		return float64(c - alert.Intensity0)
	case c == alert.Intensity7:
		return 6.75
	}
	return 4.75 + 0.5*float64(c-alert.Intensity5Lower)
}

// TestEstimateBiasAgainstJMAForecasts compares refuge's ground-motion
// estimate with JMA's own per-area forecasts in every EEW fixture, for
// sites at the city halls of the forecast areas under the default policy:
// the mean error (estimate − centre of JMA's class) must lie within
// ±0.25 intensity units, and no estimate may be more than one class below
// JMA's. It also checks that the site takes the worse of the two.
func TestEstimateBiasAgainstJMAForecasts(t *testing.T) {
	p := DefaultPolicy()
	var sum, sumMedian float64
	var n, exact, oneLow int
	var report strings.Builder
	fmt.Fprintf(&report, "%-12s %-10s %-4s %-7s %-7s %-5s %s\n", "area", "office", "JMA", "median", "est", "class", "error")
	for _, path := range alerttest.Fixtures(t) {
		alerts, err := alert.ParseAll(alerttest.Read(t, path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, a := range alerts {
			if a.Kind != alert.KindEEW || a.MsgType == alert.MsgCancel {
				continue
			}
			fed := &model.Federation{Name: "city-halls"}
			for _, ar := range a.Areas {
				if ar.Intensity == alert.IntensityUnknown {
					continue
				}
				ch, ok := cityHalls[ar.Name]
				if !ok {
					t.Errorf("%s: no city hall recorded for forecast area %s %s", filepath.Base(path), ar.Name, ar.Code(alert.SchemeJMASeismicArea))
					continue
				}
				if c := ar.Code(alert.SchemeJMASeismicArea); c != "" && c != ch.code {
					t.Errorf("%s: area %s has code %s, the table says %s", filepath.Base(path), ar.Name, c, ch.code)
				}
				fed.Sites = append(fed.Sites, model.Site{Name: ch.code, Lat: ch.pos[0], Lon: ch.pos[1], SeismicArea: ch.code, UPSMinutes: 10})
			}
			if len(fed.Sites) == 0 {
				t.Logf("%s: %s EEW without per-area JMA intensities (not compared)", filepath.Base(path), a.Format)
				continue
			}
			if a.Hypocenter == nil || a.Magnitude == nil {
				t.Errorf("%s: EEW with area forecasts but no hypocentre and magnitude", filepath.Base(path))
				continue
			}
			as, err := Assess(a, fed, &p, a.IssuedAt)
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range as.Sites {
				ar := a.Areas[i]
				sh := st.Shaking
				if sh == nil || sh.Estimate == nil || sh.Forecast != ar.Intensity {
					t.Errorf("%s %s: shaking %+v, want JMA's %s beside an estimate", filepath.Base(path), ar.Name, sh, ar.Intensity)
					continue
				}
				e := sh.Estimate
				if want := max(e.Class, ar.Intensity); sh.Intensity != want {
					t.Errorf("%s %s: acts on %s, want the worse of alert %s and estimate %s", filepath.Base(path), ar.Name, sh.Intensity, ar.Intensity, e.Class)
				}
				d := e.Instrumental - classCentre(ar.Intensity)
				sum += d
				sumMedian += e.Median - classCentre(ar.Intensity)
				n++
				switch steps := int(e.Class) - int(ar.Intensity); {
				case steps == 0:
					exact++
				case steps == -1:
					oneLow++
				case steps < -1:
					t.Errorf("%s %s: estimate %s (I %.2f) is %d classes below JMA's %s", filepath.Base(path), ar.Name, e.Class, e.Instrumental, -steps, ar.Intensity)
				}
				fmt.Fprintf(&report, "%-12s %-10s %-4s %7.2f %7.2f %-5s %+.2f\n", ar.Name, cityHalls[ar.Name].office, ar.Intensity, e.Median, e.Instrumental, e.Class, d)
			}
		}
	}
	if n < 13 {
		t.Fatalf("only %d area forecasts compared, the fixtures hold 13", n)
	}
	mean := sum / float64(n)
	t.Logf("estimate vs JMA's area forecasts (default policy: AVS30 %g m/s, fault type %s, margin %g):\n%s"+
		"n = %d, mean error %+.3f (median alone %+.3f), same class %d, one class low %d",
		p.Shaking.AVS30, p.Shaking.FaultType, p.Shaking.Margin, report.String(), n, mean, sumMedian/float64(n), exact, oneLow)
	if math.Abs(mean) > 0.25 {
		t.Errorf("mean error %+.3f intensity units, want within ±0.25", mean)
	}
}
