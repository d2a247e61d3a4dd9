package cap

import (
	"strings"
	"testing"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

func parseFixture(t *testing.T, name string) *alert.Alert {
	t.Helper()
	a, err := Parse(alerttest.Fixture(t, "cap/"+name))
	if err != nil {
		t.Fatal(err)
	}
	alerttest.Check(t, a)
	return a
}

func TestAllFixturesParse(t *testing.T) {
	for _, path := range alerttest.Fixtures(t, "cap") {
		a, err := Parse(alerttest.Read(t, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		alerttest.Check(t, a)
	}
}

func TestPolygonAndGeocodes(t *testing.T) {
	a := parseFixture(t, "oasisspec_example2.xml")
	if a.Kind != alert.KindOther || a.Status != alert.StatusActual || a.MsgType != alert.MsgAlert || a.EventID != "KSTO1055887203" {
		t.Errorf("%+v", a)
	}
	ar := a.Areas[0]
	if len(ar.Polygons) != 1 || len(ar.Polygons[0]) != 5 || ar.Polygons[0][0] != (alert.LatLon{38.47, -120.14}) {
		t.Errorf("polygon %v", ar.Polygons)
	}
	if len(ar.Codes) != 3 || ar.Code("SAME") != "006109" {
		t.Errorf("geocodes %v", ar.Codes)
	}
	// Israel's CAP feed writes empty <polygon/> elements: no polygon.
	doc := strings.Replace(string(alerttest.Fixture(t, "cap/oasisspec_example2.xml")), "<polygon>", "<polygon/><polygon> ", 1)
	b, err := Parse([]byte(doc))
	if err != nil || len(b.Areas[0].Polygons) != 1 {
		t.Errorf("an empty <polygon/>: %v, %v", b, err)
	}
}

func TestUpdateWithReferencesAndCircle(t *testing.T) {
	a := parseFixture(t, "oasisspec_example3.xml")
	if a.Kind != alert.KindEarthquake || a.MsgType != alert.MsgUpdate {
		t.Errorf("kind %s msg %s", a.Kind, a.MsgType)
	}
	if len(a.References) != 1 || a.References[0].ID != "TRI13970876.1" || a.References[0].Sender != "trinet@caltech.edu" {
		t.Fatalf("references %+v", a.References)
	}
	if a.EventID != "TRI13970876.1" {
		t.Errorf("an update keeps its thread's first id as event id, got %q", a.EventID)
	}
	if a.Magnitude == nil || a.Magnitude.Value != 3.4 || a.Magnitude.Type != "Ml" {
		t.Errorf("magnitude %+v", a.Magnitude)
	}
	if c := a.Areas[0].Circles; len(c) != 1 || c[0].Center != (alert.LatLon{32.9525, -115.5527}) || c[0].RadiusKm != 0 {
		t.Errorf("circle %+v", c)
	}
}

func TestLanguagesAndDegeneratePolygons(t *testing.T) {
	a := parseFixture(t, "kweathercore_meteofrance_multi-area.xml")
	if len(a.Areas) != 4 || a.Headline != "Vigilance jaune orages" {
		t.Errorf("the French and English blocks give %d areas (want 4, merged) and headline %q", len(a.Areas), a.Headline)
	}
	a = parseFixture(t, "nrcan_eew_test_caps-example.xml")
	if a.Kind != alert.KindEEW || a.Status != alert.StatusTest || len(a.Areas) != 1 || len(a.Areas[0].Codes) != 16 {
		t.Errorf("NRCan EEW test: kind %s status %s areas %d", a.Kind, a.Status, len(a.Areas))
	}
	a = parseFixture(t, "kweathercore_dwd_update_thunderstorm.xml")
	if p := a.Areas[0].Polygons[0]; len(p) != 3 {
		t.Errorf("DWD's three-point ring became %v", p)
	}
	a = parseFixture(t, "kweathercore_inmet_polygon-trailing-space.xml")
	if p := a.Areas[0].Polygons[0]; len(p) != 10 || p[1] != (alert.LatLon{-5.233187, -36.101074}) {
		t.Errorf("INMET polygon %v", p)
	}
}

func TestRefusals(t *testing.T) {
	doc := string(alerttest.Fixture(t, "cap/oasisspec_example3.xml"))
	edit := func(old, new string) string {
		if !strings.Contains(doc, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(doc, old, new, 1)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"CAP 1.1":       {edit("cap:1.2", "cap:1.1"), `cap: alert: root element <alert> in namespace "urn:oasis:names:tc:emergency:cap:1.1"`},
		"no identifier": {edit("<identifier>TRI13970876.2</identifier>", ""), "cap: alert/identifier: missing"},
		"bad sent":      {edit("<sent>2003-06-11T20:56:00-07:00</sent>", "<sent>yesterday</sent>"), `cap: alert/sent: "yesterday"`},
		"bad status":    {edit("<status>Actual</status>", "<status>Real</status>"), `cap: alert/status: "Real"`},
		"ack":           {edit("<msgType>Update</msgType>", "<msgType>Ack</msgType>"), `cap: alert/msgType: "Ack"`},
		"bad reference": {edit("trinet@caltech.edu,TRI13970876.1,2003", "trinet@caltech.edu,2003"), "cap: alert/references: reference 1"},
		"circle range":  {edit("32.9525,-115.5527 0", "32.9525,-215.5527 0"), "cap: info[1]/area[1]/circle[1]: \"32.9525,-215.5527\": longitude -215.5527 out of range"},
		"circle radius": {edit("32.9525,-115.5527 0", "32.9525,-115.5527 -3"), "circle[1]: radius \"-3\""},
		"circle syntax": {edit("32.9525,-115.5527 0", "32.9525,-115.5527"), "circle[1]: \"32.9525,-115.5527\" is not \"lat,lon radius\""},
		"polygon":       {edit("<circle>", "<polygon>1,2 3,4</polygon><circle>"), "cap: info[1]/area[1]/polygon[1]: a polygon needs at least 3 points"},
		"polygon range": {edit("<circle>", "<polygon>1,2 3,4 95,1</polygon><circle>"), "polygon[1]: point 3: \"95,1\": latitude 95 out of range"},
		"no areaDesc":   {strings.NewReplacer("<areaDesc>", "<areaDesx>", "</areaDesc>", "</areaDesx>").Replace(doc), "cap: info[1]/area[1]/areaDesc: missing"},
		"empty geocode": {edit("<circle>", "<geocode><valueName>SAME</valueName></geocode><circle>"), "area[1]/geocode[1]: needs a valueName and a value"},
		"truncated":     {doc[:len(doc)/2], "cap: malformed XML: document ends inside an element"},
		"another root":  {strings.NewReplacer("<alert xmlns", "<alarm xmlns", "</alert>", "</alarm>").Replace(doc), "cap: alert: root element <alarm>"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}
