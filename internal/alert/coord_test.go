package alert

import (
	"math"
	"strings"
	"testing"
)

func TestParseISO6709(t *testing.T) {
	ptr := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		in       string
		lat, lon float64
		depth    *float64
	}{
		{"+35.7+139.7-10000/", 35.7, 139.7, ptr(10)},
		{"+33.2+132.4-30000/", 33.2, 132.4, ptr(30)},
		{"+29.7+139.9+0/", 29.7, 139.9, ptr(0)},
		{"-0.5-179.9-700000/", -0.5, -179.9, ptr(700)},
		{"+35.7+139.7/", 35.7, 139.7, nil},
		{" +35.7+139.7-10000/ ", 35.7, 139.7, ptr(10)},
		{"+3542+13942/", 35.7, 139.7, nil},             // degrees and minutes
		{"+354200+1394200-5000/", 35.7, 139.7, ptr(5)}, // and seconds
		{"+5.5+99.5/", 5.5, 99.5, nil},                 // short degrees
		{"+35.7+139.7+500/", 35.7, 139.7, ptr(-0.5)},   // above the surface
		{"+90+180/", 90, 180, nil},
	} {
		pos, depth, err := ParseISO6709(tc.in)
		if err != nil {
			t.Errorf("ParseISO6709(%q): %v", tc.in, err)
			continue
		}
		if math.Abs(pos.Lat()-tc.lat) > 1e-9 || math.Abs(pos.Lon()-tc.lon) > 1e-9 {
			t.Errorf("ParseISO6709(%q) = %v, want [%v %v]", tc.in, pos, tc.lat, tc.lon)
		}
		if (depth == nil) != (tc.depth == nil) || depth != nil && math.Abs(*depth-*tc.depth) > 1e-9 {
			t.Errorf("ParseISO6709(%q) depth = %v, want %v", tc.in, deref(depth), deref(tc.depth))
		}
	}
	for in, want := range map[string]string{
		"":                      "does not end",
		"+35.7+139.7-10000":     "does not end",
		"35.7+139.7/":           "±latitude",
		"+35.7/":                "±latitude",
		"+35.7+139.7-1+2/":      "±latitude",
		"+95.0+139.7/":          "latitude 95 out of range",
		"+35.0+189.7/":          "longitude 189.7 out of range",
		"+35.0+139.7-9000000/":  "depth 9000 km out of range",
		"+3.5e1+139.7/":         "not a number",
		"+35.7+1x9.7/":          "not a number",
		"+3575+13942/":          "minutes or seconds of 60",
		"+123.5+139.7/":         "integer digits",
		"++35.7+139.7/":         "not a number",
		"+35.7+139.7-NaN/":      "not a number",
		"+35.7+139.7-1e999/":    "not a number",
		"+.5+139.7/":            "not a number",
		"+35.7+139.7-10000/xyz": "does not end",
	} {
		_, _, err := ParseISO6709(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseISO6709(%q) error %v, want one containing %q", in, err, want)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestParseLatLonListAndPolygon(t *testing.T) {
	pts, err := ParseLatLonList(" 38.47,-120.14  38.34,-119.95\n38.52,-119.74 ")
	if err != nil || len(pts) != 3 || pts[1] != (LatLon{38.34, -119.95}) {
		t.Fatalf("got %v, %v", pts, err)
	}
	poly, err := NewPolygon(pts)
	if err != nil || len(poly) != 4 || poly[3] != poly[0] {
		t.Fatalf("open ring not closed: %v, %v", poly, err)
	}
	closed, _ := NewPolygon(poly)
	if len(closed) != 4 {
		t.Fatalf("closed ring changed: %v", closed)
	}
	for in, want := range map[string]string{
		"38.47,-120.14 38.34": "point 2",
		"38.47;-120.14":       "not a \"lat,lon\" pair",
		"98.47,-120.14":       "latitude 98.47 out of range",
		"38.47,-200":          "longitude -200 out of range",
		"38.47,x":             "pair of numbers",
		"1,2 3,4":             "at least 3 points",
		"NaN,1 1,1 1,2":       "latitude NaN",
	} {
		_, err := ParsePolygon(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePolygon(%q) error %v, want one containing %q", in, err, want)
		}
	}
}

func TestNewLatLonAndDepth(t *testing.T) {
	if _, err := NewLatLon(math.NaN(), 0); err == nil {
		t.Error("NaN latitude accepted")
	}
	if _, err := NewLatLon(0, math.Inf(1)); err == nil {
		t.Error("infinite longitude accepted")
	}
	if err := CheckDepth(math.NaN()); err == nil {
		t.Error("NaN depth accepted")
	}
	if err := CheckDepth(-3.2); err != nil {
		t.Errorf("USGS-style negative depth refused: %v", err)
	}
}
