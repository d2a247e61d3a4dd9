package threat

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
	_ "github.com/refuge-project/refuge/internal/alert/formats"
	"github.com/refuge-project/refuge/internal/model"
	"github.com/refuge-project/refuge/internal/validate"
)

const exampleFederation = "../../examples/nankai-trough/federation.yaml"

var example = sync.OnceValues(func() (*model.Federation, error) { return model.LoadFederation(exampleFederation) })

// loadFed returns the example federation, parsed once (tests must not
// modify it).
func loadFed(t *testing.T) *model.Federation {
	t.Helper()
	fed, err := example()
	if err != nil {
		t.Fatal(err)
	}
	return fed
}

func parseFixture(t *testing.T, rel string) *alert.Alert {
	t.Helper()
	a, err := alert.Parse(alerttest.Fixture(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func siteOf(t *testing.T, as *Assessment, name string) SiteThreat {
	t.Helper()
	for _, s := range as.Sites {
		if s.Site == name {
			return s
		}
	}
	t.Fatalf("no site %s in the assessment", name)
	return SiteThreat{}
}

func levels(as *Assessment) map[string]Level {
	m := map[string]Level{}
	for _, s := range as.Sites {
		m[s.Site] = s.Level
	}
	return m
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, alert.JST)

func depth(km float64) *float64 { return &km }

// nankaiEEW is a synthetic EEW for a magnitude 8 earthquake off Cape
// Muroto (32.8 N 134.2 E, 20 km deep), issued 8 s after its origin.
func nankaiEEW() *alert.Alert {
	return &alert.Alert{
		Format: "webhook", EventID: "drill-nankai", Serial: 1, Kind: alert.KindEEW, Status: alert.StatusExercise,
		MsgType: alert.MsgAlert, IssuedAt: t0.Add(8 * time.Second), OriginTime: t0,
		Hypocenter: &alert.Hypocenter{Lat: 32.8, Lon: 134.2, DepthKm: depth(20)},
		Magnitude:  &alert.Magnitude{Value: 8.0, Type: "Mj"},
		Digest:     alert.Digest([]byte("drill")),
	}
}

func TestAssessBungoChannelEEW(t *testing.T) {
	// The real-event-based sample: M5.8 under the Bungo channel. JMA
	// forecast 5- only for 愛媛県南予 and 4 for the others it names; none of
	// the example sites lies in a named area, so the estimate decides.
	fed := loadFed(t)
	p := DefaultPolicy()
	a := parseFixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml")
	as, err := Assess(a, fed, &p, a.IssuedAt)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Level{"kochi": LevelNone, "kagawa": LevelNone, "osaka": LevelNone, "tokyo": LevelNone}
	if got := levels(as); !mapsEqual(got, want) {
		t.Errorf("levels %v, want %v", got, want)
	}
	k := siteOf(t, as, "kochi")
	if k.Shaking == nil || k.Shaking.Source != "estimate" || k.Shaking.Intensity != alert.Intensity3 {
		t.Fatalf("kochi shaking %+v, want estimate of intensity 3", k.Shaking)
	}
	// S arrival: origin 23:14:48 + 128.3762 km / 4 km/s = 32.094 s.
	wantS := time.Date(2024, 4, 17, 23, 14, 48, 0, alert.JST).Add(32094 * time.Millisecond)
	if d := k.Shaking.SArrival.Sub(wantS); d.Abs() > time.Millisecond {
		t.Errorf("kochi S arrival %v, want %v", k.Shaking.SArrival, wantS)
	}
	// P arrival: 128.3762 / 7 = 18.339 s.
	wantP := time.Date(2024, 4, 17, 23, 14, 48, 0, alert.JST).Add(18339 * time.Millisecond)
	if d := k.Shaking.PArrival.Sub(wantP); d.Abs() > time.Millisecond {
		t.Errorf("kochi P arrival %v, want %v", k.Shaking.PArrival, wantP)
	}
	if len(as.Scenario().Threats) != 0 {
		t.Errorf("scenario threatens %v", as.Scenario().Threats)
	}
}

func TestAssessAreaForecastOverridesEstimate(t *testing.T) {
	// Pretend the Kochi site lies in 高知県西部 (632): the EEW's own
	// forecast (4, strong motion at 23:15:02) replaces the estimate.
	fed := loadFed(t)
	p := DefaultPolicy()
	p.Sites = map[string]SitePolicy{"kochi": {SeismicAreas: []string{"632"}}, "kagawa": {SeismicAreas: []string{"愛媛県南予"}}}
	a := parseFixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml")
	as, err := Assess(a, fed, &p, a.IssuedAt)
	if err != nil {
		t.Fatal(err)
	}
	k := siteOf(t, as, "kochi").Shaking
	if k.Source != "alert" || k.Intensity != alert.Intensity4 || k.Forecast != alert.Intensity4 || k.Estimate == nil {
		t.Errorf("kochi shaking %+v, want the alert's 4 beside the estimate", k)
	}
	if want := time.Date(2024, 4, 17, 23, 15, 2, 0, alert.JST); !k.SArrival.Equal(want) {
		t.Errorf("S arrival %v, want the alert's %v", k.SArrival, want)
	}
	// By name, and an area whose strong motion has already arrived.
	g := siteOf(t, as, "kagawa")
	if g.Level != LevelWatch || g.Shaking.Intensity != alert.Intensity5Lower || !g.Shaking.SArrival.Equal(a.IssuedAt) {
		t.Errorf("kagawa %+v, want watch at 5- with strong motion arrived (issue time)", g)
	}
}

func TestAssessSyntheticNankaiEEW(t *testing.T) {
	fed := loadFed(t)
	p := DefaultPolicy()
	a := nankaiEEW()
	as, err := Assess(a, fed, &p, a.IssuedAt)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Level{"kochi": LevelEvacuate, "kagawa": LevelWatch, "osaka": LevelWatch, "tokyo": LevelNone}
	if got := levels(as); !mapsEqual(got, want) {
		t.Errorf("levels %v, want %v", got, want)
	}
	// Kochi, hand-computed: Δ 96.3231 km, R 98.3776 km, L 141.254 km,
	// X 27.7507 km, depth 20 km → crustal (auto), PGV600 42.0967 cm/s;
	// default AVS30 250 m/s: ARV = 10^(1.83 − 0.66·2.397940) = 1.76750,
	// PGV 74.406 cm/s, median I 5.8992, + margin 0.45 = 6.3492 → 6+ (below
	// the damage class 7): mains lost at S arrival (origin + 98.3776/4 =
	// 24.594 s), UPS 10 min: deadline origin + 10 min 24.594 s, i.e.
	// 10 min 16.594 s after issue.
	k := siteOf(t, as, "kochi")
	near(t, "kochi median I", k.Shaking.Estimate.Median, 5.899165, 1e-5)
	near(t, "kochi I", k.Shaking.Estimate.Instrumental, 6.349165, 1e-5)
	if k.Shaking.Intensity != alert.Intensity6Upper || k.Hazard != HazardEarthquake || k.Shaking.Estimate.FaultType != FaultCrustal {
		t.Errorf("kochi %s %s (%s), want earthquake at 6+ (crustal)", k.Hazard, k.Shaking.Intensity, k.Shaking.Estimate.FaultType)
	}
	wantDL := 10*time.Minute + 16594*time.Millisecond
	if k.Deadline == nil || (k.Deadline.D()-wantDL).Abs() > time.Millisecond {
		t.Errorf("kochi deadline %v, want %v", k.Deadline, wantDL)
	}
	if !strings.Contains(k.Reasons[0], "UPS 10 min") {
		t.Errorf("reason %q does not name the UPS", k.Reasons[0])
	}
	near(t, "kagawa I", siteOf(t, as, "kagawa").Shaking.Estimate.Instrumental, 5.454995, 1e-5)
	near(t, "osaka I", siteOf(t, as, "osaka").Shaking.Estimate.Instrumental, 4.799310, 1e-5)

	sc := as.Scenario()
	if err := sc.Validate(fed); err != nil {
		t.Fatalf("scenario does not validate: %v", err)
	}
	if len(sc.Threats) != 1 || sc.Threats[0].Site != "kochi" || sc.Threats[0].Deadline.D() != k.Deadline.D() || sc.Threats[0].Hazard != "earthquake" {
		t.Errorf("scenario threats %+v", sc.Threats)
	}

	// A policy that acts from 5- and forgets generators: Kagawa (UPS 20,
	// generator 60) is lost 20 min after its S arrival (origin + 43.329 s).
	p.Shaking.PowerLossIntensity = alert.Intensity5Lower
	p.Shaking.IncludeGenerator = false
	as, _ = Assess(a, fed, &p, a.IssuedAt)
	g := siteOf(t, as, "kagawa")
	if want := 20*time.Minute + 35329*time.Millisecond; g.Deadline == nil || (g.Deadline.D()-want).Abs() > time.Millisecond {
		t.Errorf("kagawa deadline %v, want %v", g.Deadline, want)
	}
	p.Shaking.IncludeGenerator = true
	as, _ = Assess(a, fed, &p, a.IssuedAt)
	if want := 80*time.Minute + 35329*time.Millisecond; siteOf(t, as, "kagawa").Deadline.D().Round(time.Millisecond) != want {
		t.Errorf("kagawa deadline with generator %v, want %v", siteOf(t, as, "kagawa").Deadline, want)
	}
	// Damage at 6- means the site is lost when strong motion arrives.
	p.Shaking.DamageIntensity = alert.Intensity6Lower
	as, _ = Assess(a, fed, &p, a.IssuedAt)
	if want := 16594 * time.Millisecond; siteOf(t, as, "kochi").Deadline.D().Round(time.Millisecond) != want {
		t.Errorf("kochi damage deadline %v, want %v", siteOf(t, as, "kochi").Deadline, want)
	}
	// Softer ground at Kochi (AVS30 200 m/s) raises its intensity:
	// ARV(200) = 10^(1.83 − 0.66·2.30103) = 2.0477; I = 2.68 + 1.72
	// log10(42.0967·2.0477) + 0.45 = 6.4592 → 6+.
	p = DefaultPolicy()
	p.Sites = map[string]SitePolicy{"kochi": {AVS30: 200}}
	as, _ = Assess(a, fed, &p, a.IssuedAt)
	near(t, "kochi I on soft ground", siteOf(t, as, "kochi").Shaking.Estimate.Instrumental, 6.4592, 1e-4)
	if c := siteOf(t, as, "kochi").Shaking.Intensity; c != alert.Intensity6Upper {
		t.Errorf("kochi on soft ground: %s, want 6+", c)
	}
	// A factor given directly, and no margin: 42.0967·1.5 = 63.145 cm/s →
	// I 5.7766 → 6-.
	p.Sites = map[string]SitePolicy{"kochi": {Amplification: 1.5}}
	p.Shaking.Margin = 0
	as, _ = Assess(a, fed, &p, a.IssuedAt)
	if k := siteOf(t, as, "kochi"); k.Shaking.Intensity != alert.Intensity6Lower || k.Shaking.AmplificationFrom != "site amplification factor" {
		t.Errorf("kochi with amplification 1.5: %s (%s), want 6-", k.Shaking.Intensity, k.Shaking.AmplificationFrom)
	}
	near(t, "kochi I with factor 1.5", siteOf(t, as, "kochi").Shaking.Estimate.Instrumental, 5.7766, 1e-4)
}

func TestAssessTohokuTsunami(t *testing.T) {
	// 2011-03-11 14:49 first tsunami warning: advisory for 高知県 (610)
	// with the first wave at 16:30; forecasts (若干の海面変動) for 香川県
	// and 大阪府; nothing for Tokyo, which has no tsunami area.
	fed := loadFed(t)
	p := DefaultPolicy()
	a := parseFixture(t, "jma/jmasample_32-39_11_02_250206_VTSE41.xml")
	as, err := Assess(a, fed, &p, a.IssuedAt)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Level{"kochi": LevelWatch, "kagawa": LevelNone, "osaka": LevelNone, "tokyo": LevelNone}
	if got := levels(as); !mapsEqual(got, want) {
		t.Errorf("levels %v, want %v", got, want)
	}
	k := siteOf(t, as, "kochi")
	if k.Tsunami == nil || k.Tsunami.Category != alert.TsunamiAdvisory || !k.Tsunami.ArrivalAt.Equal(time.Date(2011, 3, 11, 16, 30, 0, 0, alert.JST)) {
		t.Errorf("kochi tsunami %+v", k.Tsunami)
	}
	if g := siteOf(t, as, "kagawa").Tsunami; g == nil || g.Category != alert.TsunamiForecastOnly || !g.ArrivalAt.IsZero() {
		t.Errorf("kagawa tsunami %+v, want a forecast without arrival", g)
	}
	// Under a policy that evacuates on advisories, Kochi's deadline is the
	// arrival less the 2 min margin: 16:28, 99 min after the 14:49 issue.
	p.Tsunami.Advisory = LevelEvacuate
	as, _ = Assess(a, fed, &p, a.IssuedAt)
	if k := siteOf(t, as, "kochi"); k.Deadline == nil || k.Deadline.D() != 99*time.Minute || k.Hazard != HazardTsunami {
		t.Errorf("kochi %+v, want tsunami deadline 99m", k)
	}
	// A site on high ground is watched, never evacuated, for a tsunami.
	no := false
	p.Sites = map[string]SitePolicy{"kochi": {TsunamiExposed: &no}}
	as, _ = Assess(a, fed, &p, a.IssuedAt)
	if k := siteOf(t, as, "kochi"); k.Level != LevelWatch || k.Tsunami.Exposed {
		t.Errorf("kochi not exposed: %+v", k)
	}
}

func TestAssessTsunamiByNameImmediate(t *testing.T) {
	// P2PQuake 552 names areas without codes; 高知県 maps to 610. The first
	// wave is arriving (immediate).
	fed := loadFed(t)
	p := DefaultPolicy()
	a := parseFixture(t, "p2pquake/p2pqapi_552_Focus_20231009_torishima.json")
	as, _ := Assess(a, fed, &p, a.IssuedAt)
	k := siteOf(t, as, "kochi")
	if k.Level != LevelWatch || k.Tsunami == nil || !k.Tsunami.Immediate || k.Tsunami.Area != "610" {
		t.Fatalf("kochi %+v", k)
	}
	p.Tsunami.Advisory = LevelEvacuate
	as, _ = Assess(a, fed, &p, a.IssuedAt.Add(time.Minute))
	// The deadline is the issue time less the margin, 3 min before ref.
	if k := siteOf(t, as, "kochi"); k.Deadline == nil || k.Deadline.D() != -3*time.Minute {
		t.Errorf("kochi deadline %v, want -3m", k.Deadline)
	}
	sc := as.Scenario()
	if len(sc.Threats) != 1 || sc.Threats[0].Deadline.D() != MinScenarioDeadline {
		t.Errorf("a past deadline is written as %v", sc.Threats)
	}
}

func TestAssessSyntheticTsunamiWarningAndEEW(t *testing.T) {
	// A major tsunami warning for Kochi's coast with the first wave 13 min
	// after issue: deadline 11 min; with the EEW's shaking deadline
	// (10 min 16.594 s) the earlier one wins.
	fed := loadFed(t)
	p := DefaultPolicy()
	a := nankaiEEW()
	a.Kind = alert.KindTsunami
	a.Hypocenter, a.Magnitude = nil, nil
	a.Tsunami = []alert.TsunamiForecast{
		{Code: "610", Name: "高知県", Category: alert.TsunamiMajorWarning, ArrivalTime: a.IssuedAt.Add(13 * time.Minute)},
		{Code: "590", Name: "香川県", Category: alert.TsunamiAdvisory},
		{Code: "510", Name: "大阪府", Category: alert.TsunamiWarning},
	}
	as, _ := Assess(a, fed, &p, a.IssuedAt)
	k := siteOf(t, as, "kochi")
	if k.Level != LevelEvacuate || k.Deadline.D() != 11*time.Minute || k.Hazard != HazardTsunami {
		t.Errorf("kochi %+v", k)
	}
	if g := siteOf(t, as, "kagawa"); g.Level != LevelWatch || !g.Tsunami.ArrivalAt.IsZero() {
		t.Errorf("kagawa %+v", g)
	}
	// A warning without an arrival time evacuates now.
	if o := siteOf(t, as, "osaka"); o.Level != LevelEvacuate || o.Deadline.D() != -2*time.Minute || !o.Tsunami.Immediate {
		t.Errorf("osaka %+v", o)
	}

	// Both hazards at one site: the earliest deadline.
	a.Kind = alert.KindEEW
	e := nankaiEEW()
	a.Hypocenter, a.Magnitude = e.Hypocenter, e.Magnitude
	as, _ = Assess(a, fed, &p, a.IssuedAt)
	k = siteOf(t, as, "kochi")
	if k.Hazard != HazardEarthquake || k.Deadline.D().Round(time.Millisecond) != 10*time.Minute+16594*time.Millisecond || len(k.Reasons) != 2 {
		t.Errorf("kochi %+v, want the earthquake deadline with two reasons", k)
	}
	if sc := as.Scenario(); !strings.Contains(sc.Threats[0].Note, "UPS") {
		t.Errorf("scenario note %q is not the earthquake's reason", sc.Threats[0].Note)
	}
}

func TestAssessAreas(t *testing.T) {
	fed := loadFed(t)
	p := DefaultPolicy()
	// A CAP-like alert drawing a polygon around Shikoku's south coast
	// ("lat,lon" pairs) and a circle around Osaka.
	ring, _ := alert.NewPolygon([]alert.LatLon{{33.0, 132.5}, {33.0, 134.5}, {34.0, 134.5}, {34.0, 132.5}})
	a := &alert.Alert{
		Format: "cap", EventID: "cap-1", Kind: alert.KindOther, Status: alert.StatusActual, MsgType: alert.MsgAlert,
		IssuedAt: t0, Digest: alert.Digest(nil),
		Areas: []alert.Area{
			{Name: "Shikoku south", Polygons: []alert.Polygon{ring}},
			{Name: "Osaka bay", Circles: []alert.Circle{{Center: alert.LatLon{34.7, 135.4}, RadiusKm: 30}}},
			{Name: "far", Circles: []alert.Circle{{Center: alert.LatLon{43, 141}, RadiusKm: 30}}},
		},
	}
	as, _ := Assess(a, fed, &p, t0)
	want := map[string]Level{"kochi": LevelWatch, "kagawa": LevelNone, "osaka": LevelWatch, "tokyo": LevelNone}
	if got := levels(as); !mapsEqual(got, want) {
		t.Errorf("levels %v, want %v", got, want)
	}
	p.Areas = AreaPolicy{Level: LevelEvacuate, Deadline: model.Duration(30 * time.Minute)}
	as, _ = Assess(a, fed, &p, t0.Add(time.Minute))
	if k := siteOf(t, as, "kochi"); k.Hazard != HazardArea || k.Deadline.D() != 29*time.Minute || k.Areas[0] != "Shikoku south" {
		t.Errorf("kochi %+v", k)
	}
	// An area with an intensity is a forecast, not an area threat.
	a.Areas[0].Intensity = alert.Intensity6Upper
	a.Kind = alert.KindEEW
	as, _ = Assess(a, fed, &p, t0)
	k := siteOf(t, as, "kochi")
	if k.Hazard != HazardEarthquake || k.Shaking.Intensity != alert.Intensity6Upper || k.Shaking.Source != "alert" {
		t.Errorf("kochi %+v", k)
	}
	// No hypocentre: strong motion is taken to arrive at the issue time;
	// deadline issue + UPS 10 min.
	if k.Deadline.D() != 10*time.Minute {
		t.Errorf("kochi deadline %v, want 10m", k.Deadline)
	}
}

func TestAssessCancelAndFarAway(t *testing.T) {
	fed := loadFed(t)
	p := DefaultPolicy()
	a := parseFixture(t, "jma/jmasample_37_01_03_240613_VXSE43.xml")
	as, err := Assess(a, fed, &p, a.IssuedAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(as.Threatened()) != 0 || len(as.Notes) == 0 {
		t.Errorf("cancel: %+v", as)
	}
	// A USGS event on the other side of the world: beyond max_distance_km,
	// no estimate, no threat.
	for _, a := range parseAll(t, "usgs/usgs_detail_us6000pi9w.geojson") {
		as, _ := Assess(a, fed, &p, a.IssuedAt)
		for _, s := range as.Sites {
			if s.Level != LevelNone {
				t.Errorf("%s: %s level %s", a.EventID, s.Site, s.Level)
			}
		}
	}
	if _, err := Assess(nil, fed, &p, t0); err == nil {
		t.Error("no error for a nil alert")
	}
}

func parseAll(t *testing.T, rel string) []*alert.Alert {
	t.Helper()
	as, err := alert.ParseAll(alerttest.Fixture(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return as
}

func TestEveryFixtureAssesses(t *testing.T) {
	// No fixture may fail or produce an invalid scenario; none of the
	// real documents threatens the example federation enough to evacuate
	// it under the default policy (see docs/threat.md).
	fed := loadFed(t)
	p := DefaultPolicy()
	for _, path := range alerttest.Fixtures(t) {
		alerts, err := alert.ParseAll(alerttest.Read(t, path))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, a := range alerts {
			as, err := Assess(a, fed, &p, a.IssuedAt)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if err := as.Scenario().Validate(fed); err != nil {
				t.Errorf("%s: scenario: %v", path, err)
			}
			if _, err := json.Marshal(as); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			if n := len(as.Threatened()); n != 0 {
				t.Errorf("%s (%s): %d sites to evacuate", path, a.EventID, n)
			}
		}
	}
}

func TestParsePolicy(t *testing.T) {
	fed := loadFed(t)
	p, err := ParsePolicy([]byte(`
shaking:
  power_loss_intensity: 5+
  damage_intensity: ""
  fault_type: intraplate
tsunami:
  advisory: evacuate
  margin: 5m
approval: approve
sites:
  kochi: {avs30_mps: 250, seismic_areas: ["631", 高知県中部], approval: auto}
`), fed)
	if err != nil {
		t.Fatal(err)
	}
	if p.Shaking.PowerLossIntensity != alert.Intensity5Upper || p.Shaking.DamageIntensity != alert.IntensityUnknown ||
		p.Shaking.WatchIntensity != alert.Intensity5Lower || p.Tsunami.Margin.D() != 5*time.Minute ||
		p.Tsunami.Advisory != LevelEvacuate || p.Waves.SKmps != DefaultSKmps {
		t.Errorf("policy %+v", p)
	}
	if p.ApprovalFor("kochi") != ApprovalAuto || p.ApprovalFor("osaka") != ApprovalApprove {
		t.Error("approval per site wrong")
	}

	_, err = ParsePolicy([]byte(`
waves: {p_kmps: 3, s_kmps: 4}
shaking: {watch_intensity: 8, fault_type: thrust, avs30_mps: 20, colour: red, margin: 3}
tsunami: {warning: flee, margin: -1m}
approval: maybe
sites:
  kochy: {amplification: 50, tsunami_exposed: true}
  tokyo: {tsunami_exposed: true, seismic_areas: [" 350", 東京都２３区, "999"]}
`), fed)
	var list validate.List
	if !errors.As(err, &list) {
		t.Fatalf("error %v is not a validate.List", err)
	}
	want := []string{"approval", "shaking.avs30_mps", "shaking.colour", "shaking.fault_type", "shaking.margin", "shaking.watch_intensity",
		"sites.kochy", "sites.kochy.amplification", "sites.tokyo.seismic_areas[0]", "sites.tokyo.seismic_areas[2]", "sites.tokyo.tsunami_exposed",
		"tsunami.margin", "tsunami.warning", "waves.s_kmps"}
	if got := strings.Join(list.Paths(), " "); got != strings.Join(want, " ") {
		t.Errorf("paths\n got %s\nwant %s\n%v", got, strings.Join(want, " "), err)
	}
	if !strings.Contains(err.Error(), `did you mean "kochi"`) {
		t.Errorf("no suggestion in %v", err)
	}
	if _, err := ParsePolicy([]byte("shaking: [\n"), nil); err == nil {
		t.Error("malformed YAML accepted")
	}
	d := DefaultPolicy()
	if err := d.Validate(fed); err != nil {
		t.Errorf("default policy invalid: %v", err)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
