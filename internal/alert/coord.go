package alert

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Depth bounds (km) accepted for hypocenters: USGS gives small negative
// depths for events above its datum; the deepest earthquakes are about
// 700 km deep.
const (
	MinDepthKm = -15
	MaxDepthKm = 1000
)

// NewLatLon returns the position after checking that lat is within
// [-90, 90] and lon within [-180, 180].
func NewLatLon(lat, lon float64) (LatLon, error) {
	if !(lat >= -90 && lat <= 90) {
		return LatLon{}, fmt.Errorf("latitude %v out of range [-90, 90]", lat)
	}
	if !(lon >= -180 && lon <= 180) {
		return LatLon{}, fmt.Errorf("longitude %v out of range [-180, 180]", lon)
	}
	return LatLon{lat, lon}, nil
}

// CheckDepth checks a depth in km against MinDepthKm and MaxDepthKm.
func CheckDepth(km float64) error {
	if !(km >= MinDepthKm && km <= MaxDepthKm) {
		return fmt.Errorf("depth %v km out of range [%d, %d]", km, MinDepthKm, MaxDepthKm)
	}
	return nil
}

// ParseISO6709 reads a JMA coordinate string in ISO 6709 form:
// latitude, longitude and an optional height in metres, each signed,
// terminated by "/" — "+35.7+139.7-10000/" is 35.7°N 139.7°E at 10 km
// depth. Latitude and longitude may be in degrees (±DD.D, ±DDD.D), degrees
// and minutes (±DDMM.M, ±DDDMM.M) or degrees, minutes and seconds
// (±DDMMSS.S, ±DDDMMSS.S). depthKm is nil when the string has no height.
// The empty string (JMA's "hypocenter unknown") is an error; callers check
// for it first.
func ParseISO6709(s string) (pos LatLon, depthKm *float64, err error) {
	body, ok := strings.CutSuffix(strings.TrimSpace(s), "/")
	if !ok {
		return LatLon{}, nil, fmt.Errorf("coordinate %q does not end with \"/\"", s)
	}
	parts := splitSigned(body)
	if len(parts) < 2 || len(parts) > 3 {
		return LatLon{}, nil, fmt.Errorf("coordinate %q: want ±latitude±longitude[±height]/", s)
	}
	lat, err := sexagesimal(parts[0], 2)
	if err != nil {
		return LatLon{}, nil, fmt.Errorf("coordinate %q: latitude: %w", s, err)
	}
	lon, err := sexagesimal(parts[1], 3)
	if err != nil {
		return LatLon{}, nil, fmt.Errorf("coordinate %q: longitude: %w", s, err)
	}
	if pos, err = NewLatLon(lat, lon); err != nil {
		return LatLon{}, nil, fmt.Errorf("coordinate %q: %w", s, err)
	}
	if len(parts) == 3 {
		h, err := strconv.ParseFloat(parts[2], 64)
		if err != nil || math.IsNaN(h) || math.IsInf(h, 0) {
			return LatLon{}, nil, fmt.Errorf("coordinate %q: height %q is not a number", s, parts[2])
		}
		d := -h / 1000
		if d == 0 {
			d = 0 // "+0" and "-0" both mean at the surface
		}
		if err := CheckDepth(d); err != nil {
			return LatLon{}, nil, fmt.Errorf("coordinate %q: %w", s, err)
		}
		depthKm = &d
	}
	return pos, depthKm, nil
}

// splitSigned splits "+35.7+139.7-10000" into "+35.7", "+139.7", "-10000".
// Every part must start with a sign.
func splitSigned(s string) []string {
	if s == "" || (s[0] != '+' && s[0] != '-') {
		return nil
	}
	var parts []string
	start := 0
	for i := 1; i <= len(s); i++ {
		if i == len(s) || s[i] == '+' || s[i] == '-' {
			parts = append(parts, s[start:i])
			start = i
		}
	}
	return parts
}

// sexagesimal reads a signed ISO 6709 angle whose degrees have degDigits
// digits: ±D.D, ±DM.M or ±DMS.S by the length of the integer part.
func sexagesimal(s string, degDigits int) (float64, error) {
	sign := 1.0
	if s[0] == '-' {
		sign = -1
	}
	digits := s[1:]
	intPart, frac, _ := strings.Cut(digits, ".")
	if intPart == "" || strings.Trim(intPart, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v, err := strconv.ParseFloat(digits, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	var deg, min, sec float64
	switch len(intPart) {
	case degDigits, degDigits - 1:
		deg = v
	case degDigits + 2:
		deg, min = math.Floor(v/100), math.Mod(v, 100)
	case degDigits + 4:
		deg, min, sec = math.Floor(v/10000), math.Floor(math.Mod(v, 10000)/100), math.Mod(v, 100)
	default:
		return 0, fmt.Errorf("%q has %d integer digits, want %d (degrees), %d (and minutes) or %d (and seconds)",
			s, len(intPart), degDigits, degDigits+2, degDigits+4)
	}
	if min >= 60 || sec >= 60 {
		return 0, fmt.Errorf("%q has minutes or seconds of 60 or more", s)
	}
	return sign * (deg + min/60 + sec/3600), nil
}

// ParseLatLonList reads positions written as "lat,lon" pairs separated by
// white space, as CAP polygons and ShakeAlert contours write them
// ("38.47,-120.14 38.34,-119.95 …"). Extra white space is ignored.
func ParseLatLonList(s string) ([]LatLon, error) {
	fields := strings.Fields(s)
	out := make([]LatLon, 0, len(fields))
	for i, f := range fields {
		p, err := ParseLatLon(f)
		if err != nil {
			return nil, fmt.Errorf("point %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseLatLon reads one "lat,lon" pair.
func ParseLatLon(s string) (LatLon, error) {
	latS, lonS, ok := strings.Cut(s, ",")
	if !ok {
		return LatLon{}, fmt.Errorf("%q is not a \"lat,lon\" pair", s)
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(latS), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(lonS), 64)
	if err1 != nil || err2 != nil {
		return LatLon{}, fmt.Errorf("%q is not a \"lat,lon\" pair of numbers", s)
	}
	p, err := NewLatLon(lat, lon)
	if err != nil {
		return LatLon{}, fmt.Errorf("%q: %w", s, err)
	}
	return p, nil
}

// NewPolygon returns pts as a Polygon, closing the ring (repeating the
// first position last) when the source left it open. It needs at least
// three positions; degenerate rings (real CAP documents have closed rings
// of three points, or repeat points) are kept as they are.
func NewPolygon(pts []LatLon) (Polygon, error) {
	if len(pts) < 3 {
		return nil, fmt.Errorf("a polygon needs at least 3 points, got %d", len(pts))
	}
	if pts[0] != pts[len(pts)-1] {
		pts = append(pts, pts[0])
	}
	return Polygon(pts), nil
}

// ParsePolygon reads a ParseLatLonList list as a NewPolygon ring.
func ParsePolygon(s string) (Polygon, error) {
	pts, err := ParseLatLonList(s)
	if err != nil {
		return nil, err
	}
	return NewPolygon(pts)
}
