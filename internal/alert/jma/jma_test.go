package jma

import (
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

func parseFixture(t *testing.T, name string) *alert.Alert {
	t.Helper()
	a, err := Parse(alerttest.Fixture(t, "jma/"+name))
	if err != nil {
		t.Fatal(err)
	}
	alerttest.Check(t, a)
	return a
}

func TestAllFixturesParse(t *testing.T) {
	for _, path := range alerttest.Fixtures(t, "jma") {
		a, err := Parse(alerttest.Read(t, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		alerttest.Check(t, a)
		if !strings.HasSuffix(path, a.Product+".xml") && !strings.Contains(path, "_"+a.Product+"_") {
			t.Errorf("%s parsed as %s", path, a.Product)
		}
	}
}

func TestVXSE43Warning(t *testing.T) {
	a := parseFixture(t, "jmasample_37_01_01_240613_VXSE43.xml")
	if a.Kind != alert.KindEEW || a.Status != alert.StatusActual || a.MsgType != alert.MsgAlert || a.Serial != 1 || a.Final {
		t.Errorf("kind %s status %s msg %s serial %d final %v", a.Kind, a.Status, a.MsgType, a.Serial, a.Final)
	}
	if a.EventID != "20240417231454" || a.Issuer != "気象庁" {
		t.Errorf("event %q issuer %q", a.EventID, a.Issuer)
	}
	h := a.Hypocenter
	if h == nil || h.Lat != 33.2 || h.Lon != 132.4 || h.DepthKm == nil || *h.DepthKm != 30 || h.Name != "豊後水道" || h.Code != "681" {
		t.Fatalf("hypocenter %+v", h)
	}
	if a.Magnitude == nil || a.Magnitude.Value != 5.8 || a.Magnitude.Type != "Mj" {
		t.Errorf("magnitude %+v", a.Magnitude)
	}
	if a.MaxIntensity != alert.Intensity5Lower {
		t.Errorf("max intensity %v", a.MaxIntensity)
	}
	if want := time.Date(2024, 4, 17, 23, 14, 48, 0, alert.JST); !a.OriginTime.Equal(want) {
		t.Errorf("origin %v", a.OriginTime)
	}
	if len(a.Areas) != 9 {
		t.Fatalf("%d areas, want 9", len(a.Areas))
	}
	first, kochi := a.Areas[0], a.Areas[1]
	if first.Name != "愛媛県南予" || first.Code(alert.SchemeJMASeismicArea) != "622" || first.Code(alert.SchemeJMAEEWPref) != "9380" ||
		!first.Arrived || first.Intensity != alert.Intensity5Lower || !first.ArrivalTime.IsZero() {
		t.Errorf("first area %+v", first)
	}
	if kochi.Name != "高知県西部" || kochi.Code(alert.SchemeJMASeismicArea) != "632" || kochi.Arrived ||
		kochi.Intensity != alert.Intensity4 || !kochi.ArrivalTime.Equal(time.Date(2024, 4, 17, 23, 15, 2, 0, alert.JST)) {
		t.Errorf("高知県西部 %+v", kochi)
	}
	hiroshima := a.Areas[8] // ForecastInt 3 to 4
	if hiroshima.Code(alert.SchemeJMASeismicArea) != "592" || hiroshima.Intensity != alert.Intensity4 {
		t.Errorf("広島県南西部 %+v", hiroshima)
	}
}

func TestVTSE41MajorWarning(t *testing.T) {
	a := parseFixture(t, "jmasample_32-39_11_02_250206_VTSE41.xml")
	if a.Kind != alert.KindTsunami || a.MsgType != alert.MsgAlert || a.Serial != 0 || a.Product != "VTSE41" {
		t.Errorf("kind %s msg %s serial %d product %s", a.Kind, a.MsgType, a.Serial, a.Product)
	}
	byCode := map[string]alert.TsunamiForecast{}
	for _, f := range a.Tsunami {
		byCode[f.Code] = f
	}
	for _, tc := range []struct {
		code, name string
		cat        alert.TsunamiCategory
		arrival    string // HH:MM JST, "" for none
		immediate  bool
		text       string
	}{
		{"610", "高知県", alert.TsunamiAdvisory, "16:30", false, ""},
		{"210", "岩手県", alert.TsunamiMajorWarning, "", true, "巨大"},
		{"220", "宮城県", alert.TsunamiMajorWarning, "15:00", false, "巨大"},
		{"101", "北海道太平洋沿岸中部", alert.TsunamiWarning, "15:30", false, "高い"},
		{"802", "宮古島・八重山地方", alert.TsunamiForecastOnly, "", false, ""},
	} {
		f, ok := byCode[tc.code]
		if !ok {
			t.Errorf("no forecast for %s %s", tc.code, tc.name)
			continue
		}
		if f.Name != tc.name || f.Category != tc.cat || f.Immediate != tc.immediate || f.HeightText != tc.text || f.MaxHeightM != nil {
			t.Errorf("%s: %+v", tc.code, f)
		}
		if got := arrival(f.ArrivalTime); got != tc.arrival {
			t.Errorf("%s: arrival %q, want %q", tc.code, got, tc.arrival)
		}
	}
	if len(a.Tsunami) != 43 {
		t.Errorf("%d tsunami forecasts, want 43", len(a.Tsunami))
	}
	if a.Hypocenter == nil || a.Hypocenter.Name != "三陸沖" || a.Magnitude != nil {
		t.Errorf("hypocenter %+v magnitude %+v (M8+ is given only in words)", a.Hypocenter, a.Magnitude)
	}
}

func arrival(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(alert.JST).Format("15:04")
}

func TestVTSE41AdvisoryWithHeights(t *testing.T) {
	a := parseFixture(t, "p2pq_20231009064018_06274659_VTSE41.xml")
	if len(a.Tsunami) != 2 {
		t.Fatalf("%d forecasts", len(a.Tsunami))
	}
	f := a.Tsunami[0]
	if f.Code != "320" || f.Category != alert.TsunamiAdvisory || !f.Immediate || f.Condition != "津波到達中と推測" || f.MaxHeightM == nil || *f.MaxHeightM != 1 {
		t.Errorf("伊豆諸島 %+v", f)
	}
	if d := a.Hypocenter.DepthKm; d == nil || *d != 0 {
		t.Errorf("'+0' depth read as %v, want 0 km", d)
	}
}

func TestCancellations(t *testing.T) {
	for _, name := range []string{
		"jmasample_37_01_03_240613_VXSE43.xml",
		"jmasample_36_01_33_240613_VXSE44.xml",
		"jmasample_32-35_06_06_100915_VXSE53.xml",
		"jmasample_38-39_03_01_210805_VTSE41.xml",
	} {
		a := parseFixture(t, name)
		if a.MsgType != alert.MsgCancel || a.Hypocenter != nil || len(a.Areas) != 0 {
			t.Errorf("%s: msg %s hypocenter %v areas %d", name, a.MsgType, a.Hypocenter, len(a.Areas))
		}
	}
	a := parseFixture(t, "jmasample_37_01_03_240613_VXSE43.xml")
	if a.EventID != "20240417231454" || a.Serial != 2 {
		t.Errorf("the cancel names event %s serial %d", a.EventID, a.Serial)
	}
}

func TestStatuses(t *testing.T) {
	if a := parseFixture(t, "jmasample_54_01_01_100514_VXSE42.xml"); a.Status != alert.StatusTest || a.Kind != alert.KindEEW {
		t.Errorf("VXSE42 配信テスト: status %s kind %s", a.Status, a.Kind)
	}
	doc := string(alerttest.Fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml"))
	for status, want := range map[string]alert.Status{"訓練": alert.StatusExercise, "試験": alert.StatusTest} {
		a, err := Parse([]byte(strings.Replace(doc, "<Status>通常</Status>", "<Status>"+status+"</Status>", 1)))
		if err != nil || a.Status != want {
			t.Errorf("%s: %v, %v", status, a, err)
		}
	}
}

func TestEEWSerialsAndFinalReport(t *testing.T) {
	doc := string(alerttest.Fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml"))
	doc = strings.Replace(doc, "<Serial>1</Serial>", "<Serial>7</Serial>", 1)
	doc = strings.Replace(doc, "</Comments>", "</Comments><NextAdvisory>この情報をもって、緊急地震速報：最終報とします。</NextAdvisory>", 1)
	a, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if a.Serial != 7 || a.MsgType != alert.MsgUpdate || !a.Final {
		t.Errorf("serial %d msg %s final %v", a.Serial, a.MsgType, a.Final)
	}
	corrected, err := Parse([]byte(strings.Replace(doc, "<InfoType>発表</InfoType>", "<InfoType>訂正</InfoType>", 1)))
	if err != nil || corrected.MsgType != alert.MsgUpdate {
		t.Errorf("訂正: %v, %v", corrected, err)
	}
}

func TestIntensityReports(t *testing.T) {
	a := parseFixture(t, "jmasample_32-35_01_01_100806_VXSE51.xml")
	if a.MaxIntensity != alert.Intensity6Lower || a.Hypocenter != nil || a.Areas[0].Name != "静岡県中部" ||
		a.Areas[0].Code(alert.SchemeJMAPref) != "22" || a.Areas[0].Intensity != alert.Intensity6Lower {
		t.Errorf("VXSE51: max %v hypocenter %v first area %+v", a.MaxIntensity, a.Hypocenter, a.Areas[0])
	}
	a = parseFixture(t, "p2pq_20210219091451_0_VXSE53_010000.xml")
	if a.MaxIntensity != alert.Intensity4 || a.Magnitude.Value != 3.9 || len(a.Areas) != 3 {
		t.Errorf("VXSE53: max %v magnitude %v %d areas", a.MaxIntensity, a.Magnitude, len(a.Areas))
	}
	a = parseFixture(t, "jmasample_32-35_06_01_240613_VXSE52.xml")
	if a.MaxIntensity != alert.IntensityUnknown || a.Magnitude.Value != 7.0 || *a.Hypocenter.DepthKm != 10 || a.Serial != 0 {
		t.Errorf("VXSE52: %+v", a)
	}
}

// TestRefusals checks that bad documents are refused with an error naming
// the element at fault.
func TestRefusals(t *testing.T) {
	doc := string(alerttest.Fixture(t, "jma/jmasample_37_01_01_240613_VXSE43.xml"))
	edit := func(old, new string) string {
		if !strings.Contains(doc, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(doc, old, new, 1)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"wrong head namespace": {edit("jmaxml1/informationBasis1/", "jmaxml1/informationBasis2/"), `jma: Head: namespace "http://xml.kishou.go.jp/jmaxml1/informationBasis2/"`},
		"wrong body namespace": {edit("body/seismology1/", "body/meteorology1/"), `jma: Body: namespace`},
		"wrong root namespace": {strings.ReplaceAll(doc, `"http://xml.kishou.go.jp/jmaxml1/"`, `"urn:x"`), `jma: Report: namespace "urn:x"`},
		"no body":              {strings.Replace(edit("<Body ", "<Bodx "), "</Body>", "</Bodx>", 1), "jma: Body: missing"},
		"unknown telegram":     {edit("<Title>緊急地震速報（警報）</Title>", "<Title>府県天気予報</Title>"), `jma: Control/Title: unknown telegram type "府県天気予報"`},
		"unknown status":       {edit("<Status>通常</Status>", "<Status>本番</Status>"), `jma: Control/Status: "本番"`},
		"unknown info type":    {edit("<InfoType>発表</InfoType>", "<InfoType>発令</InfoType>"), `jma: Head/InfoType: "発令"`},
		"no event id":          {edit("<EventID>20240417231454</EventID>", ""), "jma: Head/EventID: missing"},
		"bad serial":           {edit("<Serial>1</Serial>", "<Serial>-1</Serial>"), `jma: Head/Serial: "-1"`},
		"bad report time":      {edit("<ReportDateTime>2024-04-17T23:14:59+09:00", "<ReportDateTime>2024-04-17 23:14:59"), "jma: Head/ReportDateTime"},
		"latitude out of range": {edit("+33.2+132.4-30000/", "+93.2+132.4-30000/"),
			`jma: Body/Earthquake/Hypocenter/Area/Coordinate[1]: coordinate "+93.2+132.4-30000/": latitude 93.2 out of range [-90, 90]`},
		"bad coordinate":      {edit("+33.2+132.4-30000/", "33.2,132.4"), "Coordinate[1]: coordinate \"33.2,132.4\" does not end with"},
		"bad magnitude":       {edit(`description="Ｍ５．８">5.8<`, `description="Ｍ５．８">5.8.1<`), "jma: Body/Earthquake/Magnitude: \"5.8.1\" is not a number"},
		"magnitude too large": {edit(`description="Ｍ５．８">5.8<`, `description="Ｍ５．８">58<`), "Magnitude: 58 out of range"},
		"bad intensity":       {edit("<From>5-</From><To>5-</To></ForecastInt><ForecastLgInt><From>1", "<From>5-</From><To>8</To></ForecastInt><ForecastLgInt><From>1"), `jma: Body/Intensity/Forecast/ForecastInt/To: unknown seismic intensity "8"`},
		"bad area intensity":  {edit("<Code>632</Code><Category><Kind><Name>緊急地震速報（警報）</Name><Code>10</Code></Kind></Category><ForecastInt><From>4</From><To>4</To>", "<Code>632</Code><Category><Kind><Name>緊急地震速報（警報）</Name><Code>10</Code></Kind></Category><ForecastInt><From>4</From><To>x</To>"), "jma: Body/Intensity/Forecast/Pref[2]/Area[1]/ForecastInt/To"},
		"bad arrival":         {edit("<ArrivalTime>2024-04-17T23:15:02+09:00</ArrivalTime>", "<ArrivalTime>soon</ArrivalTime>"), "Pref[2]/Area[1]/ArrivalTime"},
		"truncated":           {doc[:len(doc)/2], "jma: malformed XML: document ends inside an element"},
		"not XML":             {"{}", "jma: malformed XML"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestTsunamiRefusals(t *testing.T) {
	doc := string(alerttest.Fixture(t, "jma/p2pq_20231009064018_06274659_VTSE41.xml"))
	for name, tc := range map[string]struct{ old, new, want string }{
		"category": {"<Kind><Name>津波注意報</Name><Code>62</Code></Kind>\n\t\t\t\t<LastKind>", "<Kind><Name>津波注意報</Name><Code>99</Code></Kind>\n\t\t\t\t<LastKind>",
			`jma: Body/Tsunami/Forecast/Item[1]/Category/Kind/Code: unknown tsunami category code "99"`},
		"height": {`description="１ｍ">1<`, `description="１ｍ">-1<`, "Item[1]/MaxHeight/TsunamiHeight: \"-1\" is not a height"},
		"unit":   {`unit="m" description="１ｍ">1<`, `unit="ft" description="１ｍ">1<`, `Item[1]/MaxHeight/TsunamiHeight: unit "ft"`},
		"area":   {"<Area><Name>伊豆諸島</Name><Code>320</Code></Area>", "<Area></Area>", "Item[1]/Area: has neither Name nor Code"},
	} {
		if !strings.Contains(doc, tc.old) {
			t.Fatalf("%s: fixture lacks %q", name, tc.old)
		}
		_, err := Parse([]byte(strings.Replace(doc, tc.old, tc.new, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}
