package usgs

import (
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

func TestFeed(t *testing.T) {
	alerts, err := Parse(alerttest.Fixture(t, "usgs/usgs_4.5_week_20180612.geojson"))
	if err != nil {
		t.Fatal(err)
	}
	alerttest.Check(t, alerts...)
	if len(alerts) != 71 {
		t.Fatalf("%d alerts, want 71", len(alerts))
	}
	a := alerts[0]
	// GeoJSON [52.0471, 14.7484, 10] is longitude, latitude, depth.
	if h := a.Hypocenter; h.Lat != 14.7484 || h.Lon != 52.0471 || *h.DepthKm != 10 || h.Name != "84km SSE of Qishn, Yemen" {
		t.Errorf("hypocenter %+v", h)
	}
	if a.EventID != "us1000envg" || a.Kind != alert.KindEarthquake || a.Magnitude.Value != 4.8 || a.Magnitude.Type != "mb" || a.Issuer != "USGS/us" {
		t.Errorf("%+v", a)
	}
	if !a.OriginTime.Equal(time.UnixMilli(1528777359870)) || !a.IssuedAt.Equal(time.UnixMilli(1528778372040)) {
		t.Errorf("origin %v issued %v", a.OriginTime, a.IssuedAt)
	}
	others := 0
	for _, a := range alerts {
		if a.Kind == alert.KindOther {
			others++
		}
	}
	if others != 5 {
		t.Errorf("%d non-earthquake events, want the 5 volcanic eruptions", others)
	}
}

func TestOldFeedAndDetail(t *testing.T) {
	alerts, err := Parse(alerttest.Fixture(t, "usgs/usgs_significant_month_20130726.geojson"))
	if err != nil || len(alerts) != 6 {
		t.Fatalf("%d alerts, %v", len(alerts), err)
	}
	if alerts[0].Headline != "13km E of Chabu, China" || alerts[0].MsgType != alert.MsgAlert {
		t.Errorf("old feed (no title, status REVIEWED): %+v", alerts[0])
	}
	alerts, err = Parse(alerttest.Fixture(t, "usgs/usgs_detail_us6000pi9w.geojson"))
	if err != nil || len(alerts) != 1 {
		t.Fatalf("%d alerts, %v", len(alerts), err)
	}
	alerttest.Check(t, alerts...)
	if a := alerts[0]; a.EventID != "us6000pi9w" || a.Magnitude.Value != 7.1 || a.Hypocenter.Lat != 28.639 || a.Hypocenter.Lon != 87.3608 {
		t.Errorf("detail %+v", a)
	}
}

func TestDeletedAndNulls(t *testing.T) {
	doc := `{"type":"Feature","id":"x1","properties":{"mag":null,"time":1528777359870,"status":"deleted","type":"earthquake"},"geometry":null}`
	alerts, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if a := alerts[0]; a.MsgType != alert.MsgCancel || a.Hypocenter != nil || a.Magnitude != nil || !a.IssuedAt.Equal(a.OriginTime) {
		t.Errorf("%+v", a)
	}
	doc = `{"type":"Feature","id":"x1","properties":{"time":1528777359870},"geometry":{"type":"Point","coordinates":[1,2,null]}}`
	if alerts, err = Parse([]byte(doc)); err != nil || alerts[0].Hypocenter.DepthKm != nil {
		t.Errorf("null depth: %v, %v", alerts, err)
	}
}

func TestRefusals(t *testing.T) {
	feature := func(props, geom string) string {
		return `{"type":"FeatureCollection","features":[{"type":"Feature","id":"a","properties":{"time":1},"geometry":null},` +
			`{"type":"Feature","id":"b","properties":{` + props + `},"geometry":` + geom + `}]}`
	}
	point := `{"type":"Point","coordinates":[139.7,35.7,10]}`
	for name, tc := range map[string]struct{ doc, want string }{
		"latitude":      {feature(`"time":1`, `{"type":"Point","coordinates":[139.7,95.7,10]}`), "usgs: features[1].geometry.coordinates: latitude 95.7 out of range"},
		"longitude":     {feature(`"time":1`, `{"type":"Point","coordinates":[239.7,35.7,10]}`), "longitude 239.7 out of range"},
		"depth":         {feature(`"time":1`, `{"type":"Point","coordinates":[139.7,35.7,9999]}`), "features[1].geometry.coordinates[2]: depth 9999 km"},
		"short":         {feature(`"time":1`, `{"type":"Point","coordinates":[139.7]}`), "has 1 numbers"},
		"null lat":      {feature(`"time":1`, `{"type":"Point","coordinates":[139.7,null]}`), "features[1].geometry.coordinates[1]: is null"},
		"polygon":       {feature(`"time":1`, `{"type":"Polygon","coordinates":[]}`), `features[1].geometry.type: "Polygon", want Point`},
		"no time":       {feature(`"mag":5`, point), "features[1].properties.time: missing"},
		"huge time":     {feature(`"time":99999999999999999`, point), "features[1].properties.time: time"},
		"magnitude":     {feature(`"time":1,"mag":15`, point), "features[1].properties.mag: 15 out of range"},
		"status":        {feature(`"time":1,"status":"maybe"`, point), `features[1].properties.status: "maybe"`},
		"string time":   {feature(`"time":"now"`, point), "usgs: features.properties.time: got a JSON string, want int64"},
		"no id":         {`{"type":"Feature","properties":{"time":1},"geometry":null}`, "usgs: id: missing"},
		"null feature":  {`{"type":"FeatureCollection","features":[null]}`, "features[0]: is null"},
		"feature type":  {`{"type":"FeatureCollection","features":[{"type":"Point"}]}`, `features[0].type: "Point", want Feature`},
		"document type": {`{"type":"Topology"}`, `usgs: type: "Topology"`},
		"truncated":     {`{"type":"FeatureCollection","features":[{"type":"Feature"`, "document ends early"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}
