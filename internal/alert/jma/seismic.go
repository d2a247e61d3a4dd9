package jma

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/refuge-project/refuge/internal/alert"
)

// schemes maps JMA code types (CodeDefine/Type, Areas@codeType) to
// alert.AreaCode schemes.
var schemes = map[string]string{
	"地震情報／細分区域":       alert.SchemeJMASeismicArea,
	"地震情報／都道府県等":      alert.SchemeJMAPref,
	"気象・地震・火山情報／市町村等": alert.SchemeJMACity,
	"緊急地震速報／府県予報区":    alert.SchemeJMAEEWPref,
	"緊急地震速報／地方予報区":    alert.SchemeJMAEEWRegion,
	"津波予報区":           alert.SchemeJMATsunamiArea,
}

// scheme returns the scheme of a JMA code type; unknown types keep their
// JMA name behind a "jma:" prefix.
func scheme(codeType string) string {
	if s, ok := schemes[strings.TrimSpace(codeType)]; ok {
		return s
	}
	return "jma:" + strings.TrimSpace(codeType)
}

const pathEarthquake = "Body/Earthquake"

func readEarthquake(eq *earthquake, a *alert.Alert) error {
	if s := strings.TrimSpace(eq.OriginTime); s != "" {
		t, err := alert.ParseTime(s)
		if err != nil {
			return errAt(pathEarthquake+"/OriginTime", "%v", err)
		}
		a.OriginTime = t
	}
	area := &eq.Hypocenter.Area
	for i, c := range area.Coordinates {
		s := strings.TrimSpace(c.Value)
		if s == "" {
			continue // hypocenter unknown (震源要素不明)
		}
		pos, depth, err := alert.ParseISO6709(s)
		if err != nil {
			return errAt(alert.Nth(pathEarthquake+"/Hypocenter/Area/Coordinate", i), "%v", err)
		}
		a.Hypocenter = &alert.Hypocenter{
			Lat: pos.Lat(), Lon: pos.Lon(), DepthKm: depth,
			Name: strings.TrimSpace(area.Name), Code: strings.TrimSpace(area.Code),
		}
		break
	}
	if len(eq.Magnitudes) > 0 {
		m, err := readMagnitude(&eq.Magnitudes[0])
		if err != nil {
			return errAt(pathEarthquake+"/Magnitude", "%v", err)
		}
		a.Magnitude = m
	}
	return nil
}

// readMagnitude returns nil for an unknown magnitude (NaN, condition 不明).
func readMagnitude(m *magnitude) (*alert.Magnitude, error) {
	s := strings.TrimSpace(m.Value)
	if s == "NaN" || s == "" || m.Condition == "不明" {
		return nil, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return nil, fmt.Errorf("%q is not a number", m.Value)
	}
	if v < alert.MinMagnitude || v > alert.MaxMagnitude {
		return nil, fmt.Errorf("%v out of range [%d, %d]", v, alert.MinMagnitude, alert.MaxMagnitude)
	}
	return &alert.Magnitude{Value: v, Type: strings.TrimSpace(m.Type)}, nil
}

func readIntensity(in *intensity, a *alert.Alert) error {
	for _, part := range []struct {
		path     string
		p        *intensityPart
		prefType string // the code type of Pref/Code when CodeDefine omits it
	}{
		{"Body/Intensity/Forecast", in.Forecast, "緊急地震速報／府県予報区"},
		{"Body/Intensity/Observation", in.Observation, "地震情報／都道府県等"},
	} {
		if part.p == nil {
			continue
		}
		if err := readIntensityPart(part.path, part.p, part.prefType, a); err != nil {
			return err
		}
	}
	return nil
}

func readIntensityPart(path string, p *intensityPart, prefType string, a *alert.Alert) error {
	maxInt, err := intensityOf(path, p.MaxInt, p.ForecastInt)
	if err != nil {
		return err
	}
	a.MaxIntensity = max(a.MaxIntensity, maxInt)
	prefScheme := scheme(p.CodeDefine.codeType("Pref/Code", prefType))
	areaScheme := scheme(p.CodeDefine.codeType("Pref/Area/Code", "地震情報／細分区域"))
	for i := range p.Prefs {
		pr := &p.Prefs[i]
		for j := range pr.Areas {
			ar := &pr.Areas[j]
			apath := alert.Nth(alert.Nth(path+"/Pref", i)+"/Area", j)
			out, err := readIntensityArea(apath, ar, areaScheme)
			if err != nil {
				return err
			}
			if c := strings.TrimSpace(pr.Code); c != "" {
				out.Codes = append(out.Codes, alert.AreaCode{Scheme: prefScheme, Value: c})
			}
			a.MaxIntensity = max(a.MaxIntensity, out.Intensity)
			a.Areas = append(a.Areas, out)
		}
	}
	return nil
}

func readIntensityArea(path string, ar *intensityArea, areaScheme string) (alert.Area, error) {
	out := alert.Area{Name: strings.TrimSpace(ar.Name)}
	if c := strings.TrimSpace(ar.Code); c != "" {
		out.Codes = []alert.AreaCode{{Scheme: areaScheme, Value: c}}
	}
	if out.Name == "" && len(out.Codes) == 0 {
		return out, errAt(path, "has neither Name nor Code")
	}
	in, err := intensityOf(path, ar.MaxInt, ar.ForecastInt)
	if err != nil {
		return out, err
	}
	out.Intensity = in
	if s := strings.TrimSpace(ar.ArrivalTime); s != "" {
		t, err := alert.ParseTime(s)
		if err != nil {
			return out, errAt(path+"/ArrivalTime", "%v", err)
		}
		out.ArrivalTime = t
	}
	// Category/Kind/Code 11 and the condition both say the main shock has
	// arrived already.
	out.Arrived = strings.TrimSpace(ar.Category.Kind.Code) == "11" || strings.Contains(ar.Condition, "既に主要動到達")
	return out, nil
}

// intensityOf reads an observed MaxInt or, when there is none, a forecast
// range: its upper end, or its lower end when the upper is "over" (程度以上).
// "不明" is IntensityUnknown.
func intensityOf(path, maxInt string, f *fromTo) (alert.Intensity, error) {
	if s := strings.TrimSpace(maxInt); s != "" {
		return parseIntensity(path+"/MaxInt", s)
	}
	if f == nil {
		return alert.IntensityUnknown, nil
	}
	if to := strings.TrimSpace(f.To); to != "over" && to != "" {
		return parseIntensity(path+"/ForecastInt/To", to)
	}
	return parseIntensity(path+"/ForecastInt/From", strings.TrimSpace(f.From))
}

func parseIntensity(path, s string) (alert.Intensity, error) {
	if s == "不明" || s == "" {
		return alert.IntensityUnknown, nil
	}
	in, err := alert.ParseIntensity(s)
	if err != nil {
		return in, errAt(path, "%v", err)
	}
	return in, nil
}
