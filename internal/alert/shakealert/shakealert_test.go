package shakealert

import (
	"strings"
	"testing"
	"time"

	"github.com/refuge-project/refuge/internal/alert"
	"github.com/refuge-project/refuge/internal/alert/alerttest"
)

func TestPointSource(t *testing.T) {
	a, err := Parse(alerttest.Fixture(t, "other/shakealert_2014_Napa_M5.7.xml"))
	if err != nil {
		t.Fatal(err)
	}
	alerttest.Check(t, a)
	if a.Kind != alert.KindEEW || a.Status != alert.StatusTest || a.MsgType != alert.MsgAlert || a.EventID != "2014_Napa_M5.7" || a.Serial != 0 {
		t.Errorf("%+v", a)
	}
	if h := a.Hypocenter; h.Lat != 38.2084 || h.Lon != -122.2845 || *h.DepthKm != 8 || a.Magnitude.Value != 5.7 || a.Magnitude.Type != "Mw" {
		t.Errorf("hypocenter %+v magnitude %+v", h, a.Magnitude)
	}
	if want := time.Date(2014, 8, 24, 10, 20, 44, 379e6, time.UTC); !a.OriginTime.Equal(want) {
		t.Errorf("origin %v", a.OriginTime)
	}
}

func TestContours(t *testing.T) {
	a, err := Parse(alerttest.Fixture(t, "other/shakealert_2014_Napa_M5.7_contour.xml"))
	if err != nil {
		t.Fatal(err)
	}
	alerttest.Check(t, a)
	if len(a.Areas) != 5 || a.Areas[4].Name != "predicted MMI ≥ 6" || len(a.Areas[4].Polygons[0]) != 9 || a.Product != "eqinfo2gm" {
		t.Errorf("%d areas, last %+v", len(a.Areas), a.Areas[len(a.Areas)-1])
	}
}

func TestRefusals(t *testing.T) {
	doc := string(alerttest.Fixture(t, "other/shakealert_2014_Napa_M5.7_contour.xml"))
	edit := func(old, new string) string {
		if !strings.Contains(doc, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(doc, old, new, 1)
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"category":     {edit(`category="test" instance`, `category="drill" instance`), `shakealert: event_message/@category: "drill"`},
		"message type": {edit(`message_type="new"`, `message_type="old"`), `event_message/@message_type: "old"`},
		"version":      {edit(`version="0">`, `version="x">`), `event_message/@version: "x"`},
		"latitude":     {edit(`<lat units="deg">38.2084</lat>`, `<lat units="deg">138.2084</lat>`), "shakealert: core_info: latitude 138.2084 out of range"},
		"units":        {edit(`<depth units="km">`, `<depth units="mi">`), `core_info/depth/@units: "mi", want "km"`},
		"no magnitude": {edit(`<mag units="Mw">5.7000</mag>`, ""), `core_info/mag: "" is not a number`},
		"contour":      {edit("<MMI units=\"\">6.0000</MMI>", "<MMI units=\"\">13</MMI>"), "gm_info/gmcontour_pred/contour[5]: MMI \"13\""},
		"polygon":      {edit("38.2723,-122.2845 38.2536", "38.2723,-222.2845 38.2536"), "contour[5]: polygon: point 1"},
		"namespace":    {edit("<event_message ", `<event_message xmlns="urn:x" `), `root element <event_message> in namespace "urn:x"`},
		"no core":      {strings.NewReplacer("<core_info", "<core_inf", "</core_info>", "</core_inf>").Replace(doc), "core_info: missing"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}
