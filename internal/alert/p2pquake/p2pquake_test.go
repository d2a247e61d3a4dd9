package p2pquake

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

func parseOne(t *testing.T, name string) *alert.Alert {
	t.Helper()
	alerts, err := Parse(alerttest.Fixture(t, "p2pquake/"+name))
	if err != nil {
		t.Fatal(err)
	}
	alerttest.Check(t, alerts...)
	if len(alerts) != 1 {
		t.Fatalf("%d alerts", len(alerts))
	}
	return alerts[0]
}

func TestQuake551(t *testing.T) {
	a := parseOne(t, "p2pqapi_551_ScalePrompt_20160414_kumamoto.json")
	if a.Kind != alert.KindEarthquake || a.MaxIntensity != alert.Intensity7 || a.Product != "551/ScalePrompt" || a.Issuer != "気象庁" {
		t.Errorf("%+v", a)
	}
	if a.Hypocenter != nil || a.Magnitude != nil {
		t.Errorf("the -200/-1 sentinels were read as values: %+v %+v", a.Hypocenter, a.Magnitude)
	}
	if want := time.Date(2016, 4, 14, 21, 29, 0, 0, alert.JST); !a.IssuedAt.Equal(want) || a.EventID != "p2pquake-20160414212600" {
		t.Errorf("issued %v event %s", a.IssuedAt, a.EventID)
	}
	if len(a.Areas) != 3 || a.Areas[1].Name != "熊本県阿蘇" || a.Areas[1].Intensity != alert.Intensity5Lower {
		t.Errorf("areas %+v", a.Areas)
	}
	legacy := parseOne(t, "epspjson_20210219091252353-19181113.json")
	if legacy.Product != "551/ScalePrompt" || legacy.MaxIntensity != alert.Intensity4 || legacy.Areas[0].Name != "岩手県内陸北部" {
		t.Errorf("EPSP body without the code wrapper: %+v", legacy)
	}
}

func TestTsunami552(t *testing.T) {
	a := parseOne(t, "p2pqapi_552_Focus_20231009_torishima.json")
	if a.Kind != alert.KindTsunami || a.MsgType != alert.MsgAlert || len(a.Tsunami) != 3 {
		t.Fatalf("%+v", a)
	}
	kochi := a.Tsunami[2]
	if kochi.Name != "高知県" || kochi.Category != alert.TsunamiAdvisory || !kochi.Immediate || *kochi.MaxHeightM != 1 || kochi.HeightText != "１ｍ" {
		t.Errorf("高知県 %+v", kochi)
	}
	if izu := a.Tsunami[0]; !izu.Immediate || izu.Condition != "第１波の到達を確認" {
		t.Errorf("a first wave observed leaves no time: %+v", izu)
	}
	doc := strings.Replace(string(alerttest.Fixture(t, "p2pquake/p2pqapi_552_Focus_20231009_torishima.json")), `"cancelled":false`, `"cancelled":true`, 1)
	alerts, err := Parse([]byte(doc))
	if err != nil || alerts[0].MsgType != alert.MsgCancel {
		t.Errorf("cancelled: %v, %v", alerts, err)
	}
}

func TestEEW554And556(t *testing.T) {
	a := parseOne(t, "p2pqapi_554_eewdetection_20201122_array.json")
	if a.Kind != alert.KindEEW || a.Product != "554/Full" || a.EventID != "5fba381b02add611947aef21" {
		t.Errorf("554: %+v", a)
	}
	a = parseOne(t, "p2pqapi_556_eew_20220811_soya_array.json")
	if a.Kind != alert.KindEEW || a.EventID != "20220811005302" || a.Serial != 1 || a.MsgType != alert.MsgAlert {
		t.Errorf("556: %+v", a)
	}
	if h := a.Hypocenter; h.Lat != 44.9 || h.Lon != 142.1 || *h.DepthKm != 10 || a.Magnitude.Value != 5.5 {
		t.Errorf("556 hypocenter %+v magnitude %+v", h, a.Magnitude)
	}
	first := a.Areas[0]
	if first.Name != "上川地方北部" || first.Intensity != alert.Intensity5Lower || first.Arrived ||
		!first.ArrivalTime.Equal(time.Date(2022, 8, 11, 0, 53, 59, 0, alert.JST)) {
		t.Errorf("first area %+v", first)
	}
	if second := a.Areas[1]; !second.Arrived || !second.ArrivalTime.IsZero() {
		t.Errorf("kindCode 11 (arrived) area %+v", second)
	}
	if a.MaxIntensity != alert.Intensity5Lower {
		t.Errorf("max %v", a.MaxIntensity)
	}
	doc := string(alerttest.Fixture(t, "p2pquake/p2pqapi_556_eew_20220811_soya_array.json"))
	doc = strings.NewReplacer(`"serial":"1"`, `"serial":"4"`, `"cancelled":false`, `"cancelled":false,"test":true`, `"scaleTo":45.0`, `"scaleTo":99`).Replace(doc)
	alerts, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if a := alerts[0]; a.Serial != 4 || a.MsgType != alert.MsgUpdate || a.Status != alert.StatusTest || a.Areas[0].Intensity != alert.Intensity5Lower {
		t.Errorf("update/test/scaleTo 99: %+v", a)
	}
}

// TestBareBodies reads EPSP bodies without the code/id wrapper, as
// P2PQuake's jmaxml-seis-parser-go writes them: the shape gives the code.
func TestBareBodies(t *testing.T) {
	for name, want := range map[string]string{
		"p2pqapi_552_Focus_20231009_torishima.json": "552/Focus",
		"p2pqapi_556_eew_20220811_soya_array.json":  "556",
	} {
		var rec any
		if err := json.Unmarshal(alerttest.Fixture(t, "p2pquake/"+name), &rec); err != nil {
			t.Fatal(err)
		}
		if list, ok := rec.([]any); ok {
			rec = list[0]
		}
		for _, k := range []string{"code", "id", "time"} {
			delete(rec.(map[string]any), k)
		}
		body, _ := json.Marshal(rec)
		alerts, err := Parse(body)
		if err != nil {
			t.Errorf("%s without its wrapper: %v", name, err)
			continue
		}
		alerttest.Check(t, alerts...)
		if alerts[0].Product != want {
			t.Errorf("%s without its wrapper read as %s, want %s", name, alerts[0].Product, want)
		}
	}
	if _, err := Parse([]byte(`{"issue":{"time":"2022/09/18 15:49:07"}}`)); err == nil || !strings.Contains(err.Error(), "code: missing") {
		t.Errorf("a body of no recognisable shape: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	eew := string(alerttest.Fixture(t, "p2pquake/p2pqapi_556_eew_20220811_soya_array.json"))
	tsunami := string(alerttest.Fixture(t, "p2pquake/p2pqapi_552_Focus_20231009_torishima.json"))
	edit := func(doc, old, new string) string {
		if !strings.Contains(doc, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(doc, old, new, 1)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"unsupported code": {`{"code":561,"id":"x"}`, "p2pquake: code: 561 is not supported (supported: 551, 552, 554, 556)"},
		"no code":          {`{"id":"x"}`, "p2pquake: code: missing"},
		"latitude":         {edit(eew, `"latitude":44.9`, `"latitude":94.9`), "p2pquake: [0].earthquake.hypocenter: latitude 94.9 out of range"},
		"depth":            {edit(eew, `"depth":10`, `"depth":-10000`), "[0].earthquake.hypocenter.depth: depth -10000 km"},
		"scale":            {edit(eew, `"scaleFrom":45.0`, `"scaleFrom":47`), "[0].areas[0].scaleFrom: unknown scale code 47"},
		"fractional scale": {edit(eew, `"scaleFrom":45.0`, `"scaleFrom":45.5`), "scale code 45.5 is not an integer"},
		"time":             {edit(eew, `"time":"2022/08/11 00:53:24"`, `"time":"2022-08-11T00:53:24"`), `[0].issue.time: "2022-08-11T00:53:24" is not a time`},
		"serial":           {edit(eew, `"serial":"1"`, `"serial":"one"`), `[0].issue.serial: "one"`},
		"no event id":      {edit(eew, `"eventId":"20220811005302",`, ""), "[0].issue.eventId: missing"},
		"grade":            {edit(tsunami, `"grade":"Watch"`, `"grade":"Unknown"`), `areas[0].grade: "Unknown", want MajorWarning, Warning or Watch`},
		"height":           {edit(tsunami, `"value":1`, `"value":-1`), "areas[0].maxHeight.value: -1 is not a height"},
		"null item":        {`[null]`, "[0]: is null"},
		"wrong type":       {edit(eew, `"serial":"1"`, `"serial":1`), "p2pquake: issue.serial: got a JSON number, want string"},
		"truncated":        {eew[:300], "document ends early"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}
