package alert

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/validate"
)

func validAlert() *Alert {
	depth := 10.0
	return &Alert{
		Format: "test", EventID: "e1", Kind: KindEEW, Status: StatusActual, MsgType: MsgAlert,
		IssuedAt: time.Date(2024, 4, 17, 23, 14, 59, 0, JST), Digest: Digest(nil),
		Hypocenter: &Hypocenter{Lat: 33.2, Lon: 132.4, DepthKm: &depth},
		Magnitude:  &Magnitude{Value: 5.8, Type: "Mj"}, MaxIntensity: Intensity5Lower,
		Areas: []Area{{Name: "高知県西部", Codes: []AreaCode{{Scheme: SchemeJMASeismicArea, Value: "632"}}, Intensity: Intensity4,
			Polygons: []Polygon{{{33, 132}, {33, 133}, {34, 133}, {33, 132}}}, Circles: []Circle{{Center: LatLon{33, 132}, RadiusKm: 5}}}},
		Tsunami: []TsunamiForecast{{Name: "高知県", Code: "610", Category: TsunamiAdvisory}},
	}
}

func TestValidateAcceptsAValidAlert(t *testing.T) {
	if err := validAlert().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateReportsEveryProblemByPath(t *testing.T) {
	a := validAlert()
	bad := -20.0
	a.EventID, a.Format, a.Serial = "", "", -1
	a.Kind, a.Status, a.MsgType = "quake", "real", "new"
	a.IssuedAt = time.Time{}
	a.OriginTime = time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)
	a.Digest = "md5:abc"
	a.Hypocenter.Lat, a.Hypocenter.Lon, a.Hypocenter.DepthKm = 95, math.NaN(), &bad
	a.Magnitude.Value = 12
	a.MaxIntensity = 42
	a.Areas = append(a.Areas, Area{}, Area{Name: "x", Codes: []AreaCode{{}},
		Polygons: []Polygon{{{1, 1}, {2, 2}, {3, 3}}, {{1, 1}, {91, 2}, {1, 1}}}, Circles: []Circle{{Center: LatLon{0, 0}, RadiusKm: -1}}})
	a.Tsunami = append(a.Tsunami, TsunamiForecast{Category: 9, MaxHeightM: &bad})
	a.References = []Reference{{}}
	err := a.Validate()
	var list validate.List
	if !errors.As(err, &list) {
		t.Fatalf("got %v", err)
	}
	want := []string{
		"areas[1]", "areas[2].circles[0].radius_km", "areas[2].codes[0].scheme", "areas[2].codes[0].value",
		"areas[2].polygons[0]", "areas[2].polygons[1][1].lat",
		"digest", "event_id", "format", "hypocenter.depth_km", "hypocenter.lat", "hypocenter.lon",
		"issued_at", "kind", "magnitude.value", "max_intensity", "msg_type", "origin_time", "references[0].id",
		"serial", "status", "tsunami[1]", "tsunami[1].category", "tsunami[1].max_height_m",
	}
	if got := list.Paths(); !slices.Equal(got, want) {
		t.Fatalf("paths\n got %q\nwant %q\n%v", got, want, err)
	}
}

func TestNewerAndSameMessage(t *testing.T) {
	a, b := validAlert(), validAlert()
	if a.Newer(b) || !a.SameMessage(b) {
		t.Fatal("identical alerts")
	}
	b.Serial = 2
	if !b.Newer(a) || a.Newer(b) || a.SameMessage(b) {
		t.Fatal("higher serial is not newer")
	}
	a.Serial, b.Serial = 0, 0
	b.IssuedAt = a.IssuedAt.Add(time.Minute)
	if !b.Newer(a) || a.SameMessage(b) {
		t.Fatal("later issue is not newer")
	}
	b.IssuedAt = a.IssuedAt.UTC() // the same instant in another zone
	if !a.SameMessage(b) {
		t.Fatal("the same instant in two zones differs")
	}
}
