package model

import (
	"fmt"
	"testing"
)

func TestJMASeismicAreaTable(t *testing.T) {
	codes := JMASeismicAreaCodes()
	if len(codes) != 188 {
		t.Errorf("%d seismic intensity areas, JMA has 188", len(codes))
	}
	for _, c := range []struct{ code, name string }{
		{"100", "石狩地方北部"}, {"350", "東京都２３区"}, {"411", "山梨県中・西部"}, {"520", "大阪府北部"},
		{"610", "香川県東部"}, {"631", "高知県中部"}, {"807", "沖縄県西表島"},
	} {
		if n, ok := JMASeismicAreaName(c.code); !ok || n != c.name {
			t.Errorf("JMASeismicAreaName(%s) = %q, %v; want %s", c.code, n, ok, c.name)
		}
		if code, ok := JMASeismicAreaCode(c.name); !ok || code != c.code {
			t.Errorf("JMASeismicAreaCode(%s) = %q, %v; want %s", c.name, code, ok, c.code)
		}
	}
	for _, bad := range []string{"", "561", "631 ", "高知県"} {
		if _, ok := JMASeismicAreaName(bad); ok {
			t.Errorf("JMASeismicAreaName(%q) found", bad)
		}
	}
	// The schema offers exactly the table's codes.
	fed := loadSchema(t, "federation").root["$defs"].(map[string]any)
	enum := fed["site"].(map[string]any)["properties"].(map[string]any)["seismic_area"].(map[string]any)["enum"]
	if got, want := fmt.Sprint(enum), fmt.Sprint(toAny(codes)); got != want {
		t.Errorf("schema seismic_area enum %s, want %s", got, want)
	}
}

func TestSeismicAreaSuggestion(t *testing.T) {
	f := &Federation{Name: "x", Sites: []Site{{Name: "a", SeismicArea: "6311",
		Fabrics: []Fabric{{Name: "f", Hosts: []Host{{Name: "h", VCPU: 1, MemoryMiB: 1, NICMbps: 1}}}}}}, VMs: []VM{}}
	err := f.Validate()
	if err == nil {
		t.Fatal("an unknown code validates")
	}
	want := `sites[0].seismic_area: unknown JMA seismic intensity area code "6311" (地震情報／細分区域, three digits such as "631" for 高知県中部; did you mean "631" 高知県中部?)`
	if got := err.Error(); got != want {
		t.Errorf("error %q\nwant  %q", got, want)
	}
}
