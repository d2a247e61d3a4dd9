package alert

import (
	"encoding/json"
	"testing"
)

func TestParseIntensity(t *testing.T) {
	for in, want := range map[string]Intensity{
		"":         IntensityUnknown,
		"0":        Intensity0,
		"4":        Intensity4,
		"5-":       Intensity5Lower,
		"5+":       Intensity5Upper,
		"6-":       Intensity6Lower,
		"6+":       Intensity6Upper,
		"7":        Intensity7,
		"5弱":       Intensity5Lower,
		"震度６弱":     Intensity6Lower,
		"震度４":      Intensity4,
		" 6強 ":     Intensity6Upper,
		"５－":       Intensity5Lower,
		"震度７":      Intensity7,
		"震度５強":     Intensity5Upper,
		"8":        IntensityUnknown,
		"5":        IntensityUnknown,
		"over":     IntensityUnknown,
		"6-+":      IntensityUnknown,
		"震度":       IntensityUnknown,
		"\xff\xfe": IntensityUnknown,
	} {
		got, err := ParseIntensity(in)
		if want == IntensityUnknown && in != "" {
			if err == nil {
				t.Errorf("ParseIntensity(%q) = %v, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseIntensity(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestIntensityOrderAndText(t *testing.T) {
	if !(Intensity5Lower < Intensity5Upper && Intensity5Upper < Intensity6Lower && IntensityUnknown < Intensity0) {
		t.Fatal("intensities are not ordered")
	}
	for i := IntensityUnknown; i <= Intensity7; i++ {
		b, err := i.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Intensity
		if err := back.UnmarshalText(b); err != nil || back != i {
			t.Errorf("%v: text %q reads back as %v, %v", i, b, back, err)
		}
	}
	if _, err := Intensity(42).MarshalText(); err == nil {
		t.Error("an invalid intensity marshals")
	}
	var s struct {
		I Intensity `json:"i,omitempty"`
	}
	if js, _ := json.Marshal(s); string(js) != "{}" {
		t.Errorf("unknown intensity is not omitted: %s", js)
	}
}

func TestTsunamiCategoryText(t *testing.T) {
	if !(TsunamiNone < TsunamiForecastOnly && TsunamiAdvisory < TsunamiWarning && TsunamiWarning < TsunamiMajorWarning) {
		t.Fatal("categories are not ordered by severity")
	}
	for c := TsunamiNone; c <= TsunamiMajorWarning; c++ {
		b, _ := c.MarshalText()
		var back TsunamiCategory
		if err := back.UnmarshalText(b); err != nil || back != c {
			t.Errorf("%v: text %q reads back as %v, %v", c, b, back, err)
		}
	}
	var c TsunamiCategory
	if err := c.UnmarshalText([]byte("huge")); err == nil {
		t.Error("unknown category accepted")
	}
	if TsunamiMajorWarning.String() != "major_warning" {
		t.Error(TsunamiMajorWarning.String())
	}
}

func TestImmediateTsunami(t *testing.T) {
	for cond, want := range map[string]bool{
		"津波到達中と推測":    true,
		"第１波の到達を確認":   true,
		"ただちに津波来襲と予測": true,
		"":            false,
		"第１波の到達時刻は不明": false,
	} {
		if got := ImmediateTsunami(cond); got != want {
			t.Errorf("ImmediateTsunami(%q) = %v", cond, got)
		}
	}
}
